"""Applying a raster model (a DEM or any grid in data units) to patches, arrays and whole files.

The model takes and returns one channel in the data's units (util.models.layers.raster_model).
A whole raster goes through it in overlapping, blended tiles as photos do
(util.inference.tiles: the same tile layout and blend weights), one band of tile rows at a
time, and each finished band of output rows is written at once (util.io.rasters.RasterWriter),
so memory is bounded by the tile size and the raster's width, not its area: a 3600x3600
Copernicus tile at x4 (14400x14400 float32 out, 830 MB) needs a few hundred MB.

Nodata: before the model sees them, nodata cells are filled from the nearest valid cell
(so valid cells next to nodata are never pulled towards a fill value such as -9999);
an output cell is nodata when the LR cell it lies in is.

A model that conserves the LR block means (SuiteInfo ``conserve``) is blended with weights
constant over each block (``block_constant``), so the whole output conserves them too.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from util.data.resize import bicubic_upscale
from util.inference.tiles import (
    BICUBIC_CONTEXT,
    OVERLAP_FRACTION,
    _round_up,
    batch_self_ensemble,
    blend_weights,
    default_tile,
    tile_starts,
)
from util.io import kinds
from util.io.files import UserError


def check_raster_model(info: dict, where: str) -> None:
    """A one-line UserError unless the model is a raster model."""
    if info.get("data_kind", kinds.PHOTO) != kinds.RASTER:
        raise UserError(
            f"{where}: a photo model (RGB in [0, 1]) cannot enhance a raster in data units; give a raster model "
            "(assets/models/dem_x4.keras, or one trained on `python3 download.py dem`)"
        )


def model_input(lr: np.ndarray, info: dict) -> np.ndarray:
    """LR raster patches (N, h, w, 1) -> the model's input kind, float32 (bicubic-upsampled for "upsampled")."""
    if info["input_kind"] == "upsampled" and info["scale"] > 1:
        return bicubic_upscale(lr, info["scale"], batch=True).astype(np.float32)
    return lr.astype(np.float32, copy=False)


def predict_raster_patches(model, info: dict, lr: np.ndarray, batch: int = 32, ensemble: bool = False) -> np.ndarray:
    """Model outputs (N, H, W, 1) float32 in data units for LR patches (N, h, w, 1) without NaN."""
    outputs = []
    for start in range(0, len(lr), batch):
        x = model_input(lr[start : start + batch], info)
        y = batch_self_ensemble(model, x) if ensemble else model(x, training=False)
        outputs.append(np.asarray(y, dtype=np.float32))
    return np.concatenate(outputs)


def raster_tiling(info: dict, tile=None, overlap=None) -> tuple[int, int, int]:
    """``(tile, overlap, step)`` in LR cells for the model of ``info``: both rounded up to the step it needs.

    ``None`` picks the default: a model whose card records its training patches (``patch``, HR
    cells) sees tiles of that size, half of each overlapping its neighbour; a model that does not
    say sees ~512-cell output tiles, a quarter overlapping. A model trained on small patches
    (16 HR cells: 4 LR cells at x4) never saw a cell farther from an edge than that, and its
    corrections in a wider tile are wrong in the interior: docs/experiments.md, climate, x4. A tile
    below 1, a negative overlap or an overlap that is not below the tile is a UserError.
    """
    from util.inference.photos import check_tiling

    check_tiling(tile, overlap)
    scale, multiple = info["scale"], info["size_multiple"]
    upsampled = info["input_kind"] == "upsampled" and scale > 1
    step = multiple // math.gcd(multiple, scale) if upsampled else multiple
    trained = max(1, info.get("patch", 0) // scale) if info.get("patch") else 0
    tile = _round_up(tile or trained or default_tile(info), step)
    if overlap is None:
        overlap = tile // 2 if trained and tile == _round_up(trained, step) else tile // OVERLAP_FRACTION
    overlap = _round_up(overlap, step)
    if overlap >= tile:
        raise UserError(f"--overlap {overlap}: must be below the tile ({tile} cells; both rounded to {step})")
    return tile, overlap, step


def enhanced_rows(model, info: dict, lr: np.ndarray, tile=None, overlap=None, ensemble=False, progress=False):
    """Yield ``(first output row, rows)`` of the enhanced 2-D raster ``lr`` (finite float), top to bottom.

    ``rows`` is float32 (n, W * scale); together the bands cover the output once. ``lr`` may be
    (H, W, C): the values and a model's static predictors on the LR grid (util.data.static). The
    tiles of one band go through the model as one batch. ``tile`` and ``overlap`` in LR cells
    (default: ``raster_tiling``).
    """
    scale = info["scale"]
    tile, overlap, step = raster_tiling(info, tile, overlap)
    height, width = lr.shape[:2]
    padded_h, padded_w = _round_up(height, step), _round_up(width, step)
    pad = ((0, padded_h - height), (0, padded_w - width)) + ((0, 0),) * (lr.ndim - 2)
    pixels = np.pad(lr, pad, mode="symmetric")
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    rows = tile_starts(padded_h, tile_h, tile - overlap, step)
    cols = tile_starts(padded_w, tile_w, tile - overlap, step)
    row_weights = blend_weights([r * scale for r in rows], tile_h * scale, padded_h * scale)
    col_weights = blend_weights([c * scale for c in cols], tile_w * scale, padded_w * scale)
    if info.get("conserve"):  # tiles that each keep the LR block means keep them in the blend too
        row_weights = [block_constant(w, scale) for w in row_weights]
        col_weights = [block_constant(w, scale) for w in col_weights]
    band = np.zeros((tile_h * scale, padded_w * scale), dtype=np.float32)
    with tqdm(total=len(rows) * len(cols), unit="tile", desc="enhance", disable=not progress, leave=False) as bar:
        for r, top in enumerate(rows):
            results = _band_outputs(model, info, pixels, top, cols, (tile_h, tile_w), ensemble)
            for c, (left, result) in enumerate(zip(cols, results, strict=True)):
                band[:, left * scale : (left + tile_w) * scale] += (
                    result * row_weights[r][:, None] * col_weights[c][None, :]
                )
            bar.update(len(cols))
            done = (rows[r + 1] - top) * scale if r + 1 < len(rows) else tile_h * scale
            finished = band[: max(0, min(done, height * scale - top * scale)), : width * scale]
            if len(finished):
                yield top * scale, finished.copy()
            band[: band.shape[0] - done] = band[done:]
            band[band.shape[0] - done :] = 0.0


BAND_BATCH_CELLS = 1 << 18  # output cells per model call: one default tile (512 x 512), or many small tiles


def _band_outputs(model, info: dict, pixels: np.ndarray, top: int, cols: list[int], size, ensemble: bool):
    """The model's outputs (float32 (tile_h * s, tile_w * s)) for the tiles of one band, batched."""
    scale, (tile_h, tile_w) = info["scale"], size
    upsampled = info["input_kind"] == "upsampled" and scale > 1
    context = BICUBIC_CONTEXT if upsampled else 0
    inputs = []
    for left in cols:
        y0, x0 = max(0, top - context), max(0, left - context)
        source = pixels[y0 : top + tile_h + context, x0 : left + tile_w + context]
        source = source[..., None] if source.ndim == 2 else source
        if upsampled:
            up = bicubic_upscale(source, scale).astype(np.float32)
            oy, ox = (top - y0) * scale, (left - x0) * scale
            inputs.append(up[oy : oy + tile_h * scale, ox : ox + tile_w * scale])
        else:
            inputs.append(source.astype(np.float32))
    per_call = max(1, BAND_BATCH_CELLS // (tile_h * tile_w * scale * scale))
    outputs = []
    for start in range(0, len(inputs), per_call):
        x = np.stack(inputs[start : start + per_call])
        result = batch_self_ensemble(model, x) if ensemble else model.predict_on_batch(x)
        outputs += list(np.asarray(result, dtype=np.float32)[..., 0])
    for result in outputs:
        if result.shape != (tile_h * scale, tile_w * scale):
            raise ValueError(f"model output {result.shape} for a {tile_h}x{tile_w} tile at scale {scale}")
    return outputs


def block_constant(weights: np.ndarray, scale: int) -> np.ndarray:
    """1-D blend weights (a multiple of ``scale`` long) averaged over each run of ``scale`` cells.

    The tiles' weights still sum to 1 in every cell, and a blend whose weights are constant over
    each s x s block has as block mean the blend of the tiles' block means: the LR cell, when
    every tile conserves it (CONSERVE).
    """
    return np.repeat(weights.reshape(-1, scale).mean(axis=1), scale)


def enhance_raster_array(model, info: dict, lr: np.ndarray, tile=None, overlap=None, ensemble=False) -> np.ndarray:
    """The whole enhanced raster (H * scale, W * scale) float32 for a 2-D ``lr`` without NaN."""
    scale = info["scale"]
    out = np.empty((lr.shape[0] * scale, lr.shape[1] * scale), dtype=np.float32)
    for row, rows in enhanced_rows(model, info, lr, tile, overlap, ensemble):
        out[row : row + len(rows)] = rows
    return out


def is_raster_file(path: Path) -> bool:
    """True for a raster in data units, by the suite's one rule (util.io.kinds.file_kind)."""
    from util.io.kinds import RASTER, file_kind

    return file_kind(path) == RASTER


def output_path(path: Path, scale: int, out: Path | None = None, suffix: str | None = None) -> Path:
    """``dem.tif`` -> ``dem_x4.tif`` beside it, or in ``out`` when given (same suffix: same format; a stack
    gives ``suffix`` ``.nc``)."""
    name = f"{path.stem}_x{scale}{suffix or path.suffix}"
    return (out / name) if out else path.with_name(name)


def sidecars(target: Path) -> list[Path]:
    """The files written beside ``target`` with it: an ASCII grid's ``.prj`` (CRS) (util.io.rasters.RasterWriter)."""
    return [target.with_suffix(".prj")] if target.suffix.lower() == ".asc" else []


def raster_out_folder(path: Path, folder: Path | None, out: Path | None, scale: int) -> Path | None:
    """Where a raster's output goes: for a file given, ``out`` or beside it (None); for a folder's raster,
    ``out`` or ``<folder>_x<scale>/`` beside the folder, keeping its sub-folders (as photos do)."""
    if folder is None:
        return out
    return (out or folder.resolve().with_name(f"{folder.resolve().name}_x{scale}")) / path.parent.relative_to(folder)


def plan_raster_outputs(
    rasters: list[tuple[Path, Path | None]],
    scale: int,
    out: Path | None,
    overwrite: bool,
    skip_existing: bool,
    stacks: frozenset[Path] = frozenset(),
) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs for ``rasters``, checked before any work; the ones whose output exists are skipped.

    ``rasters`` holds ``(file, folder given or None)``. ``out`` names one file (one raster, same
    suffix), a folder, or nothing (beside each file given; ``<folder>_x<scale>/`` for a folder's).
    An output and its sidecars (``sidecars``) are outputs alike: none may be an input, two
    inputs may not share one, and none that exists is replaced without ``overwrite``. With
    ``skip_existing``, a raster whose output exists is left alone (printed as skipped). The files in
    ``stacks`` are time stacks, written as NetCDF (``<stem>_x<scale>.nc``) whatever their format.
    """
    from util.inference.photos import check_replaceable, without_dot_dot

    out = without_dot_dot(out) if out is not None else None
    out_file = out if out is not None and out.suffix and not out.is_dir() else None
    if out_file and len(rasters) > 1:
        raise UserError(f"--out {out} names one file but there are {len(rasters)} rasters; give a folder")
    inputs = {path.resolve() for path, _ in rasters}
    planned, pairs = set(), []
    for path, folder in rasters:
        suffix = ".nc" if path in stacks else path.suffix
        target = out_file or output_path(path, scale, raster_out_folder(path, folder, out, scale), suffix)
        if out_file and target.suffix.lower() != suffix.lower():
            if path in stacks:
                raise UserError(f"--out {target}: give the suffix .nc (a stack is written as NetCDF)")
            raise UserError(f"--out {target}: give the input's suffix {path.suffix} (the format stays the same)")
        files = [target, *sidecars(target)]
        for file in files:
            if file.resolve() in inputs:
                raise UserError(f"{file}: is an input; never overwritten, give --out elsewhere")
            if file.resolve() in planned:
                raise UserError(f"{file}: two inputs would give this same output; rename one or give --out")
            planned.add(file.resolve())
        if target.exists() and skip_existing:
            print(f"{target}: exists, skipped")
            continue
        for file in files:
            if file.exists() and not overwrite:
                written_with = f" (written with {target.name})" if file != target else ""
                raise UserError(f"{file}: exists{written_with}; give --overwrite to replace it or --skip-existing")
            check_replaceable(file)
        pairs.append((path, target))
    return pairs


def enhance_raster_file(
    path: Path,
    model,
    info: dict,
    out_path: Path,
    nodata=None,
    band=None,
    variable=None,
    tile=None,
    overlap=None,
    ensemble=False,
    progress=True,
    provenance=None,
    aux=None,
) -> Path:
    """Enhance one raster file into ``out_path`` (float32, same CRS, cell size / scale, nodata kept).

    ``provenance``: the model's ``util.io.provenance.Provenance``, written into the output with this
    file's name where its format has room (None: nothing). ``aux``: the ``--aux`` sources of a model
    with static predictors (None: rebuilt from the model's card, ``static_inputs``). A file that
    declares no nodata but holds a sentinel such as -9999 gets a warning line on stderr.
    """
    from util.io.rasters import RasterWriter, read_raster, warn_suspected_nodata

    check_raster_model(info, str(path))
    raster = read_raster(path, band=band, variable=variable, nodata=nodata)
    warn_suspected_nodata(raster)
    if not raster.valid.any():
        raise UserError(f"{path}: every cell is nodata; nothing to enhance (check --nodata)")
    scale = info["scale"]
    height, width = raster.values.shape[0] * scale, raster.values.shape[1] * scale
    crs = raster.crs if raster.crs is not None or not raster.degrees else "EPSG:4326"
    statics = static_inputs(info, raster.values.shape, raster.transform, _crs(crs), aux, str(path))
    stamped = provenance.for_input(path) if provenance is not None else None
    with RasterWriter(out_path, raster, height, width, scale, stamped) as writer:
        write_enhanced(writer.write, raster.values, model, info, tile, overlap, ensemble, progress, statics)
    return out_path


def static_inputs(info: dict, shape, transform, crs, given: tuple[str, ...] | None, where: str):
    """A model's static predictors for a grid of ``shape`` (H, W), ``transform`` and ``crs``: float32
    (H, W, K * scale**2) on that LR grid, made on the output grid (util.data.static); None for a model
    without. ``given``: ``--aux``, refused for a model that takes none."""
    from util.data import static

    card = info.get("aux")
    if not card:
        refuse_aux(given)
        return None
    grid = static.Grid.output_of(shape, transform, _crs(crs), info["scale"], where)
    return static.lr_channels(static.model_fields(card, given, grid, where), info["scale"])


def refuse_aux(given: tuple[str, ...] | None) -> None:
    """The one-line UserError for ``--aux`` given to a model that takes no static predictors."""
    if given:
        raise UserError(f"--aux {','.join(given)}: the model takes no static predictors; drop --aux")


def write_enhanced(
    write, values: np.ndarray, model, info: dict, tile, overlap, ensemble, progress, statics=None
) -> None:
    """Enhance the 2-D ``values`` (NaN = nodata, some valid) and hand each band of output rows to
    ``write(rows, first_row=...)``; an output cell is nodata where the LR cell it lies in is.
    ``statics``: the model's static predictors on the LR grid (``static_inputs``), or None."""
    from util.io.rasters import fill_nodata

    valid = np.isfinite(values)
    lr = fill_nodata(values) if not valid.all() else values
    if statics is not None:
        if ensemble:
            raise UserError("--ensemble: flips and rotations would scramble the model's static predictors; drop it")
        lr = np.concatenate([lr[..., None], statics], axis=-1)
    scale = info["scale"]
    for row, rows in enhanced_rows(model, info, lr, tile, overlap, ensemble, progress):
        parent = valid[row // scale : (row + len(rows) - 1) // scale + 1]
        mask = np.repeat(np.repeat(parent, scale, axis=0), scale, axis=1)[row % scale : row % scale + len(rows)]
        write(np.where(mask, rows, np.nan).astype(np.float32), first_row=row)


def _crs(crs):
    """A rasterio CRS of ``crs`` (None stays None)."""
    if crs is None or not isinstance(crs, str):
        return crs
    from rasterio.crs import CRS

    return CRS.from_user_input(crs)


STRIP_ROWS = 512  # rows of an all-nodata step written at a time


def enhance_stack_file(
    path: Path,
    model,
    info: dict,
    out_path: Path,
    stack_options: dict | None = None,
    tile=None,
    overlap=None,
    ensemble=False,
    progress=True,
    provenance=None,
    aux=None,
) -> Path:
    """Enhance every step of a stack file (util.io.stacks) into the CF NetCDF ``out_path``.

    ``stack_options``: ``variable``, ``level``, ``steps``, ``nodata`` as ``util.io.stacks.open_stack``
    takes them. Each step is read, enhanced in strips and written before the next is read, so memory
    does not grow with the number of steps; a step whose cells are all nodata is written as nodata
    without the model. One progress bar counts the steps. The time coordinate, its calendar and the
    variable's attributes are kept (util.io.stacks.StackWriter). ``aux``: as ``enhance_raster_file``'s;
    the static predictors are made once for the stack's grid.
    """
    from util.io.stacks import StackWriter, iter_steps, open_stack

    check_raster_model(info, str(path))
    stack = open_stack(path, **(stack_options or {}))
    scale = info["scale"]
    _, height, width = stack.shape
    statics = static_inputs(info, (height, width), stack.transform, stack.crs, aux, str(path))
    stamped = provenance.for_input(path) if provenance is not None else None
    valid_steps = 0
    with StackWriter(out_path, stack, height * scale, width * scale, scale, stamped) as writer:
        steps = tqdm(iter_steps(stack), total=len(stack), unit="step", desc=path.name, disable=not progress)
        for k, raster in enumerate(steps):
            if not raster.valid.any():
                for row in range(0, height * scale, STRIP_ROWS):
                    rows = min(STRIP_ROWS, height * scale - row)
                    writer.write(np.full((rows, width * scale), np.nan, np.float32), k, row)
                continue
            valid_steps += 1
            write = functools.partial(writer.write, step=k)
            write_enhanced(write, raster.values, model, info, tile, overlap, ensemble, False, statics)
        if not valid_steps:
            raise UserError(f"{path}: every cell of every selected step is nodata; nothing to enhance (check --steps)")
    return out_path
