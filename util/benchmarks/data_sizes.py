"""Peak memory of download.py and of training against the size of the training set.

    python3 benchmark.py data-sizes 10000,100000

For each N, writes N built-in training pairs with ``download.py builtin`` into a temporary
folder in datasets/ (16.7 GB for 100 000: mind the disk) and trains edsr_lite.py on all of
them for SCALING_BACKPROPS samples, one child process each: the peak RSS of each against N
and the training's samples/s. data_sizes.md and .json in --out.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import util
from util.benchmarks import measure
from util.benchmarks.measure import REPO, SCALING_BACKPROPS


def add_arguments(parser) -> None:
    parser.add_argument("sizes", metavar="N,N", help="training-set sizes in pairs, comma-separated (10000,100000)")
    measure.add_out_argument(parser, "data_sizes.md and data_sizes.json")


def parse_sizes(text: str) -> list[int]:
    """[10000, 100000] from "10000,100000"; a UserError for anything but positive counts."""
    try:
        sizes = [int(n) for n in text.split(",")]
    except ValueError:
        raise util.UserError(f"data-sizes {text!r}: give training-set sizes such as 10000,100000") from None
    if not sizes or min(sizes) < 1:
        raise util.UserError(f"data-sizes {text!r}: give positive sizes")
    return sizes


def measure_size(n: int, folder: Path) -> dict:
    """Write ``n`` built-in pairs into ``folder`` and train on them: the row of the table."""
    print(f"data-sizes: writing {n} pairs ...", file=sys.stderr)
    started = time.time()
    write_rss = measure.peak_rss_mb(
        [sys.executable, REPO / "download.py", "builtin", "--train", n, "--test", 100, "--out", folder]
    )
    write_seconds = time.time() - started
    print(f"data-sizes: training on {n} pairs ...", file=sys.stderr)
    command = [sys.executable, REPO / "edsr_lite.py", "--dataset", folder / "builtin", "--train-patches", n]
    command += ["--backprops", SCALING_BACKPROPS, "--epochs", 2, "--val-patches", 64, "--test-patches", 100]
    train_rss = measure.peak_rss_mb([*command, "--out", folder / "runs"])
    results = json.loads(next((folder / "runs").glob("*/results.json")).read_text())
    return {
        "train_pairs": n,
        "write_seconds": round(write_seconds, 1),
        "write_peak_rss_mb": round(write_rss),
        "train_peak_rss_mb": round(train_rss),
        "samples_per_second": results["train_samples_per_second"],
        "model_psnr": results["model_scores"]["psnr"],
    }


def main(args) -> None:
    """``benchmark.py data-sizes``: peak RSS of writing and of training on N pairs, for each N (module doc)."""
    sizes = parse_sizes(args.sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="data-sizes-", dir=REPO / "datasets") as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            rows.append(measure_size(n, folder))
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
    machine = measure.machine_name()
    result = {"machine": machine, "note": note, "rows": rows}
    measure.write_tables(args.out, "data_sizes", f"Data sizes on {machine}: {note}", table, result)
