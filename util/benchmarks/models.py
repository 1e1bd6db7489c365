"""One table of quality, speed and size: bicubic and saved super-resolution models side by side.

    python3 benchmark.py models                                          # every assets/models/sr*.keras
    python3 benchmark.py models runs/a/model.keras assets/models/sr4.keras
    python3 benchmark.py models runs/a/model.keras --skip-memory         # without the slow memory column

For bicubic and each model:
  * Set5 and Set14 PSNR / SSIM by the standard protocol at the model's task
    (util/evaluation/protocols.py, the code of evaluate.py);
  * the parameter count;
  * inference time in ms per output megapixel on this machine: the model's forward
    pass, batch 1, on a 512x512 output, median of --repeats runs after a warm-up
    (bicubic: util.bicubic_upscale to the same output);
  * peak resident memory (MB) of `python3 enhance.py` on a synthetic 3000x4000 photo,
    one child process per model (getrusage of its RUSAGE_CHILDREN in a small launcher),
    so each number stands alone.
Markdown on stdout; benchmark.md and benchmark.json in --out. The raster and the
denoising / deblurring models have their own tables (`raster`, `restoration`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import util
from util.benchmarks import measure
from util.benchmarks.measure import MODELS, SPEED_OUTPUT, WARMUP
from util.data.tasks import Task
from util.evaluation.protocols import (
    BENCHMARK_DIR,
    STANDARD_SETS,
    baseline,
    benchmark_task,
    evaluate_folder,
    standard_sets,
)

# ---- Constants: edit these -------------------------------------------------
SETS = None  # benchmark folders; None: Set5 and Set14 of datasets/benchmark (python3 download.py benchmarks)
MEMORY_PHOTO = (3000, 4000)  # height, width of the synthetic photo enhanced for the memory column


def add_arguments(parser) -> None:
    measure.add_models_argument(parser, "sr*.keras")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=SETS,
        help=f"benchmark folders (default: {STANDARD_SETS} in {BENCHMARK_DIR})",
    )
    measure.add_speed_arguments(parser)
    measure.add_out_argument(parser, "benchmark.md and benchmark.json")


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 HWC RGB of smooth colour waves plus grain: a stand-in for a photo of that size."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    photo = np.empty((height, width, 3), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for channel, (wy, wx) in enumerate(((1 / 37, 1 / 53), (1 / 71, 1 / 29), (1 / 97, 1 / 61))):
        wave = 128 + 90 * np.sin(rows * wy + cols * wx) * np.cos(cols * wy - rows * wx)
        photo[..., channel] = np.clip(wave + rng.normal(0, 6, (height, width)), 0, 255)
    return photo


# ---- Rows of the table ------------------------------------------------------------------


def quality(task: Task | None, folders, enhance=None) -> dict:
    """{dataset: {"psnr", "ssim"}} of the method (the baseline when ``enhance`` is None)."""
    if task is None:
        return {}
    key = "baseline" if enhance is None else "model"
    return {r["dataset"]: r["mean"][key] for r in (evaluate_folder(f, task, enhance) for f in folders)}


def baseline_row(task: Task, folders, repeats: int) -> dict:
    row = {"method": task.baseline_name, "task": task.name, "parameters": 0}
    row["quality"] = quality(task, folders)
    row["ms_per_mp"] = None
    if task.scale > 1:  # the noisy input itself costs nothing
        side = SPEED_OUTPUT // task.scale
        degraded = synthetic_photo(side, side)
        megapixels = (side * task.scale) ** 2 / 1e6
        row["ms_per_mp"] = measure.median_ms(lambda: baseline(degraded, task), WARMUP, repeats) / megapixels
    row["peak_rss_mb"] = None
    return row


def benchmark_task_of(info: dict) -> Task | None:
    """The benchmark task of a model; None for a task without a benchmark protocol (noise64blur)."""
    try:
        return benchmark_task(info["task"])
    except util.UserError:
        return None


def model_row(path: Path, model, info: dict, folders, repeats: int, photo_path: Path | None, work_dir: Path) -> dict:
    from util.inference.tiles import enhance_array
    from util.models.loading import prepare_input

    task = benchmark_task_of(info)  # None: speed and size only
    row = {"method": str(path), "task": info["task"], "info": info}
    row["parameters"] = int(model.count_params())
    row["quality"] = quality(task, folders, lambda degraded: enhance_array(model, info, degraded, progress=False))
    side = SPEED_OUTPUT // info["scale"]
    model_input = prepare_input(synthetic_photo(side, side), info)[None]
    megapixels = (side * info["scale"]) ** 2 / 1e6
    row["ms_per_mp"] = measure.median_ms(lambda: model.predict_on_batch(model_input), WARMUP, repeats) / megapixels
    row["peak_rss_mb"] = None if photo_path is None else measure.enhance_peak_rss_mb(path, photo_path, work_dir)
    return row


def markdown(rows: list[dict], sets: list[str]) -> str:
    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    height, width = MEMORY_PHOTO
    header = ["method", "task", "parameters"] + [f"{name} PSNR / SSIM" for name in sets]
    header += ["ms / output MP", f"peak RSS, {width}x{height} photo (MB)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for row in rows:
        scores = [row["quality"].get(name) for name in sets]
        cells = [row["method"], row["task"], f"{row['parameters']:,}"]
        cells += ["—" if s is None else f"{s['psnr']:.2f} / {s['ssim']:.4f}" for s in scores]
        cells += [cell(row["ms_per_mp"], ".0f"), cell(row["peak_rss_mb"], ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- The subcommand -----------------------------------------------------------------------


def checked_inputs(models: list[Path], data: list[Path] | None) -> tuple[list[Path], list[Path]]:
    """The model files (default: the SR models in MODELS) and benchmark folders; a UserError for a missing one."""
    if not models:
        models = sorted(MODELS.glob("sr*.keras"))  # the SR models; DEM and restoration ones have their tables
        print(f"note: {len(models)} model(s) in {MODELS}", file=sys.stderr)
    for path in models:
        if not path.is_file():
            raise util.UserError(f"{path}: no such model file; give saved models (runs/<run>/model.keras)")
    folders = data or standard_sets()
    for folder in folders:
        if not folder.is_dir():
            raise util.UserError(f"{folder}: no such folder; give --data folders of HR images")
    return models, folders


def main(args) -> None:
    """``benchmark.py models``: bicubic and the models on the benchmark folders (module doc)."""
    models, folders = checked_inputs(args.models, args.data)
    measure.check_repeats(args.repeats)
    from util.models.loading import load_model

    loaded = [(path, *load_model(path)) for path in models]
    # One baseline row per task of the models (bicubic x4 when there are none).
    tasks = list(dict.fromkeys(p for _, _, info in loaded if (p := benchmark_task_of(info)) is not None))
    rows = [baseline_row(task, folders, args.repeats) for task in tasks or [benchmark_task("sr4")]]
    with tempfile.TemporaryDirectory(prefix="benchmark-") as work:
        work_dir = Path(work)
        photo_path = None
        if not args.skip_memory and models:
            photo_path = work_dir / "synthetic_photo.png"
            Image.fromarray(synthetic_photo(*MEMORY_PHOTO)).save(photo_path, compress_level=1)
        for path, model, info in loaded:
            print(f"benchmarking {path} ...", file=sys.stderr)
            rows.append(model_row(path, model, info, folders, args.repeats, photo_path, work_dir))
    table = markdown(rows, [folder.name for folder in folders])
    machine = measure.machine_name()
    print(table)
    result = {
        "machine": machine,
        "speed": {"output": SPEED_OUTPUT, "warmup": WARMUP, "repeats": args.repeats, "batch": 1},
        "memory_photo": None if args.skip_memory else {"height": MEMORY_PHOTO[0], "width": MEMORY_PHOTO[1]},
        "rows": rows,
    }
    measure.write_tables(args.out, "benchmark", f"Benchmark on {machine}", table, result)
