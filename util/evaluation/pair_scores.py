"""The scores of a model on a data set's test pairs (the run's protocol), for training's report and ``--role test``.

Photos: the prototype's protocol against the task's baseline (util.evaluation.protocols). Rasters: RMSE,
MAE, bias, slope RMSE and PSNR over the valid cells in data units against bicubic and cubic
spline (util.evaluation.raster_metrics); a data set that is not of elevations (its manifest's
quantity, standard_name or units) gets no slope and the scores of a downscaling instead, with
the mean-preserving bicubic beside the other baselines. ``comparison.png`` is written beside the
scores, and for other quantities than elevation ``cell_errors.png``.
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


def score_raster_test_pairs(
    model,
    settings: Settings,
    folder: Path,
    folder_out: Path,
    meta: dict,
    ensemble=False,
    test_split: str = "spatially disjoint from training",
    aux_inputs: np.ndarray | None = None,
):
    """Score a raster model and the baselines on the raster test pairs in data units; write comparison.png.

    ``test_split``: how the test patches stand apart from training (the handle says it), for the protocol line.
    ``aux_inputs``: the static predictors' channels of each test patch on the LR grid (util.data.static), given
    to the model after the LR values.

    Over the valid cells only: RMSE, MAE, bias, slope RMSE (degrees, Horn, each patch's
    cell size) and PSNR on range-normalised heights (util.evaluation.raster_metrics.raster_scores).
    Not elevations: no slope; correlation, conservation, small-scale power and (latitudes in
    the manifest) latitude-weighted RMSE, heat maps, and per-cell error maps (cell_errors.png).
    """
    from util.data import pipelines
    from util.evaluation import raster_eval, raster_metrics
    from util.inference.raster_enhance import predict_raster_patches

    info = model_info(model)
    scale = info["scale"]
    lr, hr, mask, cells = pipelines.load_raster_split(folder, settings.task, "test", settings.test_patches or None)
    started = time.time()
    x = lr if aux_inputs is None else np.concatenate([lr, aux_inputs[: len(lr)]], -1)
    outputs = predict_raster_patches(model, info, x)
    infer_seconds = time.time() - started
    valid = mask[..., 0].astype(bool)
    targets = hr[..., 0]
    manifest = pipelines.manifest_of(folder)
    units = manifest.get("units", "m")
    quantity_note = raster_metrics.not_elevation(units, manifest.get("quantity", ""), manifest.get("standard_name", ""))
    elevation = not quantity_note
    methods = {
        name: np.stack([upsample(p, scale) for p in lr[..., 0]])
        for name, upsample in raster_metrics.baselines(elevation).items()
    }
    methods["model"] = outputs[..., 0]
    if ensemble:
        methods["model + self-ensemble"] = predict_raster_patches(model, info, lr, ensemble=True)[..., 0]
    lats = None if elevation else latitudes_of_test_patches(manifest, len(hr), targets.shape[1])
    results = dict(meta)
    results.update(
        n_test=len(hr),
        protocol=f"raster: valid cells of the test patches ({test_split}), data units",
        units=units,
        raster_scores={
            name: raster_metrics.raster_scores(values, targets, valid, cells, lr[..., 0], lats, elevation)
            for name, values in methods.items()
        },
        test_patches_per_second=round(len(hr) / infer_seconds, 2),
    )
    shown = (targets[:4], valid[:4], lr[:4, ..., 0], {k: v[:4] for k, v in methods.items()})
    if not elevation:
        results["slope_left_out"] = quantity_note
        raster_eval.heat_map_figure(*shown, folder_out / "comparison.png", units)
        maps = {name: raster_metrics.cell_error_maps(values, targets, valid) for name, values in methods.items()}
        raster_eval.cell_error_figure(maps, folder_out / "cell_errors.png", units)
    else:
        raster_eval.raster_comparison_figure(*shown, cells[:4], folder_out / "comparison.png", units)
    return results


def latitudes_of_test_patches(manifest: dict, count: int, side: int) -> np.ndarray | None:
    """(count, side) centre latitudes in degrees of the rows of the first ``count`` test patches; None if unknown.

    From each patch's file and row (the manifest's ``splits``: ``patch_columns`` name the columns,
    the first one the file, ``raster`` or ``stack``) and its file's ``latitudes`` (row 0's centre
    latitude and the step per row, written for geographic grids) in the manifest's ``rasters`` or
    ``stacks``.
    """
    test = manifest.get("splits", {}).get("test", {})
    columns = test.get("patch_columns", ["raster", "row", "col"])
    files = f"{columns[0]}s"
    entries = {r["name"]: r.get("latitudes") for r in manifest.get(files, [])}
    patches = test.get("patches", [])[:count]
    if len(patches) < count:
        return None
    lats = []
    for patch in patches:
        first_step = entries.get(test[files][patch[0]])
        if first_step is None:
            return None
        lats.append(first_step[0] + first_step[1] * (patch[columns.index("row")] + np.arange(side)))
    return np.asarray(lats)
