"""What the benchmark subcommands share: timing, peak memory, the machine, flags and the written tables.

* ``median_ms``: the median wall time of a call after warm-up runs;
* ``peak_rss_mb``: the peak resident memory of a command run in a child process of its own
  (``enhance_peak_rss_mb``: of ``enhance.py`` on one file);
* ``machine_name``: the CPU, core count and system each table names;
* ``write_tables``: ``<stem>.md`` and ``<stem>.json`` in ``--out``;
* the flags and checks that several subcommands take (``--out``, ``--repeats``; ``--batch``'s check).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import util

# ---- Constants: edit these -------------------------------------------------
REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "assets" / "models"  # where the saved models benchmarked when none is given are
OUT = REPO / "runs" / "benchmark"  # --out of every subcommand
SPEED_OUTPUT = 512  # side of the output whose inference is timed
WARMUP = 2  # untimed runs before the timed ones
REPEATS = 5  # timed inference runs (--repeats); the median is kept
SCALING_BACKPROPS = 9600  # samples trained by each run of `scaling` and `data-sizes` (2 epochs)
ENHANCE = REPO / "enhance.py"  # the command whose peak memory is measured


# ---- 1. Time and memory ---------------------------------------------------------------


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


def peak_rss_mb(command: list) -> float:
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


def enhance_peak_rss_mb(model_path: Path, photo_path: Path, out_dir: Path, flags=()) -> float:
    """Peak RSS (MB) of ``enhance.py`` enhancing ``photo_path`` (photo or .tif raster) with ``model_path``.

    ``flags``: more of enhance.py's flags (``["--runtime", "onnx"]``).
    """
    target = out_dir / f"{photo_path.stem}_enhanced{photo_path.suffix if photo_path.suffix == '.tif' else '.png'}"
    try:
        return peak_rss_mb(
            [sys.executable, str(ENHANCE), str(photo_path), "--model", str(model_path), "--out", str(target)]
            + ["--overwrite", "--quiet", *flags]
        )
    finally:
        target.unlink(missing_ok=True)


# ---- 2. The machine and the written tables ----------------------------------------------


def machine_name() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


def write_tables(out: Path, stem: str, heading: str, table: str, result: dict) -> None:
    """``out/<stem>.md`` (``heading``, then the markdown ``table``) and ``out/<stem>.json`` (``result``)."""
    util.write_text_atomic(out / f"{stem}.md", f"{heading}\n\n{table}\n")
    util.write_json_atomic(out / f"{stem}.json", result)
    print(f"\nwritten: {out / f'{stem}.md'}, {out / f'{stem}.json'}")


# ---- 3. Flags that several subcommands take ---------------------------------------------


def add_out_argument(parser, written: str) -> None:
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder of {written} (default: {OUT})")


def add_models_argument(parser, default: str) -> None:
    parser.add_argument("models", nargs="*", type=Path, help=f"saved models (default: {MODELS}/{default})")


def add_speed_arguments(parser) -> None:
    """``--repeats`` and ``--skip-memory``: how the inference time and the peak-memory column are measured."""
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per model (the median is kept)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the (slow) peak-memory column")


def check_repeats(repeats: int) -> None:
    if repeats < 1:
        raise util.UserError(f"--repeats {repeats}: give 1 or more")


def check_batch(batch: int | None) -> None:
    if batch is not None and batch < 1:
        raise util.UserError(f"--batch {batch}: give a batch size of at least 1 (or leave it out: each script's BATCH)")
