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
  * a raster that is not an elevation (``not_elevation``: its units are not a length, or its
    NetCDF standard_name names another quantity) gets no slope, with the reason, and the
    scores of a downscaling instead: spatial correlation, conservation RMSE (block means of
    the output against the LR), small-scale power ratio and, for geographic grids,
    latitude-weighted RMSE; the mean-preserving bicubic joins the baselines.

Figures: for elevations, hillshades (matplotlib's LightSource, sun from the north-west at
45 degrees, the true cell size) of LR, bicubic, cubic spline, model and HR; for other
quantities, heat maps in the data's units on one colour scale per row and the radially
averaged power spectra; then maps of each method's error in the data's units on one
symmetric colour scale per row.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np

from util.evaluation.raster_metrics import RasterScore, baselines, block_mean, not_elevation
from util.io.files import UserError
from util.io.rasters import fill_nodata, read_raster


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


def evaluate_raster(values: np.ndarray, cell, scale: int, enhance: Callable | None = None, elevation=True, lats=None):
    """{method: scores} and the grids of one raster; ``enhance(filled LR) -> HR grid`` is the model.

    ``cell``: (dy, dx) in metres, or None when unknown (no slope RMSE). ``elevation`` False:
    the scores of a downscaling (``RasterScore``), with ``lats`` the rows' latitudes in degrees
    (None: unknown).
    """
    hr, lr, scored = degrade(values, scale)
    outputs = {name: upsample(lr, scale) for name, upsample in baselines(elevation).items()}
    if enhance is not None:
        outputs["model"] = np.asarray(enhance(lr), np.float32)
    lats = None if lats is None else lats[: hr.shape[0]]
    scores = {}
    for name, output in outputs.items():
        score = RasterScore(elevation)
        score.add(output, hr, scored, cell, lr, lats)
        scores[name] = score
    return {"scores": scores, "hr": hr, "lr": lr, "scored": scored, "outputs": outputs}


def with_statics(enhance, statics, raster):
    """``enhance`` given the LR with the static predictors of ``raster`` as channels after it (``statics``)."""
    if enhance is None or statics is None:
        return enhance
    return lambda lr: enhance(np.concatenate([lr[..., None], statics(raster, lr.shape)], axis=-1))


def row_latitudes(raster) -> np.ndarray | None:
    """(H,) float64: each row's centre latitude in degrees of a geographic raster (north-up); None for others.

    Geographic: a geographic CRS, or cells in degrees without one (``Raster.degrees``).
    """
    t = raster.transform
    geographic = raster.degrees or (raster.crs is not None and raster.crs.is_geographic)
    if t is None or not geographic or t.b or t.d:
        return None
    return t.f + t.e * (np.arange(raster.values.shape[0]) + 0.5)


def raster_quantity(raster) -> str:
    """Why ``raster`` is not an elevation ("" when it is): ``not_elevation`` of its units and NetCDF standard_name."""
    return not_elevation(raster.units, standard_name=str(raster.meta.get("attrs", {}).get("standard_name", "")))


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
    files, scale: int, enhance=None, read: dict | None = None, figure: Path | None = None, cell_size=None, statics=None
):
    """Score every raster of ``files``; returns {"rasters": [...], "pooled": {method: scores}}.

    ``pooled`` sums over all scored cells of all rasters (slope: of the rasters with a known
    cell size). A stack (``util.io.stacks.is_stack``, or any file when ``read`` has ``steps`` or
    ``level``) is one row: each of its selected steps is scored as one grid, read one at a time,
    and pooled; its per-cell RMSE and bias maps over the steps go beside ``figure``
    (``<figure stem>_cells.png``). ``figure``: the comparison of the first raster (of a stack:
    its first selected step), a centred crop of at most 128 x 128 HR cells. ``cell_size``: see
    ``raster_cell``. The rasters are all elevations or all of other quantities
    (``raster_quantity``): one pooled score means one set of scores. ``statics(raster, lr_shape)``:
    a model's static predictors (H, W, C) for the LR of each grid, given to ``enhance`` beside it.
    """
    pooled, rows, first_note = {}, [], ""
    for i, path in enumerate(files):
        grids, about = _file_grids(path, read or {})
        scores, cells_maps, first = {}, CellErrors(), None
        for raster in grids:
            cell, slope_note = raster_cell(raster, cell_size)
            quantity_note = raster_quantity(raster)
            first_note = quantity_note if not rows and first is None else first_note
            if bool(quantity_note) != bool(first_note):
                what = quantity_note or f"an elevation (units {raster.units!r})"
                earlier = rows[0]["file"] if rows else str(path)
                raise UserError(
                    f"{path}: {what}, unlike {earlier}; evaluate elevations and other quantities in separate calls"
                )
            lats = row_latitudes(raster) if quantity_note else None
            try:
                result = evaluate_raster(
                    raster.values, cell, scale, with_statics(enhance, statics, raster), not quantity_note, lats
                )
            except UserError as err:
                raise UserError(f"{path}{about.get('at', '')}: {err}") from None
            for name, score in result["scores"].items():
                scores.setdefault(name, RasterScore(score.elevation)).merge(score)
            cells_maps.add(result)
            first = first or (raster, cell, result, quantity_note or slope_note)
        for name, score in scores.items():
            pooled.setdefault(name, RasterScore(score.elevation)).merge(score)
        raster, cell, result, note = first
        rows.append(_raster_row(path, raster, cell, scores, note, about))
        if figure is not None and i == 0:
            _raster_figure(result, cell, scale, figure, raster.units, elevation=not first_note)
            if about.get("steps"):
                cell_error_figure(cells_maps.maps(), figure.with_name(f"{figure.stem}_cells.png"), raster.units)
    return {"rasters": rows, "pooled": {name: score.result() for name, score in pooled.items()}}


def _file_grids(path: Path, read: dict):
    """(an iterator of the file's grids as Rasters, what the JSON row says of them): one grid, or a stack's steps.

    ``read``: ``nodata``, ``band``, ``variable`` of a single grid (``read_raster``) and ``steps``,
    ``level`` of a stack (``util.io.stacks.open_stack``); a grid is read whole, a stack one step at a time.
    """
    from util.io.rasters import warn_suspected_nodata
    from util.io.stacks import is_stack, iter_steps, open_stack

    steps, level = read.get("steps"), read.get("level")
    if steps is None and level is None and not is_stack(path, read.get("variable")):
        raster = read_raster(path, **{k: read.get(k) for k in ("nodata", "band", "variable")})
        warn_suspected_nodata(raster)
        return iter([raster]), {}
    if read.get("band") is not None:
        raise UserError(f"{path}: a stack (a grid at several times); choose its steps with --steps, not --band")
    stack = open_stack(path, read.get("variable"), level, steps, read.get("nodata"))
    chosen = [int(n) for n in stack.meta["steps"]]
    about = {"steps": [chosen[0], chosen[-1] + 1] if chosen == list(range(chosen[0], chosen[-1] + 1)) else chosen}
    about |= {"step_count": len(stack), "shape": list(stack.shape)}
    if stack.times is not None:
        about |= {"times": [stack.times[0].isoformat(), stack.times[-1].isoformat()], "calendar": stack.calendar}

    def grids():
        for n, raster in zip(chosen, iter_steps(stack), strict=True):
            about["at"] = f" (step {n})"
            yield raster
        about.pop("at", None)

    return grids(), about


class CellErrors:
    """Per-cell sums of each method's error over the steps of a stack, added one step at a time."""

    def __init__(self):
        self.sums: dict[str, np.ndarray] = {}
        self.squares: dict[str, np.ndarray] = {}
        self.counts = None

    def add(self, result: dict) -> None:
        """One step's ``evaluate_raster`` result (its outputs, truth and scored cells)."""
        scored = result["scored"] & np.isfinite(result["hr"])
        if self.counts is None:
            self.counts = np.zeros(scored.shape, np.int64)
        if self.counts.shape != scored.shape:
            return  # the maps are of one grid: a stack's steps share it
        self.counts += scored
        for name, output in result["outputs"].items():
            error = np.where(scored, np.asarray(output, np.float64) - result["hr"], 0.0)
            self.sums[name] = self.sums.get(name, 0.0) + error
            self.squares[name] = self.squares.get(name, 0.0) + error**2

    def maps(self) -> dict:
        """Method -> (RMSE map, bias map), float32, NaN where a cell was never scored (``cell_error_figure``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                name: (
                    np.sqrt(self.squares[name] / self.counts).astype(np.float32),
                    (self.sums[name] / self.counts).astype(np.float32),
                )
                for name in self.sums
            }


def _raster_row(path, raster, cell, scores: dict, slope_note: str, about: dict) -> dict:
    """The JSON row of one file: file, shape, cell size, units, scores, a stack's steps, why the slope is left out."""
    row = {
        "file": str(path),
        "shape": list(raster.values.shape),
        "cell_m": None if cell is None else [round(v, 3) for v in cell],
        "units": raster.units,
        "scores": {name: score.result() for name, score in scores.items()},
        **about,
    }
    if slope_note:
        row["slope_left_out"] = slope_note
    return row


def _raster_figure(result: dict, cell, scale: int, figure: Path, units: str, elevation: bool) -> None:
    """The comparison figure of a centred crop of one raster's result: hillshades, or heat maps."""
    crop = _centre_crop(result["hr"].shape, scale)
    lr_crop = tuple(slice(s.start // scale, s.stop // scale) for s in crop)
    grids = (
        result["hr"][crop][None],
        result["scored"][crop][None],
        result["lr"][lr_crop][None],
        {name: output[crop][None] for name, output in result["outputs"].items()},
    )
    if elevation:
        # unknown cells: the hillshade is a picture, not a measure
        raster_comparison_figure(*grids, np.asarray([cell or (1.0, 1.0)]), figure, units)
    else:
        heat_map_figure(*grids, figure, units)


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
    from util.evaluation.report import _pyplot

    plt = _pyplot()
    names = list(methods)
    columns = ["LR", *names, "HR", *[f"{name} - HR" for name in names]]
    n = len(targets)
    fig, axes = plt.subplots(n, len(columns), figsize=(2.1 * len(columns), 2.3 * n), squeeze=False)
    for i in range(n):
        cell, scale = cells[i], targets[i].shape[0] / lr[i].shape[0]
        shades = [hillshade(lr[i], cell * scale), *[hillshade(methods[m][i], cell) for m in names]]
        shades.append(hillshade(targets[i], cell))
        for j, shade in enumerate(shades):
            axes[i, j].imshow(shade, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        _error_maps(fig, axes[i, len(shades) :], [methods[m][i] - targets[i] for m in names], valid[i], units)
    _finish(fig, axes, columns, png_path)


def heat_map_figure(targets, valid, lr, methods: dict, png_path: Path, units: str) -> None:
    """Rows of heat maps (LR, each method, truth) in ``units``, error maps (method - truth) and power spectra.

    ``targets`` (N, H, W) HR, ``valid`` bool, ``lr`` (N, h, w), ``methods`` name -> (N, H, W). The
    value maps of a row share one colour scale (the truth's 1st to 99th percentile); the last
    panel has the radially averaged power spectra of the truth and each method (nodata filled
    from the nearest valid cell). Nodata cells are grey.
    """
    from util.evaluation.report import _pyplot

    plt = _pyplot()
    names = list(methods)
    columns = ["LR", *names, "truth", *[f"{name} - truth" for name in names], "power spectrum"]
    n = len(targets)
    fig, axes = plt.subplots(
        n,
        len(columns),
        figsize=(2.1 * len(columns) + 1.5, 2.3 * n),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": [1] * (len(columns) - 1) + [1.8]},
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.7")
    for i in range(n):
        truth = np.where(valid[i], targets[i], np.nan)
        low, high = np.nanpercentile(truth, [1, 99]) if np.isfinite(truth).any() else (0.0, 1.0)
        maps = [lr[i], *[methods[m][i] for m in names], truth]
        for j, values in enumerate(maps):
            image = axes[i, j].imshow(
                np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high, interpolation="nearest"
            )
        fig.colorbar(image, ax=axes[i, : len(maps)].tolist(), shrink=0.8, label=units)
        errors = [methods[m][i] - targets[i] for m in names]
        _error_maps(fig, axes[i, len(maps) : -1], errors, valid[i], units)
        _spectra(axes[i, -1], {"truth": targets[i], **{m: methods[m][i] for m in names}}, valid[i], units)
    _finish(fig, axes[:, :-1], columns[:-1], png_path, axes[0, -1])


def _error_maps(fig, axes, errors, valid, units: str) -> None:
    """Maps of errors (nodata grey) on one symmetric scale (99th percentile of |error|) with its colour bar."""
    from util.evaluation.report import _pyplot

    errors = [np.where(valid, error, np.nan) for error in errors]
    limit = max(float(np.nanpercentile(np.abs(e), 99)) if np.isfinite(e).any() else 0.0 for e in errors) or 1.0
    cmap = _pyplot().get_cmap("RdBu_r").with_extremes(bad="0.7")
    for ax, error in zip(axes, errors, strict=True):
        image = ax.imshow(np.ma.masked_invalid(error), cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=f"error ({units})")


def _spectra(ax, grids: dict, valid, units: str) -> None:
    """Radially averaged power spectra of ``grids`` (name -> 2-D), log-log, cells outside ``valid`` filled."""
    from util.evaluation.raster_metrics import radial_power_spectrum

    if not valid.any():
        return
    for name, grid in grids.items():
        k, power = radial_power_spectrum(fill_nodata(np.where(valid, grid, np.nan)))
        ax.loglog(k, power, label=name, color="black" if name == "truth" else None, linewidth=1)
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("cycles per cell", fontsize=8)
    ax.set_ylabel(f"power ({units}²)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)


def _finish(fig, axes, columns, png_path: Path, spectrum_ax=None) -> None:
    """Column titles on the first row, no ticks on the maps, then the PNG."""
    from util.evaluation.report import _save

    for j, title in enumerate(columns):
        axes[0, j].set_title(textwrap.fill(title, 20), fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if spectrum_ax is not None:
        spectrum_ax.set_title("power spectrum", fontsize=9)
    _save(fig, png_path)


def cell_error_figure(maps: dict, png_path: Path, units: str) -> None:
    """Per-cell RMSE (top row) and bias (bottom row) of each method, ``maps`` name -> (RMSE, bias) (H, W)."""
    from util.evaluation.report import _pyplot, _save

    plt = _pyplot()
    names = list(maps)
    fig, axes = plt.subplots(2, len(names), figsize=(2.6 * len(names), 4.8), squeeze=False)
    rmse_high = max(float(np.nanmax(rmse)) if np.isfinite(rmse).any() else 0.0 for rmse, _ in maps.values()) or 1.0
    bias_limit = max(float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 0.0 for _, b in maps.values()) or 1.0
    for j, name in enumerate(names):
        rmse, bias = maps[name]
        top = axes[0, j].imshow(rmse, cmap="magma", vmin=0, vmax=rmse_high, interpolation="nearest")
        low = axes[1, j].imshow(bias, cmap="RdBu_r", vmin=-bias_limit, vmax=bias_limit, interpolation="nearest")
        axes[0, j].set_title(name, fontsize=9)
    fig.colorbar(top, ax=axes[0].tolist(), shrink=0.8, label=f"RMSE per cell ({units})")
    fig.colorbar(low, ax=axes[1].tolist(), shrink=0.8, label=f"bias per cell ({units})")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, png_path)
