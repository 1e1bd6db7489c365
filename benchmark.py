"""One table of quality, speed and size: bicubic and saved models side by side.

    python3 benchmark.py                                          # every assets/models/sr*.keras
    python3 benchmark.py runs/a/model.keras assets/models/sr4.keras
    python3 benchmark.py runs/a/model.keras --skip-memory         # without the slow memory column

For bicubic and each model:
  * Set5 and Set14 PSNR / SSIM by the standard protocol at the model's task
    (util/evaluation.py, the code of evaluate.py);
  * the parameter count;
  * inference time in ms per output megapixel on this machine: the model's forward
    pass, batch 1, on a 512x512 output, median of --repeats runs after a warm-up
    (bicubic: util.bicubic_upscale to the same output);
  * peak resident memory (MB) of `python3 enhance.py` on a synthetic 3000x4000 photo,
    one child process per model (getrusage of its RUSAGE_CHILDREN in a small launcher),
    so each number stands alone.
Markdown on stdout; benchmark.md and benchmark.json in --out.

    python3 benchmark.py --training                               # training speed of the three model scripts
    python3 benchmark.py --scaling                                # 1 worker against 2 (tf.distribute), one core each
    python3 benchmark.py --data-sizes 10000,100000                # peak memory of download and training vs data size

    python3 benchmark.py --raster                                 # the raster (DEM) models
    python3 benchmark.py --task noise25                           # denoising: CBSD68, CBM3D and others beside
    python3 benchmark.py --task defocus                           # deblurring: Set14, Wiener / Richardson-Lucy

``--task noiseS`` (or ``noise``) and ``--task defocus[R]`` print the restoration table, all
measured in the same run: the degraded input, the classical peers (util/peers.py: CBM3D,
non-local means and wavelet denoising given the true sigma; Wiener and Richardson-Lucy
deconvolution given the true PSF) and the models (default: assets/models/denoise*.keras or
deblur*.keras), with RGB PSNR / SSIM (the denoising literature's) and seconds per megapixel
(after one untimed run of every method on the first image), on CBSD68 (noise) or Set14
(defocus) in datasets/benchmark/ (--data for others, --images N for the first N).

``--raster`` benchmarks the raster models (every assets/models/dem_*.keras, or those
given): the raster protocol (util/raster_eval.py; evaluate.py's tables) on --data raster
files or folders (default: the held-out regions of ``datasets/dem``), bicubic and cubic
spline beside each model; inference in ms per output megapixel; and the peak RSS of
``enhance.py`` on a synthetic float32 GeoTIFF DEM of a Copernicus GLO-30 tile's size,
3600x3600 cells (at x4, a 14400x14400 output). The photo benchmark leaves raster models out.

``--training`` instead times training: each model script with its own default
constants (BATCH, PRECISION, loss, augmentation; --batch sets one BATCH for all) at --task, on random patches
through the same tf.data pipeline, for about --seconds after two warm-up steps,
split into --rounds that take the scripts in turn: a shared 2-core machine drifts
by 20% and more within minutes, and interleaving lets the drift hit every script
alike; the median round is kept. Samples/s on training_speed.md and
training_speed.json in --out.

``--scaling`` trains edsr_lite.py for real (--task, default sr4, on the built-in pairs of
``python3 download.py``; SCALING_BACKPROPS samples) by one process pinned to core 0 and by
two MultiWorkerMirroredStrategy workers on 127.0.0.1 pinned to cores 0 and 1 (``taskset``),
with the same global BATCH: samples/s of training (``train_samples_per_second`` of the run,
validations included), the scaling efficiency (2-worker speed / twice the 1-worker speed)
and the peak RSS of the largest process (--batch sets BATCH).

``--data-sizes N,N`` writes N built-in training pairs with ``download.py builtin`` into a
temporary folder (16.7 GB for 100 000: mind the disk) and trains edsr_lite.py on all of them
for SCALING_BACKPROPS samples, one child process each: the peak RSS of each against N and
the training's samples/s. data_sizes.md and .json in --out. training_scaling_b<BATCH>.md
and .json in --out.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import util
from util.evaluation import (
    BENCHMARK_DIR,
    NOISY_HELP,
    NOISY_INPUTS,
    STANDARD_SETS,
    baseline,
    benchmark_task,
    evaluate_folder,
    standard_sets,
)
from util.tasks import Task

# ---- Constants: edit these -------------------------------------------------
REPO = Path(__file__).resolve().parent
MODELS = REPO / "assets" / "models"  # benchmarked when no model is given
OUT = REPO / "runs" / "benchmark"
SETS = None  # benchmark folders; None: Set5 and Set14 of datasets/benchmark (python3 download.py benchmarks)
SPEED_OUTPUT = 512  # side of the output whose inference is timed
WARMUP = 2
REPEATS = 5
MEMORY_PHOTO = (3000, 4000)  # height, width of the synthetic photo enhanced for the memory column
MEMORY_RASTER = 3600  # side in cells of the synthetic DEM enhanced by --raster (a Copernicus GLO-30 tile)
RASTER_DATA = REPO / "datasets" / "dem" / "test_regions"  # --raster without --data (python3 download.py dem)
ENHANCE = REPO / "enhance.py"
SCALING_BACKPROPS = 9600  # samples trained by each --scaling run (2 epochs)
TRAINING_SCRIPTS = None  # scripts timed by --training; None: every model script (util.roles.find_model_scripts)
TRAINING_SECONDS = 60.0
TRAINING_ROUNDS = 3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, help=f"saved models (default: {MODELS}/*.keras)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of benchmark.md and benchmark.json")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=SETS,
        help=f"benchmark folders (default: {STANDARD_SETS} in {BENCHMARK_DIR})",
    )
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per model (the median is kept)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the (slow) peak-memory column")
    # One mode a run: two of them would leave one silently unused.
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--training", action="store_true", help="time training of the model scripts instead")
    modes.add_argument("--raster", action="store_true", help="benchmark the raster (DEM) models instead")
    modes.add_argument("--scaling", action="store_true", help="training samples/s of 1 worker against 2 workers")
    modes.add_argument("--data-sizes", help="peak RSS of download.py and training for these training-set sizes")
    parser.add_argument(
        "--task",
        help="noiseS, noise or defocus[R]: the restoration table (peers and denoising/deblurring models); "
        "--training: the task trained (default sr4)",
    )
    parser.add_argument(
        "--images", type=int, default=0, help="restoration: the first N images of each folder (0 = all)"
    )
    parser.add_argument(
        "--noisy",
        choices=NOISY_INPUTS,
        default="8bit",
        help=NOISY_HELP,
    )
    parser.add_argument("--seconds", type=float, default=TRAINING_SECONDS, help="--training: seconds per script")
    parser.add_argument(
        "--batch", type=int, help="--training: one batch size for every script (default: each script's BATCH)"
    )
    parser.add_argument(
        "--rounds", type=int, default=TRAINING_ROUNDS, help="--training: interleaved rounds (the median is kept)"
    )
    args = parser.parse_args(argv)
    if args.task and (args.raster or args.data_sizes):
        parser.error(f"--task {args.task} does not apply to {'--raster' if args.raster else '--data-sizes'}; drop it")
    return args


# ---- 1. Measurements ----------------------------------------------------------------


def synthetic_dem(side: int, seed: int = 0) -> np.ndarray:
    """float32 (side, side) heights in metres: ridges and valleys at several wavelengths, a stand-in DEM."""
    rows = np.arange(side, dtype=np.float32)[:, None]
    cols = np.arange(side, dtype=np.float32)[None, :]
    rng = np.random.default_rng(seed)
    dem = np.full((side, side), 1500.0, np.float32)
    for wavelength, amplitude in ((900, 400), (300, 120), (90, 30), (25, 6)):
        ay, ax, phase = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0, 6.28)
        dem += (
            amplitude
            * np.sin((ay * rows + ax * cols) * 6.28 / wavelength + phase)
            * np.cos((ax * rows - ay * cols) * 6.28 / wavelength)
        )
    return dem


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


def median_ms(function, warmup: int, repeats: int) -> float:
    """Median wall time of ``function()`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


# Runs the command given as its arguments (stdout discarded) and prints the command's own peak RSS.
LAUNCHER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def peak_rss_mb(command: list[str]) -> float:
    """Run ``command`` in a child process; return its peak resident memory in MB.

    Linux counts the memory of the process that spawns a child into the child's peak
    (the forked copy is measured until exec), so measured from this process, which
    holds TensorFlow and the models, every number would start at this process's
    size. A small launcher process runs the command instead and reports its
    RUSAGE_CHILDREN, which holds the command alone (the launcher's ~10 MB at most).
    Raises UserError with the command's last stderr line when it fails.
    """
    with tempfile.TemporaryFile() as stderr:
        result = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *map(str, command)], stdout=subprocess.PIPE, stderr=stderr
        )
        if result.returncode != 0:
            stderr.seek(0)
            lines = stderr.read().decode(errors="replace").strip().splitlines() or ["(no output)"]
            raise util.UserError(f"{' '.join(map(str, command))} failed: {lines[-1]}")
    maxrss = int(result.stdout.decode().split()[-1])
    return maxrss / 1024.0 if sys.platform != "darwin" else maxrss / 2**20  # kB on Linux, bytes on macOS


def enhance_peak_rss_mb(model_path: Path, photo_path: Path, out_dir: Path) -> float:
    """Peak RSS (MB) of ``enhance.py`` enhancing ``photo_path`` (photo or .tif raster) with ``model_path``."""
    target = out_dir / f"{photo_path.stem}_enhanced{photo_path.suffix if photo_path.suffix == '.tif' else '.png'}"
    try:
        return peak_rss_mb(
            [sys.executable, str(ENHANCE), str(photo_path), "--model", str(model_path), "--out", str(target)]
            + ["--overwrite", "--quiet"]
        )
    finally:
        target.unlink(missing_ok=True)


# ---- 2. Rows of the table ------------------------------------------------------------


def quality(task: Task | None, folders, enhance=None) -> dict:
    """{dataset: {"psnr", "ssim"}} of the method (the baseline when ``enhance`` is None)."""
    if task is None:
        return {}
    key = "baseline" if enhance is None else "model"
    return {r["dataset"]: r["mean"][key] for r in (evaluate_folder(f, task, enhance) for f in folders)}


def baseline_row(task: Task, folders, args) -> dict:
    row = {"method": task.baseline_name, "task": task.name, "parameters": 0}
    row["quality"] = quality(task, folders)
    row["ms_per_mp"] = None
    if task.scale > 1:  # the noisy input itself costs nothing
        side = SPEED_OUTPUT // task.scale
        degraded = synthetic_photo(side, side)
        megapixels = (side * task.scale) ** 2 / 1e6
        row["ms_per_mp"] = median_ms(lambda: baseline(degraded, task), WARMUP, args.repeats) / megapixels
    row["peak_rss_mb"] = None
    return row


def benchmark_task_of(info: dict) -> Task | None:
    """The benchmark task of a model; None for a task without a benchmark protocol (noise64blur)."""
    try:
        return benchmark_task(info["task"])
    except util.UserError:
        return None


def model_row(path: Path, model, info: dict, folders, args, photo_path: Path | None, work_dir: Path) -> dict:
    from util.inference import enhance_array
    from util.models import prepare_input

    task = benchmark_task_of(info)  # None: speed and size only
    row = {"method": str(path), "task": info["task"], "info": info}
    row["parameters"] = int(model.count_params())
    row["quality"] = quality(task, folders, lambda degraded: enhance_array(model, info, degraded, progress=False))
    side = SPEED_OUTPUT // info["scale"]
    model_input = prepare_input(synthetic_photo(side, side), info)[None]
    megapixels = (side * info["scale"]) ** 2 / 1e6
    row["ms_per_mp"] = median_ms(lambda: model.predict_on_batch(model_input), WARMUP, args.repeats) / megapixels
    row["peak_rss_mb"] = None if photo_path is None else enhance_peak_rss_mb(path, photo_path, work_dir)
    return row


def training_speed(script, task: str, seconds: float, batch: int | None = None) -> dict:
    """Samples/s of one model script's training step with its default constants (see the module doc)."""
    from util import speed

    settings, _ = script.settings(["--task", task, *(["--batch", str(batch)] if batch else [])])
    return {
        "script": script.name,
        "prototype": script.prototype,
        **speed.training_speed(script.build_model, settings, seconds),
    }


def training_markdown(rows: list[dict]) -> str:
    fastest_prototype = max(r["samples_per_second"] for r in rows if r["prototype"]) if rows else 0
    lines = [
        "| script | architecture | parameters | batch | precision | samples / s (median) | rounds | "
        "vs fastest prototype |",
        "|---|---|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        ratio = f"{r['samples_per_second'] / fastest_prototype:.1f}x" if fastest_prototype else "—"
        rounds = ", ".join(f"{v:.1f}" for v in r["rounds"])
        lines.append(
            f"| {r['script']} | {r['architecture']} | {r['parameters']:,} | {r['batch']} | {r['precision']} | "
            f"{r['samples_per_second']:.1f} | {rounds} | {ratio} |"
        )
    return "\n".join(lines)


def machine_name() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


def main_training(args) -> None:
    if args.seconds <= 0:
        raise util.UserError(f"--seconds {args.seconds}: give a positive number of seconds")
    if args.rounds < 1:
        raise util.UserError(f"--rounds {args.rounds}: give at least 1")
    from util.roles import find_model_scripts
    from util.tasks import stored_task

    args.task = args.task or "sr4"
    stored_task(args.task)
    scripts = find_model_scripts()
    scripts = [scripts[name] for name in TRAINING_SCRIPTS or scripts]
    timings = {script.name: [] for script in scripts}
    for round_ in range(args.rounds):
        for script in scripts:
            print(f"round {round_ + 1}/{args.rounds}: timing {script.name} ({args.task}) ...", file=sys.stderr)
            timings[script.name].append(training_speed(script, args.task, args.seconds / args.rounds, args.batch))
    rows = []
    for runs in timings.values():
        speeds = [r["samples_per_second"] for r in runs]
        median = sorted(runs, key=lambda r: r["samples_per_second"])[len(runs) // 2]  # even counts: the upper middle
        rows.append({**median, "rounds": speeds})
    table = training_markdown(rows)
    print(table)
    util.write_text_atomic(args.out / "training_speed.md", f"Training speed on {machine_name()}\n\n{table}\n")
    util.write_json_atomic(args.out / "training_speed.json", {"machine": machine_name(), "rows": rows})
    print(f"\nwritten: {args.out / 'training_speed.md'}, {args.out / 'training_speed.json'}")


def main_scaling(args) -> None:
    """``--scaling``: edsr_lite.py trained by one pinned process, then by two pinned workers (module doc)."""
    import json
    import resource
    import shutil
    import socket

    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        raise util.UserError("--scaling needs taskset (util-linux) and at least 2 CPU cores")
    task = args.task or "sr4"
    flags = ["--task", task, "--backprops", str(SCALING_BACKPROPS), "--epochs", "2", "--val-patches", "64"]
    flags += ["--test-patches", "64"] + (["--batch", str(args.batch)] if args.batch else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        for workers in (1, 2):
            ports = []
            for _ in range(workers):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    ports.append(s.getsockname()[1])
            out = Path(tmp) / f"w{workers}"
            procs = []
            for index in range(workers):
                env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
                if workers > 1:
                    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
                    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
                command = ["taskset", "-c", str(index), sys.executable, str(REPO / "edsr_lite.py"), *flags]
                log = open(Path(tmp) / f"w{workers}-{index}.log", "w")  # noqa: SIM115 (closed with the process)
                procs.append((subprocess.Popen([*command, "--out", str(out)], env=env, stdout=log, stderr=log), log))
                print(f"--scaling: {workers} worker(s), worker {index} on core {index} ...", file=sys.stderr)
            for proc, log in procs:
                proc.wait()
                log.close()
            if any(proc.returncode for proc, _ in procs):
                tail = (Path(tmp) / f"w{workers}-0.log").read_text()[-1500:]
                raise util.UserError(f"--scaling: the {workers}-worker training failed; its log ends: {tail}")
            results = json.loads(next(out.glob("*/results.json")).read_text())
            rows.append(
                {
                    "workers": workers,
                    "replicas": results["replicas"],
                    "batch": results["batch"],
                    "backprops": results["backprops"],
                    "train_seconds": results["train_seconds"],
                    "samples_per_second": results["train_samples_per_second"],
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
                    "model_psnr": results["model_scores"]["psnr"],
                }
            )
    base = rows[0]["samples_per_second"]
    lines = [
        "| workers (one core each) | global batch | backprops | train s | samples / s | efficiency | "
        "peak RSS (MB) | test PSNR (dB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        row["efficiency"] = round(row["samples_per_second"] / (row["workers"] * base), 3)
        lines.append(
            f"| {row['workers']} | {row['batch']} | {row['backprops']} | {row['train_seconds']:.0f} | "
            f"{row['samples_per_second']:.1f} | {row['efficiency']:.0%} | {row['peak_rss_mb']} | "
            f"{row['model_psnr']:.2f} |"
        )
    table = "\n".join(lines)
    note = f"edsr_lite.py --task {task} on the built-in pairs, {SCALING_BACKPROPS} backprops, taskset-pinned"
    print(f"{note}\n\n{table}")
    name = f"training_scaling_b{rows[0]['batch']}"
    util.write_text_atomic(args.out / f"{name}.md", f"Training scaling on {machine_name()}: {note}\n\n{table}\n")
    util.write_json_atomic(args.out / f"{name}.json", {"machine": machine_name(), "note": note, "rows": rows})
    print(f"\nwritten: {args.out / f'{name}.md'}, {args.out / f'{name}.json'}")


def main_data_sizes(args) -> None:
    """``--data-sizes``: peak RSS of writing and of training on N pairs, for each N (module doc)."""
    import json
    import shutil

    try:
        sizes = [int(n) for n in args.data_sizes.split(",")]
    except ValueError:
        raise util.UserError(
            f"--data-sizes {args.data_sizes!r}: give training-set sizes such as 10000,100000"
        ) from None
    if not sizes or min(sizes) < 1:
        raise util.UserError(f"--data-sizes {args.data_sizes!r}: give positive sizes")
    rows = []
    with tempfile.TemporaryDirectory(prefix="data-sizes-", dir=REPO / "datasets") as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            print(f"--data-sizes: writing {n} pairs ...", file=sys.stderr)
            started = time.time()
            write_rss = peak_rss_mb(
                [sys.executable, REPO / "download.py", "builtin", "--train", n, "--test", 100, "--out", folder]
            )
            write_seconds = time.time() - started
            print(f"--data-sizes: training on {n} pairs ...", file=sys.stderr)
            command = [sys.executable, REPO / "edsr_lite.py", "--dataset", folder / "builtin", "--train-patches", n]
            command += ["--backprops", SCALING_BACKPROPS, "--epochs", 2, "--val-patches", 64, "--test-patches", 100]
            train_rss = peak_rss_mb([*command, "--out", folder / "runs"])
            results = json.loads(next((folder / "runs").glob("*/results.json")).read_text())
            rows.append(
                {
                    "train_pairs": n,
                    "write_seconds": round(write_seconds, 1),
                    "write_peak_rss_mb": round(write_rss),
                    "train_peak_rss_mb": round(train_rss),
                    "samples_per_second": results["train_samples_per_second"],
                    "model_psnr": results["model_scores"]["psnr"],
                }
            )
            shutil.rmtree(folder)
    lines = [
        "| training pairs | download.py s | download.py peak RSS (MB) | training peak RSS (MB) | samples / s |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['train_pairs']} | {r['write_seconds']:.0f} | {r['write_peak_rss_mb']} | {r['train_peak_rss_mb']} | "
        f"{r['samples_per_second']:.1f} |"
        for r in rows
    ]
    table = "\n".join(lines)
    note = f"download.py builtin --train N, then edsr_lite.py (sr4) on all N pairs for {SCALING_BACKPROPS} backprops"
    print(f"{note}\n\n{table}")
    util.write_text_atomic(args.out / "data_sizes.md", f"Data sizes on {machine_name()}: {note}\n\n{table}\n")
    util.write_json_atomic(args.out / "data_sizes.json", {"machine": machine_name(), "note": note, "rows": rows})
    print(f"\nwritten: {args.out / 'data_sizes.md'}, {args.out / 'data_sizes.json'}")


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


def write_synthetic_dem(path: Path, side: int) -> Path:
    """A float32 GeoTIFF of ``synthetic_dem(side)`` on 1 arc-second cells at 40 N (a GLO-30 tile's grid)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=side,
        width=side,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(-106.0, 41.0, 1 / 3600, 1 / 3600),
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(synthetic_dem(side), 1)
    return path


def raster_markdown(rows: list[dict]) -> str:
    side = MEMORY_RASTER
    header = "| method | scale | parameters | RMSE (m) | slope RMSE (deg) | ms / output MP | "
    header += f"peak RSS, {side}x{side} DEM (MB) | enhance.py on it (s) |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rss = "—" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"
        ms = "—" if r.get("ms_per_mp") is None else f"{r['ms_per_mp']:.0f}"
        lines.append(
            f"| {r['method']} | x{r['scale']} | {r['parameters']:,} | {r['rmse']:.3f} | {r['slope_rmse']:.2f} | "
            f"{ms} | {rss} | {'—' if r.get('enhance_seconds') is None else r['enhance_seconds']} |"
        )
    return "\n".join(lines)


def main_raster(args) -> None:
    """``--raster``: quality, speed and memory of the raster models (module doc)."""
    from util.models import load_model
    from util.raster_enhance import enhance_raster_array
    from util.raster_eval import evaluate_raster_files, raster_files

    models = args.models or sorted(MODELS.glob("dem_*.keras"))
    loaded = [(path, *load_model(path)) for path in models]
    if not loaded:
        raise util.UserError(f"no raster models in {MODELS} (dem_*.keras); give model files")
    for path, _, info in loaded:
        if info.get("data_kind") != "raster":
            raise util.UserError(f"{path}: a photo model; --raster benchmarks raster models (dem_*.keras)")
    data = args.data or [RASTER_DATA]
    for folder in data:
        if not folder.exists():
            raise util.UserError(f"{folder}: no such file or folder; run `python3 download.py dem` or give --data")
    files = raster_files(data)
    rows = []
    with tempfile.TemporaryDirectory(prefix="benchmark-") as work:
        work_dir = Path(work)
        dem_path = None if args.skip_memory else write_synthetic_dem(work_dir / "synthetic_dem.tif", MEMORY_RASTER)
        for scale in sorted({info["scale"] for _, _, info in loaded}):
            pooled = evaluate_raster_files(files, scale)["pooled"]
            for name in ("bicubic", "cubic spline"):
                rows.append({"method": name, "scale": scale, "parameters": 0, **pooled[name]})
        for path, model, info in loaded:
            print(f"benchmarking {path} ...", file=sys.stderr)
            scale = info["scale"]
            enhance = functools.partial(enhance_raster_array, model, info)
            pooled = evaluate_raster_files(files, scale, enhance)["pooled"]
            lr = synthetic_dem(SPEED_OUTPUT // scale)[None, ..., None]
            megapixels = SPEED_OUTPUT**2 / 1e6
            row = {"method": str(path), "scale": scale, "parameters": int(model.count_params()), **pooled["model"]}
            row["ms_per_mp"] = median_ms(lambda: model.predict_on_batch(lr), WARMUP, args.repeats) / megapixels  # noqa: B023
            started = time.perf_counter()
            row["peak_rss_mb"] = None if dem_path is None else enhance_peak_rss_mb(path, dem_path, work_dir)
            row["enhance_seconds"] = None if dem_path is None else round(time.perf_counter() - started, 1)
            rows.append(row)
    table = raster_markdown(rows)
    machine = machine_name()
    print(table)
    util.write_text_atomic(args.out / "benchmark_raster.md", f"Raster benchmark on {machine}\n\n{table}\n")
    util.write_json_atomic(
        args.out / "benchmark_raster.json",
        {"machine": machine, "data": [str(f) for f in files], "memory_dem": MEMORY_RASTER, "rows": rows},
    )
    print(f"\nwritten: {args.out / 'benchmark_raster.md'}, {args.out / 'benchmark_raster.json'}")


RESTORATION_DATA = {"denoising": "CBSD68", "deblurring": "Set14"}  # the standard sets, in datasets/benchmark/


def restoration_methods(task: Task, models: list[Path]):
    """[(label, function (degraded, known) -> uint8, parameters)] of the peers and models for ``task``."""
    from util import peers
    from util.inference import enhance_to_uint8
    from util.models import load_model
    from util.tasks import parse_task, task_family

    family = task_family(task)
    methods = [(task.baseline_name, lambda image, known: image, 0)]
    methods += [(name, f, 0) for name, f in (peers.DENOISERS if family == "denoising" else peers.DEBLURRERS).items()]
    for path in models:
        if not path.is_file():
            raise util.UserError(f"{path}: no such model file; give saved models (runs/<run>/model.keras)")
        model, info = load_model(path)
        if task_family(parse_task(info["task"])) != family:
            raise util.UserError(f"{path}: a model for {info['task']}, not for {family} ({task.name}); leave it out")

        def run(image, known, model=model, info=info):
            return enhance_to_uint8(model, info, image, progress=False)

        methods.append((f"{path} ({info['task']})", run, int(model.count_params())))
    return methods


def main_restoration(args, task: Task) -> None:
    """Denoising / deblurring peers and models on CBSD68 or Set14, measured in one run (module doc)."""
    from util.evaluation import check_noisy, degrade_known, load_reference, measure, protocol_note, reference_images
    from util.tasks import task_family

    check_noisy(args.noisy, task)
    family = task_family(task)
    default_models = sorted(MODELS.glob(f"{'denoise' if family == 'denoising' else 'deblur'}*.keras"))
    models = args.models or default_models
    folders = args.data or [BENCHMARK_DIR / RESTORATION_DATA[family]]
    for folder in folders:
        if not folder.is_dir():
            fetch = "python3 download.py cbsd68" if family == "denoising" else "python3 download.py benchmarks"
            raise util.UserError(f"{folder}: no such folder; run `{fetch}` or give --data folders of clean images")
    if args.images < 0:
        raise util.UserError(f"--images {args.images}: give 0 (all) or a positive count")
    methods = restoration_methods(task, models)
    rows = []
    for folder in folders:
        paths = reference_images(folder)[: args.images or None]
        if not paths:
            raise util.UserError(f"{folder}: no images found; give a folder of clean benchmark images")
        scores = {label: [] for label, _, _ in methods}
        seconds = dict.fromkeys(scores, 0.0)
        megapixels = 0.0
        for index, path in enumerate(paths):
            reference = load_reference(path)
            target, degraded, known = degrade_known(reference, task, path.stem, args.noisy)
            megapixels += target.shape[0] * target.shape[1] / 1e6
            print(f"{folder.name}/{path.name}: {', '.join(f'{k} {v:.3g}' for k, v in known.items())}", file=sys.stderr)
            if index == 0:
                # One untimed run of every method on the first image: a model's graph is traced on
                # its first call, a one-time cost like loading it (the classical peers have none).
                for _, function, _ in methods:
                    function(degraded, known)
            for label, function, _ in methods:
                started = time.perf_counter()
                output = function(degraded, known)
                seconds[label] += time.perf_counter() - started
                scores[label].append(measure(output, target, task))
        for label, _, parameters in methods:
            rows.append(
                {
                    "data": folder.name,
                    "method": label,
                    "parameters": parameters,
                    "images": len(paths),
                    "psnr": float(np.mean([s["psnr"] for s in scores[label]])),
                    "ssim": float(np.mean([s["ssim"] for s in scores[label]])),
                    "s_per_mp": seconds[label] / megapixels,
                }
            )
    lines = ["| data | method | parameters | PSNR (dB) | SSIM | s / MP |", "|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['data']} ({r['images']}) | {r['method']} | {r['parameters']:,} | {r['psnr']:.2f} | {r['ssim']:.4f} "
        f"| {r['s_per_mp']:.3g} |"
        for r in rows
    ]
    machine = machine_name()
    table = "\n".join(lines)
    note = protocol_note(task, args.noisy)
    print(f"{task.name}: {note}\n\n{table}")
    stem = f"benchmark_{task.name}" + ("_float" if args.noisy == "float" else "")
    util.write_text_atomic(args.out / f"{stem}.md", f"{task.name} on {machine}. {note}\n\n{table}\n")
    util.write_json_atomic(
        args.out / f"{stem}.json",
        {"machine": machine, "task": task.name, "noisy": args.noisy, "protocol": note, "rows": rows},
    )
    print(f"\nwritten: {args.out / f'{stem}.md'}, {args.out / f'{stem}.json'}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.batch is not None and args.batch < 1:
        raise util.UserError(
            f"--batch {args.batch}: give a batch size of at least 1 (or leave it out: each script's BATCH)"
        )
    if args.training:
        return main_training(args)
    if args.scaling:
        return main_scaling(args)
    if args.data_sizes:
        return main_data_sizes(args)
    if args.raster:
        return main_raster(args)
    if args.task:
        from util.tasks import task_family

        task = benchmark_task(args.task)
        if task_family(task) != "super-resolution":
            return main_restoration(args, task)
    models = args.models or sorted(
        MODELS.glob("sr*.keras")
    )  # the SR models; DEM and restoration ones have their tables
    if not args.models:
        print(f"note: {len(models)} model(s) in {MODELS}", file=sys.stderr)
    for path in models:
        if not path.is_file():
            raise util.UserError(f"{path}: no such model file; give saved models (runs/<run>/model.keras)")
    folders = args.data or standard_sets()
    for folder in folders:
        if not folder.is_dir():
            raise util.UserError(f"{folder}: no such folder; give --data folders of HR images")
    if args.repeats < 1:
        raise util.UserError(f"--repeats {args.repeats}: give 1 or more")
    from util.models import load_model

    loaded = [(path, *load_model(path)) for path in models]
    # One baseline row per task of the models (bicubic x4 when there are none).
    tasks = list(dict.fromkeys(p for _, _, info in loaded if (p := benchmark_task_of(info)) is not None))
    rows = [baseline_row(task, folders, args) for task in tasks or [benchmark_task("sr4")]]
    with tempfile.TemporaryDirectory(prefix="benchmark-") as work:
        work_dir = Path(work)
        photo_path = None
        if not args.skip_memory and models:
            photo_path = work_dir / "synthetic_photo.png"
            Image.fromarray(synthetic_photo(*MEMORY_PHOTO)).save(photo_path, compress_level=1)
        for path, model, info in loaded:
            print(f"benchmarking {path} ...", file=sys.stderr)
            rows.append(model_row(path, model, info, folders, args, photo_path, work_dir))
    sets = [folder.name for folder in folders]
    table = markdown(rows, sets)
    machine = machine_name()
    print(table)
    util.write_text_atomic(args.out / "benchmark.md", f"Benchmark on {machine}\n\n{table}\n")
    result = {
        "machine": machine,
        "speed": {"output": SPEED_OUTPUT, "warmup": WARMUP, "repeats": args.repeats, "batch": 1},
        "memory_photo": None if args.skip_memory else {"height": MEMORY_PHOTO[0], "width": MEMORY_PHOTO[1]},
        "rows": rows,
    }
    util.write_json_atomic(args.out / "benchmark.json", result)
    print(f"\nwritten: {args.out / 'benchmark.md'}, {args.out / 'benchmark.json'}")


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
