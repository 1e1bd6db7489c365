"""Training scaling: edsr_lite.py trained by 1 process against 2 tf.distribute workers, one core each.

    python3 benchmark.py scaling                                  # sr4, edsr_lite.py's BATCH
    python3 benchmark.py scaling --batch 32

Trains edsr_lite.py for real (--task, default sr4, on the built-in pairs of
``python3 download.py``; SCALING_BACKPROPS samples) by one process pinned to core 0 and by
two MultiWorkerMirroredStrategy workers on 127.0.0.1 pinned to cores 0 and 1 (``taskset``),
with the same global BATCH: samples/s of training (``train_samples_per_second`` of the run,
validations included), the scaling efficiency (2-worker speed / twice the 1-worker speed)
and the peak RSS of the largest process (--batch sets BATCH). training_scaling_b<BATCH>.md
and .json in --out.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import util
from util.benchmarks import measure
from util.benchmarks.measure import REPO, SCALING_BACKPROPS

# ---- Constants: edit these -------------------------------------------------
SCALING_TASK = "sr4"  # the task edsr_lite.py trains (--task)


def add_arguments(parser) -> None:
    parser.add_argument("--task", default=SCALING_TASK, help=f"the task trained (default: {SCALING_TASK})")
    parser.add_argument("--batch", type=int, help="the global batch size (default: edsr_lite.py's BATCH)")
    measure.add_out_argument(parser, "training_scaling_b<BATCH>.md and .json")


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports of 127.0.0.1 that were free a moment ago."""
    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return ports


def train_workers(workers: int, flags: list[str], tmp: Path) -> dict:
    """Train edsr_lite.py by ``workers`` processes pinned to cores 0, 1 ...; the row of the table."""
    import resource  # Unix only, as taskset

    ports = free_ports(workers)
    out = tmp / f"w{workers}"
    procs = []
    for index in range(workers):
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        if workers > 1:
            cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        command = ["taskset", "-c", str(index), sys.executable, str(REPO / "edsr_lite.py"), *flags]
        log = open(tmp / f"w{workers}-{index}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append((subprocess.Popen([*command, "--out", str(out)], env=env, stdout=log, stderr=log), log))
        print(f"scaling: {workers} worker(s), worker {index} on core {index} ...", file=sys.stderr)
    for proc, log in procs:
        proc.wait()
        log.close()
    if any(proc.returncode for proc, _ in procs):
        tail = (tmp / f"w{workers}-0.log").read_text()[-1500:]
        raise util.UserError(f"scaling: the {workers}-worker training failed; its log ends: {tail}")
    results = json.loads(next(out.glob("*/results.json")).read_text())
    return {
        "workers": workers,
        "replicas": results["replicas"],
        "batch": results["batch"],
        "backprops": results["backprops"],
        "train_seconds": results["train_seconds"],
        "samples_per_second": results["train_samples_per_second"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "model_psnr": results["model_scores"]["psnr"],
    }


def scaling_markdown(rows: list[dict]) -> str:
    """The table; sets each row's ``efficiency`` (samples/s against ``workers`` times the first row's)."""
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
    return "\n".join(lines)


def main(args) -> None:
    """``benchmark.py scaling``: edsr_lite.py trained by one pinned process, then by two pinned workers."""
    measure.check_batch(args.batch)
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        raise util.UserError("scaling needs taskset (util-linux) and at least 2 CPU cores")
    flags = ["--task", args.task, "--backprops", str(SCALING_BACKPROPS), "--epochs", "2", "--val-patches", "64"]
    flags += ["--test-patches", "64"] + (["--batch", str(args.batch)] if args.batch else [])
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        rows = [train_workers(workers, flags, Path(tmp)) for workers in (1, 2)]
    table = scaling_markdown(rows)
    note = f"edsr_lite.py --task {args.task} on the built-in pairs, {SCALING_BACKPROPS} backprops, taskset-pinned"
    print(f"{note}\n\n{table}")
    machine = measure.machine_name()
    name = f"training_scaling_b{rows[0]['batch']}"
    result = {"machine": machine, "note": note, "rows": rows}
    measure.write_tables(args.out, name, f"Training scaling on {machine}: {note}", table, result)
