"""Denoising and deblurring: the degraded input, the classical peers and the models in one table.

    python3 benchmark.py restoration --task noise25               # denoising: CBSD68, CBM3D and others beside
    python3 benchmark.py restoration --task defocus               # deblurring: Set14, Wiener / Richardson-Lucy
    python3 benchmark.py restoration runs/a/model.keras --task noise25 --noisy float

``--task noiseS`` (or ``noise``) and ``--task defocus[R]``, all measured in the same run: the
degraded input, the classical peers (util/evaluation/peers.py: CBM3D, non-local means and wavelet
denoising given the true sigma; Wiener and Richardson-Lucy deconvolution given the true PSF)
and the models (default: assets/models/denoise*.keras or deblur*.keras), with RGB PSNR / SSIM
(the denoising literature's) and seconds per megapixel (after one untimed run of every method
on the first image), on CBSD68 (noise) or Set14 (defocus) in datasets/benchmark/ (--data for
others, --images N for the first N). benchmark_<task>.md and .json in --out (with
``--noisy float``, benchmark_<task>_float.md and .json).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import util
from util.benchmarks import measure
from util.benchmarks.measure import MODELS
from util.data.tasks import Task, task_family
from util.evaluation.protocols import BENCHMARK_DIR, NOISY_HELP, NOISY_INPUTS, benchmark_task

# ---- Constants: edit these -------------------------------------------------
RESTORATION_DATA = {"denoising": "CBSD68", "deblurring": "Set14"}  # the standard sets, in datasets/benchmark/


def add_arguments(parser) -> None:
    measure.add_models_argument(parser, "denoise*.keras or deblur*.keras, by the task")
    parser.add_argument(
        "--task", required=True, help="noiseS, noise or defocus[R]: the degradation, its peers and models"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        help=f"folders of clean images (default: {RESTORATION_DATA['denoising']} for noise, "
        f"{RESTORATION_DATA['deblurring']} for defocus, in {BENCHMARK_DIR})",
    )
    parser.add_argument("--images", type=int, default=0, help="the first N images of each folder (0 = all)")
    parser.add_argument("--noisy", choices=NOISY_INPUTS, default="8bit", help=NOISY_HELP)
    measure.add_out_argument(parser, "benchmark_<task>.md and benchmark_<task>.json")


def restoration_task(name: str) -> Task:
    """The benchmark task of ``--task``; a UserError for a super-resolution one (the `models` table's)."""
    task = benchmark_task(name)
    if task_family(task) == "super-resolution":
        raise util.UserError(
            f"--task {name}: a super-resolution task; give noiseS, noise or defocus[R] "
            "(`benchmark.py models` benchmarks super-resolution models)"
        )
    return task


def restoration_methods(task: Task, models: list[Path]):
    """[(label, function (degraded, known) -> uint8, parameters)] of the peers and models for ``task``."""
    from util.data.tasks import parse_task
    from util.evaluation import peers
    from util.inference.tiles import enhance_to_uint8
    from util.models.loading import load_model

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


def checked_folders(data: list[Path] | None, family: str) -> list[Path]:
    """The folders of clean images (default: the family's standard set); a UserError for a missing one."""
    folders = data or [BENCHMARK_DIR / RESTORATION_DATA[family]]
    for folder in folders:
        if not folder.is_dir():
            fetch = "python3 download.py cbsd68" if family == "denoising" else "python3 download.py benchmarks"
            raise util.UserError(f"{folder}: no such folder; run `{fetch}` or give --data folders of clean images")
    return folders


def folder_rows(folder: Path, task: Task, methods, images: int, noisy: str) -> list[dict]:
    """One row per method: mean PSNR / SSIM and seconds per megapixel on the first ``images`` of ``folder``."""
    from util.evaluation import protocols

    paths = protocols.reference_images(folder)[: images or None]
    if not paths:
        raise util.UserError(f"{folder}: no images found; give a folder of clean benchmark images")
    scores = {label: [] for label, _, _ in methods}
    seconds = dict.fromkeys(scores, 0.0)
    megapixels = 0.0
    for index, path in enumerate(paths):
        reference = protocols.load_reference(path)
        target, degraded, known = protocols.degrade_known(reference, task, path.stem, noisy)
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
            scores[label].append(protocols.measure(output, target, task))
    return [
        {
            "data": folder.name,
            "method": label,
            "parameters": parameters,
            "images": len(paths),
            "psnr": float(np.mean([s["psnr"] for s in scores[label]])),
            "ssim": float(np.mean([s["ssim"] for s in scores[label]])),
            "s_per_mp": seconds[label] / megapixels,
        }
        for label, _, parameters in methods
    ]


def restoration_markdown(rows: list[dict]) -> str:
    lines = ["| data | method | parameters | PSNR (dB) | SSIM | s / MP |", "|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['data']} ({r['images']}) | {r['method']} | {r['parameters']:,} | {r['psnr']:.2f} | {r['ssim']:.4f} "
        f"| {r['s_per_mp']:.3g} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(args) -> None:
    """``benchmark.py restoration``: denoising / deblurring peers and models, measured in one run (module doc)."""
    from util.evaluation.protocols import check_noisy, protocol_note

    task = restoration_task(args.task)
    check_noisy(args.noisy, task)
    family = task_family(task)
    models = args.models or sorted(MODELS.glob(f"{'denoise' if family == 'denoising' else 'deblur'}*.keras"))
    folders = checked_folders(args.data, family)
    if args.images < 0:
        raise util.UserError(f"--images {args.images}: give 0 (all) or a positive count")
    methods = restoration_methods(task, models)
    rows = [row for folder in folders for row in folder_rows(folder, task, methods, args.images, args.noisy)]
    table = restoration_markdown(rows)
    machine = measure.machine_name()
    note = protocol_note(task, args.noisy)
    print(f"{task.name}: {note}\n\n{table}")
    stem = f"benchmark_{task.name}" + ("_float" if args.noisy == "float" else "")
    result = {"machine": machine, "task": task.name, "noisy": args.noisy, "protocol": note, "rows": rows}
    measure.write_tables(args.out, stem, f"{task.name} on {machine}. {note}", table, result)
