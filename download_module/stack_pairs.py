"""Stacks (a grid at several time steps) -> float32 HR/LR patch pairs split in time, plus a manifest.

The stack counterpart of ``raster_pairs.py``, whose patches, degradation, files and writer it
uses: only the split differs. Every stack source (``climate``, a ``--folder`` of stacks) ends
here. For ``<out>/<name>/`` the files of a raster data set (``{train,test}_{hr,sr{s},mask,cell}.npy``:
float32 patches in the data's units, LR by the block mean of the valid cells, masks, cell
sizes in metres) and ``manifest.json``:

- ``"kind": "stack"``, units (and the variable's ``standard_name``), ``value_scale`` (the std
  of HR minus its patch mean over the valid training cells), the settings and the split rule;
- ``stacks``: per file its name, shape [T, H, W], cell size, role, ``latitudes`` for geographic
  grids, its grid (``transform``: the affine a, b, c, d, e, f of the cell corners; ``crs``: EPSG
  code or WKT; both None without georeferencing: util.data.static regrids predictors onto it),
  ``calendar`` and ``time_units``, ``times`` (every step's time, ISO 8601 in the file's calendar;
  None when the file has none) and ``train_steps`` / ``test_steps``: [first, end) step indices
  with ``train_times`` / ``test_times`` [first, last];
- ``split``: ``{"by": "time", "test_fraction", "test_files"}``;
- ``splits``: per split the stacks and each patch's [stack, step, row, col] (top-left cell).

The split is in time, per stack: the last TEST_FRACTION of its steps (rounded, at least one)
are its test steps, the steps before them its training steps, so every test patch lies after
every training patch of the same file. Test patches are the non-overlapping P x P tiles of each
test step (all of the grid), training patches random P x P crops of the training steps, uniform
over the (step, row, col) positions of all stacks. ``test_files`` (``--test-file``) hold files
out as well: they give test patches only and the other files training patches only (the
test is then of another file and of its test steps: two scenarios of one climate model share
their historical steps, so holding a scenario out whole would test on training data). Patches
with more than ``max_nodata`` nodata cells (land in a sea temperature) are never used.

Reproducibility: the training plan comes from ``default_rng([seed, 0, ...])``, the test choice
from ``default_rng([seed, 1])``; the test patches do not depend on ``--train``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

import util
from download_module import raster_pairs, writer
from download_module.raster_pairs import RasterFile, SourceRasters
from download_module.writer import SPLITS
from util.evaluation.raster_eval import row_latitudes
from util.io import kinds

FORMAT_VERSION = 2  # 2: each stack's grid (transform, crs) in the manifest, for the static predictors
KIND = kinds.STACK
PATCH = 16  # a climate model's grid is small: 37 x 49 cells hold 21 x 33 crops of 16, 6 x 18 of 32
TEST_FRACTION = 0.2  # of each stack's steps: the last ones
PATCH_COLUMNS = ["stack", "step", "row", "col"]


# ---- 1. A folder of stacks ------------------------------------------------------------------------------


def folder_data(folder, variable: str | None = None) -> dict[str, list[Path]]:
    """``{"photo", "raster", "stack"}`` -> files below ``folder``: photos, single grids and stacks (is_stack)."""
    from util.io.stacks import is_stack

    found = kinds.folder_files(Path(folder).expanduser().resolve())
    stacks = [p for p in found[kinds.RASTER] if is_stack(p, variable)]
    grids = [p for p in found[kinds.RASTER] if p not in stacks]
    return {kinds.PHOTO: found[kinds.PHOTO], kinds.RASTER: grids, KIND: stacks}


# ---- 2. The split in time --------------------------------------------------------------------------------


def time_cut(steps: int, fraction: float = TEST_FRACTION) -> int:
    """The first test step of a stack of ``steps`` steps: its last ``fraction`` (rounded, at least one) are test."""
    return steps - max(1, round(fraction * steps))


def held_out(names: list[str], test_files: tuple[str, ...], source: str) -> list[str]:
    """The names among ``names`` that ``test_files`` give (a name, its file name or stem); a UserError for others."""
    chosen = []
    for wanted in test_files:
        match = [n for n in names if wanted in (n, n.rsplit("/", 1)[-1], Path(n).stem)]
        if not match:
            raise util.UserError(
                f"--test-file {wanted}: not among the stacks of {source} ({', '.join(names)}); give one of them"
            )
        chosen += match
    if chosen and set(chosen) == set(names):
        raise util.UserError(
            f"--test-file {','.join(test_files)}: holds out every stack of {source}, none is left to train; "
            "give more stacks or hold out fewer"
        )
    return sorted(set(chosen))


@dataclass
class UsableStack:
    """A stack that read and has usable patches; what planning and cutting need of it."""

    file: RasterFile
    shape: tuple[int, int, int]  # (T, H, W)
    cell: tuple[float, float]  # (dy, dx) in metres
    units: str
    standard_name: str
    latitudes: list[float] | None  # [row 0's centre latitude, step per row] in degrees (geographic)
    times: list[str] | None  # ISO 8601, one a step
    calendar: str
    time_units: str | None
    cut: int  # the first test step
    use: str  # "split" (train and test), "train" or "test" (held out)
    usable: np.ndarray = field(repr=False)  # bool (training steps, rows, cols): the usable training crops
    tiles: list[tuple[int, int, int]] = field(repr=False)  # (step, row, col) of the usable test tiles
    values: np.ndarray | None = field(default=None, repr=False)  # kept when the cache had room
    transform: list[float] | None = None  # the grid's affine (a, b, c, d, e, f): cell corners in the CRS
    crs: str | None = None  # the grid's CRS (EPSG code or WKT)


def positions(values: np.ndarray, steps: range, patch: int, max_invalid: int) -> tuple[np.ndarray, list]:
    """(bool (len(steps), rows, cols) usable crops, [(step, row, col)] usable non-overlapping tiles) of ``steps``."""
    height, width = values.shape[1:]
    grid = (0, height, 0, width)
    usable = np.zeros((len(steps), height - patch + 1, width - patch + 1), bool)
    tiles = []
    for k, step in enumerate(steps):
        table = raster_pairs.invalid_table(np.isfinite(values[step]))
        usable[k] = raster_pairs.crop_positions(table, grid, patch, max_invalid)
        tiles += [(step, r, c) for r, c in raster_pairs.test_tiles(table, grid, patch, max_invalid)]
    return usable, tiles


def _read(file: RasterFile, read: dict):
    from util.io.stacks import read_stack

    return read_stack(file.path, variable=read["variable"], level=read.get("level"), nodata=read["nodata"])


def _usable_stack(file: RasterFile, stack, settings: dict) -> UsableStack | str:
    """The stack's usable patches, or why it has none."""
    patch, count = settings["patch_size"], len(stack)
    height, width = stack.shape[1:]
    if count < 2:
        return "one time step, nothing to split in time; use it as a single grid (--kind raster)"
    if min(height, width) < patch:
        return f"{height}x{width} cells, smaller than a {patch}x{patch} patch"
    cut = time_cut(count, settings["test_fraction"])
    use = "test" if file.name in settings["test_files"] else "train" if settings["test_files"] else "split"
    max_invalid = raster_pairs.max_invalid_cells(patch, settings["max_nodata"])
    usable, _ = positions(stack.values, range(cut if use != "test" else 0), patch, max_invalid)
    _, tiles = positions(stack.values, range(cut if use != "train" else count, count), patch, max_invalid)
    if not usable.any() and not tiles:
        return f"no {patch}x{patch} patch with at most {settings['max_nodata']:.0%} nodata"
    first = stack.step(0)
    lats = row_latitudes(first)
    times = None if stack.times is None else [t.isoformat() for t in stack.times]
    return UsableStack(
        file,
        (count, height, width),
        tuple(float(v) for v in first.cell_size_m()),
        first.units,  # the stack's, "m" where it gives none (as a raster's)
        str(stack.attrs.get("standard_name", "")),
        None if lats is None else [float(lats[0]), float(lats[1] - lats[0])],
        times,
        stack.calendar,
        stack.time_units,
        cut,
        use,
        usable,
        tiles,
        transform=None if first.transform is None else [float(v) for v in tuple(first.transform)[:6]],
        crs=None if first.crs is None else first.crs.to_string(),
    )


def check_stacks(rasters: SourceRasters, settings: dict) -> tuple[list[UsableStack], list]:
    """(usable stacks, skipped [name, reason]), each read once (kept while the cache has room); none: a UserError."""
    usable, skipped, cached, unread = [], [], 0, 0
    for file in tqdm(rasters.rasters, desc="check stacks", unit="stack", leave=False, disable=None):
        try:
            stack = _read(file, settings["read"])
        except util.UserError as err:
            skipped.append([file.name, str(err).removeprefix(f"{file.path}: ")])
            unread += 1
            continue
        found = _usable_stack(file, stack, settings)
        if isinstance(found, str):
            skipped.append([file.name, found])
            continue
        if cached + stack.values.nbytes <= raster_pairs.CACHE_BYTES:
            found.values, cached = stack.values, cached + stack.values.nbytes
        usable.append(found)
    total, source = len(rasters.rasters), settings["source"]
    if not usable:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped)
        fix = "" if unread == total else " or a smaller --patch (16 at least)"  # unread: refused by the reader
        raise util.UserError(f"{source}: no usable stack among {total} ({reasons}); give other stacks{fix}")
    if skipped:
        print(f"warning: {raster_pairs.skipped_message(source, total, skipped)}", file=sys.stderr)
    return usable, skipped


# ---- 3. Patches --------------------------------------------------------------------------------------------


def plan_splits(usable: list[UsableStack], settings: dict) -> dict[str, np.ndarray]:
    """split -> (n, 4) int64 rows (stack index, step, row, col); a UserError when a split gets no patch."""
    counts, seed, patch = settings["counts"], settings["seed"], settings["patch_size"]
    weights = np.array([u.usable.sum() for u in usable], np.float64)
    tiles = [(i, *tile) for i, u in enumerate(usable) for tile in u.tiles]
    for split, empty in (("training", weights.sum() == 0), ("test", not tiles)):
        if empty:
            raise util.UserError(
                f"{settings['source']}: no {split} patch of {patch}x{patch} cells with at most "
                f"{settings['max_nodata']:.0%} nodata; give --patch {max(raster_pairs.MIN_PATCH, patch // 2)}, "
                "or stacks with more steps"
            )
    per_stack = np.random.default_rng([seed, 0, 0]).multinomial(counts["train"], weights / weights.sum())
    train = [np.zeros((0, 4), np.int64)]
    for i, (u, n) in enumerate(zip(usable, per_stack, strict=True)):
        if n:
            drawn = raster_pairs.sample_positions(u.usable, int(n), np.random.default_rng([seed, 0, 2, i]))
            train.append(np.column_stack([np.full(len(drawn), i), drawn]).astype(np.int64))
    train = np.concatenate(train)[np.random.default_rng([seed, 0, 1]).permutation(counts["train"])]
    test = np.array(tiles, np.int64).reshape(-1, 4)
    return {"train": train, "test": test[np.random.default_rng([seed, 1]).permutation(len(test))[: counts["test"]]]}


def fill_splits(usable: list[UsableStack], settings: dict, plans: dict, arrays: dict) -> float:
    """Crop, degrade and store every planned patch; return the value scale (raster_pairs.Deviation)."""
    patch, scales = settings["patch_size"], settings["scales"]
    deviation = raster_pairs.Deviation()
    for i, u in enumerate(tqdm(usable, desc="crop", unit="stack", leave=False, disable=None)):
        values = u.values if u.values is not None else _read(u.file, settings["read"]).values
        u.values = None  # done with the cache once this stack is cut
        for split in SPLITS:
            plan = plans[split]
            rows = np.flatnonzero(plan[:, 0] == i)
            for start in range(0, len(rows), raster_pairs.CHUNK):
                chunk = rows[start : start + raster_pairs.CHUNK]
                hr = np.stack([values[t, r : r + patch, c : c + patch] for _, t, r, c in plan[chunk]])
                if split == "train":
                    deviation.add(hr)
                for key, data in raster_pairs.degrade(hr.astype(np.float32), settings["lr"], scales).items():
                    arrays[split][key][chunk] = data
                arrays[split]["cell"][chunk] = np.asarray(u.cell, np.float32)
        del values
    return deviation.value


# ---- 4. The data set folder ------------------------------------------------------------------------------


def dataset_settings(
    source: str,
    rasters: SourceRasters,
    counts: dict[str, int],
    seed: int,
    patch: int = PATCH,
    lr: str = raster_pairs.LR_METHODS[0],
    read: dict | None = None,
    test_files: tuple[str, ...] = (),
    max_nodata: float = raster_pairs.MAX_NODATA,
) -> dict:
    """What decides the content of a stack data set folder: equal settings, equal files.

    ``read``: ``{"variable", "nodata"}`` of every stack, and ``"level"`` when given; ``test_files``: the
    stacks held out.
    """
    raster_pairs.check_patch(patch)
    if lr not in raster_pairs.LR_METHODS:
        raise util.UserError(f"--lr {lr}: give one of {', '.join(raster_pairs.LR_METHODS)}")
    names = [r.name for r in rasters.rasters]
    return {
        "format": FORMAT_VERSION,
        "kind": KIND,
        "source": source,
        "seed": seed,
        "counts": {split: int(counts[split]) for split in SPLITS},  # test: a maximum
        "patch_size": patch,
        "lr": lr,
        "scales": list(raster_pairs.scales_for(patch)),
        "max_nodata": max_nodata,
        "test_fraction": TEST_FRACTION,
        "test_files": held_out(names, tuple(test_files), source),
        "read": _read_settings(read),
        "inputs_sha256": raster_pairs.rasters_fingerprint(rasters),
    }


def _read_settings(read: dict | None) -> dict:
    """``{"variable", "nodata"}``, and ``"level"`` only when given: the settings of 3-D stacks name no level."""
    merged = {"variable": None, "nodata": None, **(read or {})}
    return {key: value for key, value in merged.items() if key != "level" or value is not None}


def is_up_to_date(dest: Path, settings: dict) -> bool:
    """True when ``dest/manifest.json`` has these settings and every file it lists is there with its shape."""
    return writer.is_up_to_date(dest, settings, raster_pairs.expected_files, kind=KIND)


def split_rule(settings: dict) -> str:
    patch, held = settings["patch_size"], settings["test_files"]
    rule = (
        f"in time, per stack: its last {settings['test_fraction']:.0%} of the time steps (rounded, at least one) are "
        f"test steps and the steps before them training steps; test patches are the non-overlapping {patch}x{patch} "
        f"tiles of every test step, training patches random {patch}x{patch} crops of the training steps; patches "
        f"with more than {settings['max_nodata']:.0%} nodata cells are skipped; stacks[i].train_steps and test_steps "
        "give the steps [first, end)"
    )
    if held:
        rule += f"; held out (--test-file): {', '.join(held)} give(s) test patches only, the other stacks training only"
    return rule


def _stack_entries(usable: list[UsableStack]) -> list[dict]:
    """The manifest's ``stacks``: each usable stack's shape, cells, role, times and steps of each split."""
    roles = {"split": "train and test", "train": "train (the others held out)", "test": "test (held out)"}
    entries = []
    for u in usable:
        entry = {"name": u.file.name, "shape": list(u.shape), "cell_m": [round(v, 4) for v in u.cell]}
        entry |= {"role": roles[u.use], **({"latitudes": u.latitudes} if u.latitudes else {})}
        entry |= {"calendar": u.calendar, "time_units": u.time_units, "transform": u.transform, "crs": u.crs}
        steps = {
            "train": [0, u.cut] if u.use != "test" else None,
            "test": [u.cut, u.shape[0]] if u.use != "train" else None,
        }
        for split, (first, end) in ((split, steps[split] or (None, None)) for split in SPLITS):
            entry[f"{split}_steps"] = steps[split]
            entry[f"{split}_times"] = None if first is None or u.times is None else [u.times[first], u.times[end - 1]]
        entries.append({**entry, "times": u.times})
    return entries


def write_dataset(dest: Path, rasters: SourceRasters, settings: dict) -> dict:
    """Check the stacks, split them in time, then write the .npy files and the manifest (through writer.py)."""
    source, patch = settings["source"], settings["patch_size"]
    started = time.monotonic()
    usable, skipped = check_stacks(rasters, settings)
    plans = plan_splits(usable, settings)
    keys = raster_pairs.patch_kinds(patch, settings["scales"])
    layout = writer.npy_layout({split: len(plans[split]) for split in SPLITS}, keys)
    old = writer.listed_files(dest)
    writer.prepare(dest, writer.npy_bytes(layout))
    with (
        writer.disk_errors(dest),
        writer.npy_files(dest, layout["train"]) as train,
        writer.npy_files(dest, layout["test"]) as test,
    ):
        value_scale = fill_splits(usable, settings, plans, {"train": train, "test": test})
    files = {
        f"{split}_{key}": {"file": f.name, "shape": list(f.shape), "dtype": f.dtype}
        for split in SPLITS
        for key, f in layout[split].items()
    }
    raster_pairs.remove_old_files(dest, old, files)
    names = [u.file.name for u in usable]
    manifest = {
        "kind": KIND,
        "units": raster_pairs.common_units(usable, source),
        **({"standard_name": usable[0].standard_name} if usable[0].standard_name else {}),
        "source": source,
        "origin": rasters.origin,
        "split_rule": split_rule(settings),
        "split": {"by": "time", "test_fraction": settings["test_fraction"], "test_files": settings["test_files"]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "value_scale": value_scale,
        "files": files,
        "stacks": _stack_entries(usable),
        "skipped": skipped,
        "notes": rasters.notes,
        "splits": {
            split: {"stacks": names, "patch_columns": PATCH_COLUMNS, "patches": plans[split].tolist()}
            for split in SPLITS
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    writer.write_manifest(dest, manifest)
    return manifest
