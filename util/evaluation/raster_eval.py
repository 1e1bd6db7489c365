"""The raster protocol for whole files (evaluate.py) and the figures a DEM user looks at.

A raster file is scored by the protocol of the raster data sets (download_module/raster_pairs.py):

  * HR: the raster's cells, cropped at the bottom and right to a multiple of the scale;
  * LR: the block mean of the valid HR cells of each s x s block (``block_mean``: what a
    coarser grid measures); blocks without a valid cell are nodata;
  * every method gets the LR with nodata filled from the nearest valid cell and returns
    a grid of the HR size: bicubic, cubic spline (util.evaluation.raster_metrics) and the model,
    which sees the whole raster through the tiled inference of enhance.py;
  * scores over the HR cells that are valid and whose LR block was valid, with ``scale``
    cells of border left out (as the SR protocol), in the data's units: RMSE, MAE, bias,
    slope RMSE in degrees (Horn, the raster's cell size in metres), range-normalised PSNR.
    A raster whose file cannot say its cell size in metres (``Raster.cell_unknown``: a
    .npy, NetCDF coordinates without units) gets no slope RMSE, with the reason, unless
    the user gives the cell size (evaluate.py --cell-size).

Figures: hillshades (matplotlib's LightSource, sun from the north-west at 45 degrees,
the true cell size) of LR, bicubic, cubic spline, model and HR, and maps of each
method's error in the data's units on one symmetric colour scale per row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from util.evaluation.raster_metrics import RasterScore, block_mean, upsample_bicubic, upsample_spline
from util.io.files import UserError
from util.io.rasters import fill_nodata, read_raster

BASELINES = {"bicubic": upsample_bicubic, "cubic spline": upsample_spline}


def degrade(values: np.ndarray, scale: int):
    """HR grid (NaN = nodata) -> (HR cropped to a multiple of ``scale``, filled block-mean LR, scored cells)."""
    height, width = (n // scale * scale for n in values.shape)
    if min(height, width) < 4 * scale:
        raise UserError(
            f"a grid of {values.shape[0]}x{values.shape[1]} cells is too small for x{scale}: "
            f"give rasters of at least {4 * scale}x{4 * scale} cells"
        )
    hr = values[:height, :width]
    lr, lr_valid = block_mean(hr, scale)
    if not lr_valid.any():
        raise UserError("every cell is nodata")
    scored = np.isfinite(hr) & np.repeat(np.repeat(lr_valid, scale, axis=0), scale, axis=1)
    scored[:scale], scored[-scale:], scored[:, :scale], scored[:, -scale:] = False, False, False, False
    return hr, fill_nodata(lr), scored


def evaluate_raster(values: np.ndarray, cell, scale: int, enhance: Callable | None = None) -> dict:
    """{method: scores} and the grids of one raster; ``enhance(filled LR) -> HR grid`` is the model.

    ``cell``: (dy, dx) in metres, or None when unknown (no slope RMSE).
    """
    hr, lr, scored = degrade(values, scale)
    outputs = {name: upsample(lr, scale) for name, upsample in BASELINES.items()}
    if enhance is not None:
        outputs["model"] = np.asarray(enhance(lr), np.float32)
    scores = {}
    for name, output in outputs.items():
        score = RasterScore()
        score.add(output, hr, scored, cell)
        scores[name] = score
    return {"scores": scores, "hr": hr, "lr": lr, "scored": scored, "outputs": outputs}


def raster_files(paths) -> list[Path]:
    """The raster files among ``paths`` (files, or folders searched below), sorted; a UserError for none."""
    from util.io import kinds

    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += kinds.folder_files(path)[kinds.RASTER]  # the one photo/raster rule, hidden files left out
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder; give raster files or folders of them")
    if not files:
        raise UserError(f"{', '.join(map(str, paths))}: no raster files (.tif .asc .npy .npz .nc) there")
    return files


def raster_cell(raster, cell_size: float | None = None) -> tuple[tuple[float, float] | None, str]:
    """((dy, dx) in metres or None, why the slope is left out ("" when it is not)) of a raster.

    ``cell_size``: metres, for rasters whose file cannot say (``Raster.cell_unknown``); a
    file that says something else is a UserError rather than one of the two silently winning.
    """
    if raster.cell_unknown:
        if cell_size is None:
            return None, f"{raster.cell_unknown}, so its cell size in metres is unknown; give --cell-size METRES"
        return (float(cell_size), float(cell_size)), ""
    cell = raster.cell_size_m()
    if cell_size is not None and not all(math.isclose(c, cell_size, rel_tol=0.01) for c in cell):
        raise UserError(
            f"{raster.path}: its georeferencing gives cells of {cell[0]:.6g} x {cell[1]:.6g} m, not the "
            f"--cell-size {cell_size:g}; drop --cell-size (it is for files that cannot say)"
        )
    return cell, ""


def evaluate_raster_files(
    files, scale: int, enhance=None, read: dict | None = None, figure: Path | None = None, cell_size=None
):
    """Score every raster of ``files``; returns {"rasters": [...], "pooled": {method: scores}}.

    ``pooled`` sums over all scored cells of all rasters (slope: of the rasters with a known
    cell size). ``figure``: the comparison of the first raster, a centred crop of at most
    128 x 128 HR cells. ``cell_size``: see ``raster_cell``.
    """
    from util.io.rasters import warn_suspected_nodata

    pooled, rows = {}, []
    for i, path in enumerate(files):
        raster = read_raster(path, **(read or {}))
        warn_suspected_nodata(raster)
        cell, slope_note = raster_cell(raster, cell_size)
        try:
            result = evaluate_raster(raster.values, cell, scale, enhance)
        except UserError as err:
            raise UserError(f"{path}: {err}") from None
        for name, score in result["scores"].items():
            total = pooled.setdefault(name, RasterScore())
            total.cells += score.cells
            total.squares += score.squares
            total.absolute += score.absolute
            total.signed += score.signed
            total.slope_cells += score.slope_cells
            total.slope_squares += score.slope_squares
            total.psnrs += score.psnrs
        rows.append(
            {
                "file": str(path),
                "shape": list(raster.values.shape),
                "cell_m": None if cell is None else [round(v, 3) for v in cell],
                "units": raster.units,
                "scores": {name: score.result() for name, score in result["scores"].items()},
            }
        )
        if slope_note:
            rows[-1]["slope_left_out"] = slope_note
        if figure is not None and i == 0:
            crop = _centre_crop(result["hr"].shape, scale)
            lr_crop = tuple(slice(s.start // scale, s.stop // scale) for s in crop)
            raster_comparison_figure(
                result["hr"][crop][None],
                result["scored"][crop][None],
                result["lr"][lr_crop][None],
                {name: output[crop][None] for name, output in result["outputs"].items()},
                np.asarray([cell or (1.0, 1.0)]),  # unknown cells: the hillshade is a picture, not a measure
                figure,
                raster.units,
            )
    return {"rasters": rows, "pooled": {name: score.result() for name, score in pooled.items()}}


def _centre_crop(shape, scale: int, size: int = 128):
    """Slices of a centred crop of at most ``size`` cells a side, on multiples of ``scale``."""
    out = []
    for n in shape:
        side = min(n, size) // scale * scale
        start = (n - side) // 2 // scale * scale
        out.append(slice(start, start + side))
    return tuple(out)


# ---- Figures --------------------------------------------------------------------------


def hillshade(z: np.ndarray, cell) -> np.ndarray:
    """Hillshade in [0, 1] of a 2-D grid with cells (dy, dx) in the units of ``z`` (sun NW, 45 degrees)."""
    from matplotlib.colors import LightSource

    filled = fill_nodata(np.asarray(z, np.float32)) if not np.isfinite(z).all() else np.asarray(z, np.float64)
    return LightSource(azdeg=315, altdeg=45).hillshade(filled, vert_exag=1.0, dx=float(cell[1]), dy=float(cell[0]))


def raster_comparison_figure(targets, valid, lr, methods: dict, cells, png_path: Path, units: str = "m") -> None:
    """Rows of hillshades (LR, each method, HR) and error maps (method - HR) of a few grids.

    ``targets`` (N, H, W) HR, ``valid`` bool, ``lr`` (N, h, w), ``methods`` name -> (N, H, W),
    ``cells`` (N, 2) HR cell sizes in metres. Nodata cells are grey in the error maps.
    """
    from util.evaluation.report import _pyplot, _save

    plt = _pyplot()
    names = list(methods)
    columns = ["LR", *names, "HR", *[f"{name} - HR" for name in names]]
    n = len(targets)
    errors_cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.7")
    fig, axes = plt.subplots(n, len(columns), figsize=(2.1 * len(columns), 2.3 * n), squeeze=False)
    for i in range(n):
        cell, scale = cells[i], targets[i].shape[0] / lr[i].shape[0]
        shades = [hillshade(lr[i], cell * scale), *[hillshade(methods[m][i], cell) for m in names]]
        shades.append(hillshade(targets[i], cell))
        errors = [np.where(valid[i], methods[m][i] - targets[i], np.nan) for m in names]
        limit = max(float(np.nanpercentile(np.abs(e), 99)) if np.isfinite(e).any() else 0.0 for e in errors) or 1.0
        for j, shade in enumerate(shades):
            axes[i, j].imshow(shade, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for k, error in enumerate(errors):
            image = axes[i, len(shades) + k].imshow(
                np.ma.masked_invalid(error), cmap=errors_cmap, vmin=-limit, vmax=limit, interpolation="nearest"
            )
        fig.colorbar(image, ax=axes[i, len(shades) :].tolist(), shrink=0.8, label=f"error ({units})")
    for j, title in enumerate(columns):
        axes[0, j].set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, png_path)
