"""What a run leaves for people to look at: results.md and the figures."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from util.io.files import atomic_path, write_text_atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)


# The rows of a raster table, in order; a table has those whose keys its scores hold (util.evaluation.raster_metrics).
# None: a value in the data's units, shown by in_units.
RASTER_ROWS = (
    ("rmse", "RMSE ({units})", None),
    ("lat_weighted_rmse", "RMSE, cos(latitude)-weighted ({units})", None),
    ("mae", "MAE ({units})", None),
    ("bias", "bias ({units})", None),
    ("slope_rmse", "slope RMSE (degrees)", ".3f"),
    ("correlation", "spatial correlation", ".4f"),
    ("conservation_rmse", "conservation RMSE: block means vs LR ({units})", None),
    ("small_scale_power_ratio", "small-scale power / truth's (wavelengths of 2-3 cells)", ".3f"),
    ("psnr", "PSNR, range-normalised (dB; secondary)", ".3f"),
)


def in_units(values, scale_of=None) -> list[str]:
    """Values in the data's units, with one number of decimals for all: 3, or as many as give the largest of
    ``scale_of`` (default: of ``values``) 3 significant digits when it is under 0.1 (specific humidity in
    kg/kg: RMSE 0.000178, not 0.000)."""
    values = [float(v) for v in values]
    scale = values if scale_of is None else [float(v) for v in scale_of]
    largest = max((abs(v) for v in scale if np.isfinite(v)), default=0.0)
    decimals = 3 if largest >= 0.1 or largest == 0 else min(12, 2 - int(np.floor(np.log10(largest))))
    return [f"{v:.{decimals}f}" for v in values]


def raster_rows(scores: dict, units: str) -> list[str]:
    """Markdown rows of raster scores: one column per method, one row per metric the scores hold."""
    names = list(scores)
    rows = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    rmse = [scores[n]["rmse"] for n in names]  # the decimals of every row in units: those of the RMSEs
    for key, label, spec in RASTER_ROWS:
        if key in scores[names[0]]:
            values = [scores[n][key] for n in names]
            cells = " | ".join(in_units(values, rmse) if spec is None else (format(v, spec) for v in values))
            rows.append(f"| {label.format(units=units)} | {cells} |")
    if "bicubic" in scores and "model" in scores and scores["bicubic"]["rmse"]:
        gain = 100 * (1 - scores["model"]["rmse"] / scores["bicubic"]["rmse"])
        rows.append(f"\nModel RMSE {gain:.1f} % below bicubic.")
    return rows


def results_markdown(results: dict, path: Path) -> str:
    """A Markdown table of baseline vs model (mean ± std), written to ``path`` and returned."""
    if "raster_scores" in results:
        rows = [
            f"# {results['model']} — {results['task']} on {results['dataset']} ({results.get('data_kind', 'raster')})",
            "",
            f"{results['n_test']} test patches; {results.get('protocol', '')}.",
            f"Trained on {results.get('train_patches', '?')} patches for {results.get('backprops', '?')} backprops "
            f"({results.get('train_seconds', '?')} s of training, {results.get('wall_seconds', '?')} s in all).",
            "",
            *raster_rows(results["raster_scores"], results.get("units", "m")),
            "",
        ]
        if "slope_left_out" in results:
            rows += [f"Slope RMSE left out: {results['slope_left_out']}.", ""]
        text = "\n".join(rows)
        write_text_atomic(path, text)
        return text
    base, model = results["baseline"], results["model_scores"]
    rows = [
        f"# {results['model']} — {results['task']} on {results['dataset']}",
        "",
        f"{results['n_test']} test pairs; {results.get('protocol', '')}.",
        f"Trained on {results.get('train_patches', '?')} pairs for {results.get('backprops', '?')} backprops "
        f"({results.get('train_seconds', '?')} s of training, {results.get('wall_seconds', '?')} s in all).",
        "",
        "| | PSNR (dB) | SSIM |",
        "|---|---|---|",
        f"| {results.get('baseline_name', 'baseline')} | {base['psnr']:.2f} ± {base['psnr_std']:.2f} "
        f"| {base['ssim']:.4f} ± {base['ssim_std']:.4f} |",
        f"| {results['model']} | {model['psnr']:.2f} ± {model['psnr_std']:.2f} "
        f"| {model['ssim']:.4f} ± {model['ssim_std']:.4f} |",
    ]
    if "ensemble_scores" in results:
        ens = results["ensemble_scores"]
        rows.append(
            f"| {results['model']} + self-ensemble | {ens['psnr']:.2f} ± {ens['psnr_std']:.2f} "
            f"| {ens['ssim']:.4f} ± {ens['ssim_std']:.4f} |"
        )
    rows.append("")
    text = "\n".join(rows)
    write_text_atomic(path, text)
    return text


def summary_line(results: dict) -> str:
    """One line: baseline and model PSNR / SSIM on the test pairs (RMSE for rasters)."""
    if "raster_scores" in results:
        scores, units = results["raster_scores"], results.get("units", "m")
        shown = dict(zip(scores, in_units(s["rmse"] for s in scores.values()), strict=True))
        return f"{results['model']} {results['task']} on {results['dataset']}: {results['n_test']} test patches, " + (
            ", ".join(f"{name} RMSE {shown[name]} {units}{_second_score(s)}" for name, s in scores.items())
        )
    base, model = results["baseline"], results["model_scores"]
    return (
        f"{results['model']} {results['task']} on {results['dataset']}: {results['n_test']} test pairs, "
        f"{results.get('baseline_name', 'baseline')} {base['psnr']:.2f} dB / {base['ssim']:.4f}, "
        f"model {model['psnr']:.2f} dB / {model['ssim']:.4f}"
        + (f", self-ensemble {results['ensemble_scores']['psnr']:.2f} dB" if "ensemble_scores" in results else "")
    )


def _second_score(scores: dict) -> str:
    """The summary line's figure after the RMSE: the slope for elevations, else the spatial correlation."""
    if "slope_rmse" in scores:
        return f" / slope {scores['slope_rmse']:.2f} deg"
    return f" / r {scores['correlation']:.4f}" if "correlation" in scores else ""


def training_curve(csv_path: Path, png_path: Path) -> None:
    """Training and validation PSNR (from the MSE/L1 loss logged by CSVLogger) per epoch."""
    if not csv_path.exists():
        return
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    plt = _pyplot()
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
        if len(values) == len(epochs):
            ax.plot(epochs, values, marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (images in [0, 1])")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, png_path)


def model_diagram(model, png_path: Path) -> None:
    """``keras.utils.plot_model``; without Graphviz, say so and go on."""
    import keras

    if shutil.which("dot") is None:
        print("note: Graphviz is not installed, so model.png was not drawn (apt-get install graphviz)")
        return
    try:
        with atomic_path(png_path) as tmp:
            # Keras's default orthogonal edges crash Graphviz 2.43's router on the U-Net (maze.c).
            keras.utils.plot_model(model, to_file=str(tmp), show_shapes=True, dpi=60, splines="spline")
    except Exception as err:  # pydot reports a failed dot run as AssertionError; a diagram is never worth a run
        print(f"note: model.png was not drawn ({type(err).__name__}: {' '.join(str(err).split())[:200]})")


def comparison_figure(lr, base, outputs, hr, results: dict, png_path: Path, count: int = 4) -> None:
    """Rows of test patches: degraded input, baseline, model, HR; each captioned with PSNR/SSIM."""
    from util.evaluation.metrics import psnr, ssim

    plt = _pyplot()
    n = min(count, len(hr))
    # Spread the shown patches over the test set rather than taking the first few.
    picks = np.linspace(0, len(hr) - 1, n).astype(int)
    names = ["input", results.get("baseline_name", "baseline"), results["model"], "HR (target)"]
    fig, axes = plt.subplots(n, 4, figsize=(12, 3.2 * n), squeeze=False)
    for row, index in enumerate(picks):
        for col, (name, image) in enumerate(zip(names, (lr, base, outputs, hr), strict=True)):
            ax = axes[row][col]
            ax.imshow(image[index], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            caption = name
            if col in (1, 2):
                caption += f"\n{psnr(image[index], hr[index]):.2f} dB / {ssim(image[index], hr[index]):.3f}"
            elif col == 0:
                caption += f" ({image[index].shape[1]}x{image[index].shape[0]})\ntest pair {index}"
            ax.set_title(caption, fontsize=9)
    fig.suptitle(f"{results['model']} — {results['task']} on {results['dataset']} (PSNR / SSIM against HR)")
    _save(fig, png_path)


def sweep_table(script: str, runs: list[dict]) -> str:
    """The prototype's table: rows PSNR and SSIM, columns HR, bicubic (or noisy), then each training-set size.

    HR against itself is the reference (PSNR infinite, SSIM 1); a last row gives each run's training time.
    """
    runs = sorted(runs, key=lambda r: -r["train_patches"])
    first = runs[0]
    base = first.get("baseline_name", "baseline")
    header = ["HR", "LR (bicubic)" if base == "bicubic" else base] + [f"{r['train_patches']} patches" for r in runs]
    lines = [
        f"{script} — {first['task']} on {first['dataset']}, {first['backprops']} backprops each, "
        f"{first['n_test']} test pairs (RGB PSNR / SSIM, the prototype's protocol)",
        "",
        "| | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    for metric, fmt, hr in (("psnr", "{:.2f}", "∞"), ("ssim", "{:.4f}", "1.0000")):
        cells = [hr, fmt.format(first["baseline"][metric])] + [fmt.format(r["model_scores"][metric]) for r in runs]
        lines.append(f"| {metric.upper()} | " + " | ".join(cells) + " |")
    if all("ensemble_scores" in r for r in runs):  # --ensemble: the same models averaged over 8 flips/rotations
        for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.4f}")):
            cells = [fmt.format(r["ensemble_scores"][metric]) for r in runs]
            lines.append(f"| {metric.upper()}, self-ensemble | | | " + " | ".join(cells) + " |")
    lines.append("| training (s) | | | " + " | ".join(f"{r['train_seconds']:.0f}" for r in runs) + " |")
    return "\n".join(lines) + "\n"


def ablation_table(script: str, runs: list[dict]) -> str:
    """One row per ablation run: the choice undone, Set5 PSNR / SSIM and the change against the recipe."""
    order = {"recipe": 0}
    runs = sorted(runs, key=lambda r: (order.get(r["ablation"]["name"], 1), r["ablation"]["name"]))
    recipe = next((r for r in runs if r["ablation"]["name"] == "recipe"), None)
    first = runs[0]
    lines = [
        f"{script} — {first['task']} on {first['dataset']}, {first['train_patches']} patches, "
        f"{first['backprops']} backprops each; Set5 by the standard protocol (Y, border = scale), "
        f"builtin test pairs by the prototype's (RGB)",
        "",
        "| run | change | Set5 PSNR / SSIM | vs recipe (dB) | test pairs PSNR | training (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        set5 = r["ablation"]["set5"]["model"]
        delta = ""
        if recipe is not None and r is not recipe:
            delta = f"{set5['psnr'] - recipe['ablation']['set5']['model']['psnr']:+.2f}"
        lines.append(
            f"| {r['ablation']['name']} | {r['ablation']['change']} | {set5['psnr']:.2f} / {set5['ssim']:.4f} | "
            f"{delta} | {r['model_scores']['psnr']:.2f} | {r['train_seconds']:.0f} |"
        )
    bicubic = first["ablation"]["set5"]["baseline"]
    lines.append(
        f"| bicubic | — | {bicubic['psnr']:.2f} / {bicubic['ssim']:.4f} | | {first['baseline']['psnr']:.2f} | |"
    )
    return "\n".join(lines) + "\n"


def sweep_plot(sweep_dir: Path, png_path: Path) -> None:
    """PSNR against training-set size (log axis) for every model swept into ``sweep_dir``; baseline as a line."""
    import json

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    baseline = None
    for path in sorted(sweep_dir.glob("*.json")):
        runs = sorted(json.loads(path.read_text())["runs"], key=lambda r: r["train_patches"])
        sizes = [r["train_patches"] for r in runs]
        line = ax.plot(sizes, [r["model_scores"]["psnr"] for r in runs], marker="o", label=path.stem)[0]
        if all("ensemble_scores" in r for r in runs):
            ensemble = [r["ensemble_scores"]["psnr"] for r in runs]
            ax.plot(sizes, ensemble, marker="x", linestyle=":", color=line.get_color(), label=f"{path.stem} + ensemble")
        baseline = runs[0]
    if baseline is None:
        return
    ax.axhline(baseline["baseline"]["psnr"], color="gray", linestyle="--", label=baseline.get("baseline_name"))
    ax.set_xscale("log")
    ax.set_xlabel("training patches")
    ax.set_ylabel("PSNR on the test pairs (dB)")
    ax.set_title(f"{baseline['task']} on {baseline['dataset']}, each model: same backprops at every size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, png_path)
