"""The scores of a model on a data set's test pairs (the run's protocol), for training's report and ``--role test``.

Photos: the prototype's protocol against the task's baseline (util.evaluation.protocols). Rasters: RMSE,
MAE, bias, slope RMSE and PSNR over the valid cells in data units against bicubic and cubic
spline (util.evaluation.raster_metrics). ``comparison.png`` is written beside the scores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from util.data.tasks import parse_task
from util.models.layers import model_info

if TYPE_CHECKING:
    from util.training.settings import Settings


def score_test_pairs(model, settings: Settings, folder: Path, folder_out: Path, meta: dict, ensemble=False) -> dict:
    """Score ``model`` and the baseline on the test pairs (the prototype's protocol); write comparison.png."""
    from util.data import pipelines
    from util.evaluation import report
    from util.evaluation.protocols import PROTOTYPE_PROTOCOL, baseline, score_patches
    from util.inference.tiles import predict_patches

    info = model_info(model)
    task = parse_task(settings.task)
    test_lr, test_hr = pipelines.load_split(folder, settings.task, "test", settings.test_patches or None)
    started = time.time()
    outputs = predict_patches(model, info, test_lr)
    infer_seconds = time.time() - started
    base = baseline(test_lr, task)
    results = dict(meta)
    results.update(
        n_test=len(test_hr),
        protocol=PROTOTYPE_PROTOCOL,
        baseline_name=task.baseline_name,
        baseline=score_patches(base, test_hr),
        model_scores=score_patches(outputs, test_hr),
        test_patches_per_second=round(len(test_hr) / infer_seconds, 2),
    )
    if ensemble:
        started = time.time()
        results["ensemble_scores"] = score_patches(predict_patches(model, info, test_lr, ensemble=True), test_hr)
        results["ensemble_patches_per_second"] = round(len(test_hr) / (time.time() - started), 2)
    report.comparison_figure(test_lr, base, outputs, test_hr, results, folder_out / "comparison.png")
    return results


def score_raster_test_pairs(model, settings: Settings, folder: Path, folder_out: Path, meta: dict, ensemble=False):
    """Score a raster model, bicubic and cubic spline on the raster test pairs in data units; write comparison.png.

    Over the valid cells only: RMSE, MAE, bias, slope RMSE (degrees, Horn, each patch's
    cell size) and PSNR on range-normalised heights (util.evaluation.raster_metrics.raster_scores).
    """
    from util.data import pipelines
    from util.evaluation import raster_eval, raster_metrics
    from util.inference.raster_enhance import predict_raster_patches

    info = model_info(model)
    scale = info["scale"]
    lr, hr, mask, cells = pipelines.load_raster_split(folder, settings.task, "test", settings.test_patches or None)
    started = time.time()
    outputs = predict_raster_patches(model, info, lr)
    infer_seconds = time.time() - started
    valid = mask[..., 0].astype(bool)
    targets = hr[..., 0]
    methods = {
        "bicubic": np.stack([raster_metrics.upsample_bicubic(p, scale) for p in lr[..., 0]]),
        "cubic spline": np.stack([raster_metrics.upsample_spline(p, scale) for p in lr[..., 0]]),
        "model": outputs[..., 0],
    }
    if ensemble:
        methods["model + self-ensemble"] = predict_raster_patches(model, info, lr, ensemble=True)[..., 0]
    results = dict(meta)
    results.update(
        n_test=len(hr),
        protocol="raster: valid cells of the test patches (spatially disjoint from training), data units",
        units=pipelines.manifest_of(folder).get("units", "m"),
        raster_scores={
            name: raster_metrics.raster_scores(values, targets, valid, cells) for name, values in methods.items()
        },
        test_patches_per_second=round(len(hr) / infer_seconds, 2),
    )
    raster_eval.raster_comparison_figure(
        targets[:4],
        valid[:4],
        lr[:4, ..., 0],
        {k: v[:4] for k, v in methods.items()},
        cells[:4],
        folder_out / "comparison.png",
        results["units"],
    )
    return results
