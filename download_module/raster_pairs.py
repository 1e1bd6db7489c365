"""Rasters (DEMs, any grid in data units) -> float32 HR/LR patch pairs with masks and cell sizes, plus a manifest.

The raster counterpart of ``pairs.py``: every raster source (``dem``, ``copernicus``,
``--folder`` of rasters) ends here. For ``<out>/<name>/``:

- ``{train,test}_hr.npy``: float32 (N, P, P, 1) in the data's units, nodata cells filled
  from the nearest valid cell of the same patch (``util.io.rasters.fill_nodata``: no NaN,
  and no value from outside the patch, so nothing of the test region leaks into training);
- ``{train,test}_sr{s}.npy`` for s in (2, 4, 8) with P % s == 0 and P // s >= 4: float32
  (N, P/s, P/s, 1): the mean of the valid HR cells of each s x s block (``block_mean``,
  what a coarser sensor or grid measures; the default) or MATLAB bicubic of the filled HR
  patch (``--lr bicubic``; float, neither rounded nor clipped); LR cells without a valid HR
  cell are filled like the HR;
- ``{train,test}_mask.npy``: uint8 (N, P, P, 1), 1 = a valid HR cell;
- ``{train,test}_cell.npy``: float32 (N, 2): (dy, dx) of the HR patch in metres
  (``Raster.cell_size_m``: geographic cells converted at the raster's centre latitude);
- ``test_regions/<raster stem>.tif``: each raster's held-out region, float32 GeoTIFF with
  its nodata, for ``evaluate.py``;
- ``manifest.json``: ``"kind": "raster"``, units (and the NetCDF ``standard_name`` where the
  rasters give one), settings, the split rule, per patch its raster, row and col (top-left
  cell), each raster's test region [row0, row1, col0, col1] and, for geographic rasters,
  ``latitudes`` [row 0's centre latitude, step per row] in degrees, and ``value_scale``: the
  std of (HR - its patch mean) over the valid training cells.

The split is spatial and disjoint, per raster: the far end of its longer side (the bottom
rows or the right columns), TEST_FRACTION of that side rounded to whole patches (at least
one), is its test region and holds only test patches, non-overlapping tiles; training
patches are random P x P crops entirely outside it (they may overlap each other), never
rotated (a rotation would swap dy and dx). A raster too small for a test region and a
training area goes whole to train; when no raster has a test region, the last such raster
by name goes whole to test instead. Patches with more than ``max_nodata`` nodata cells
are never used. Training patches are spread over the rasters in proportion to the number
of usable crop positions (uniform in space) and shuffled, so any first N rows are a fair
sample; the test tiles are shuffled too, and ``--test`` is their maximum.

Reproducibility: the train plan comes from ``default_rng([seed, 0, ...])``, the test
choice from ``default_rng([seed, 1])``; the test patches do not depend on ``--train``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

import util
from download_module import writer
from download_module.writer import SPLITS
from util.evaluation.raster_eval import row_latitudes
from util.evaluation.raster_metrics import block_mean
from util.io import kinds
from util.io.rasters import RASTER_SUFFIXES, Raster, fill_nodata, read_raster, warn_suspected_nodata, write_raster

FORMAT_VERSION = 1
KIND = "raster"
PATCH = 64  # default patch side in cells; small grids need 32
MIN_PATCH = 16
SCALES = (2, 4, 8)
MIN_LR = 4  # an LR patch has at least 4 x 4 cells
TEST_FRACTION = 0.25  # of each raster's longer side, rounded to whole patches
MAX_NODATA = 0.25  # a patch with a larger fraction of nodata cells is skipped
TRAIN_PATCHES = 2000
TEST_PATCHES = 1000  # a maximum: all test tiles up to it
LR_METHODS = ("block-mean", "bicubic")
CHUNK = 256  # patches degraded at once
CACHE_BYTES = 1 << 30  # raster values kept between the check pass and the crop pass
REGIONS = "test_regions"


def scales_for(patch: int) -> tuple[int, ...]:
    """The LR scales a P x P patch gets: P % s == 0 and at least MIN_LR LR cells a side."""
    return tuple(s for s in SCALES if patch % s == 0 and patch // s >= MIN_LR)


def check_patch(patch: int) -> None:
    """A one-line UserError unless ``patch`` is a multiple of 8 of at least MIN_PATCH cells."""
    if patch < MIN_PATCH or patch % 8:
        raise util.UserError(f"--patch {patch}: give a multiple of 8 of at least {MIN_PATCH} cells (64, or 32)")


# ---- 1. What a source hands over ----------------------------------------------


@dataclass(frozen=True)
class RasterFile:
    """One raster file; ``name`` is what the manifest calls it (its path below the source's root, with /)."""

    path: Path
    name: str


@dataclass(frozen=True)
class ReadOptions:
    """How every raster of a source is read (``--band``, ``--variable``, ``--nodata``)."""

    band: int | None = None
    variable: str | None = None
    nodata: float | None = None


@dataclass
class SourceRasters:
    """The rasters of a source; the split is always made here, in space (stacks: in stack_pairs.py, in time)."""

    rasters: list[RasterFile]
    origin: str  # URL, package or folder the rasters came from
    notes: list[str] = field(default_factory=list)  # e.g. tiles that do not exist, for the manifest
    held_out: list[str] = field(default_factory=list)  # stacks: names of the files held out for test (--test-file)


def rasters_fingerprint(rasters: SourceRasters) -> str:
    """sha256 of the raster names, sizes and modification times: changes when the inputs do."""
    rows = []
    for r in rasters.rasters:
        stat = r.path.stat() if r.path.exists() else None
        rows.append([r.name, stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


# ---- 2. A folder of rasters ------------------------------------------------------


def folder_kind(folder) -> str:
    """What ``folder`` holds by util.io.kinds: photo, raster or mixed (neither: photo, whose path says so)."""
    return kinds.kind_of(kinds.folder_files(Path(folder).expanduser())) or kinds.PHOTO


def find_folder_rasters(folder, files: list[Path] | None = None) -> SourceRasters:
    """Every raster file below ``folder`` by util.io.kinds (photos and hidden files left out), or ``files`` of
    them (paths as ``kinds.folder_files`` of the resolved folder lists them); nothing is copied."""
    folder = Path(folder).expanduser().resolve()
    files = kinds.folder_files(folder)[kinds.RASTER] if files is None else files
    if not files:
        raise util.UserError(
            f"{folder}: no raster files ({', '.join(RASTER_SUFFIXES)}; 8-bit TIFFs without georeference are photos) "
            "in this folder tree; give a folder of rasters"
        )
    return SourceRasters([RasterFile(p, p.relative_to(folder).as_posix()) for p in files], origin=str(folder))


# ---- 3. The spatial split ----------------------------------------------------------

Box = tuple[int, int, int, int]  # (row0, row1, col0, col1), rows and cols of cells, end excluded


@dataclass(frozen=True)
class Layout:
    """Where a raster's training crops and test tiles may lie.

    ``use``: ``"split"`` (a test band and a training area), ``"whole"`` (too small for
    both: it goes whole to one split) or ``"small"`` (smaller than one patch).
    """

    use: str
    train: Box | None
    test: Box | None


def split_layout(height: int, width: int, patch: int, fraction: float = TEST_FRACTION) -> Layout:
    """The test band at the far end of the longer side and the training area before it."""
    if min(height, width) < patch:
        return Layout("small", None, None)
    rows_long = height >= width
    long_side = height if rows_long else width
    band = max(patch, round(fraction * long_side / patch) * patch)
    if long_side - band < patch:
        return Layout("whole", (0, height, 0, width), (0, height, 0, width))
    cut = long_side - band
    if rows_long:
        return Layout("split", (0, cut, 0, width), (cut, height, 0, width))
    return Layout("split", (0, height, 0, cut), (0, height, cut, width))


def invalid_table(valid: np.ndarray) -> np.ndarray:
    """Summed-area table of the nodata cells: (H + 1, W + 1) int32, zero first row and column."""
    table = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), np.int32)
    np.cumsum(np.cumsum(~valid, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    return table


def _nodata_counts(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """Nodata cells of the P x P patches whose top-left cells are (rows[i], cols[j]): (len(rows), len(cols))."""
    r, c = rows[:, None], cols[None, :]
    return table[r + patch, c + patch] - table[r, c + patch] - table[r + patch, c] + table[r, c]


def crop_positions(table: np.ndarray, box: Box, patch: int, max_invalid: int) -> np.ndarray:
    """bool (rows, cols): top-left cells (relative to ``box``) of the crops inside ``box`` that are usable."""
    r0, r1, c0, c1 = box
    if r1 - r0 < patch or c1 - c0 < patch:
        return np.zeros((0, 0), bool)
    rows, cols = np.arange(r0, r1 - patch + 1), np.arange(c0, c1 - patch + 1)
    return _nodata_counts(table, rows, cols, patch) <= max_invalid


def test_tiles(table: np.ndarray, box: Box, patch: int, max_invalid: int) -> list[tuple[int, int]]:
    """(row, col) of the usable non-overlapping tiles of ``box``, row by row from its top-left cell."""
    r0, r1, c0, c1 = box
    rows, cols = np.arange(r0, r1 - patch + 1, patch), np.arange(c0, c1 - patch + 1, patch)
    if not len(rows) or not len(cols):
        return []
    usable = _nodata_counts(table, rows, cols, patch) <= max_invalid
    return [(int(rows[i]), int(cols[j])) for i, j in zip(*np.nonzero(usable), strict=True)]


def sample_positions(usable: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 2) int64 (row, col) drawn uniformly, with replacement, among the True cells of ``usable``."""
    flat = usable.ravel()
    total, good = flat.size, int(flat.sum())
    if count == 0 or good == 0:
        return np.zeros((0, 2), np.int64)
    if good / total >= 0.05:  # rejection sampling: no index array of the whole raster
        picked = np.zeros(0, np.int64)
        while len(picked) < count:
            draw = rng.integers(0, total, size=int(2 * (count - len(picked)) * total / good) + 16)
            picked = np.concatenate([picked, draw[flat[draw]]])
        picked = picked[:count]
    else:
        candidates = np.flatnonzero(flat)
        picked = candidates[rng.integers(0, len(candidates), size=count)]
    return np.stack(np.unravel_index(picked, usable.shape), axis=1).astype(np.int64)


# ---- 4. Checking the rasters ----------------------------------------------------------


@dataclass
class UsableRaster:
    """A raster that read and has at least one usable patch; what the crop pass needs of it."""

    file: RasterFile
    shape: tuple[int, int]
    cell: tuple[float, float]  # (dy, dx) in metres
    units: str
    layout: Layout
    use: str  # "split", "train" (whole) or "test" (whole)
    train_positions: int  # usable training crops
    tiles: list[tuple[int, int]]  # usable test tiles (row, col)
    raster: Raster | None = field(default=None, repr=False)  # kept when the cache had room
    latitudes: list[float] | None = None  # geographic: [row 0's centre latitude, step per row] in degrees
    standard_name: str = ""  # the NetCDF variable's, "" for none

    @property
    def test_region(self) -> Box | None:
        return self.layout.test if self.use in ("split", "test") else None

    @property
    def train_area(self) -> Box | None:
        return self.layout.train if self.use in ("split", "train") else None


def max_invalid_cells(patch: int, max_nodata: float) -> int:
    return int(np.floor(max_nodata * patch * patch + 1e-9))


def _read(file: RasterFile, read: dict) -> Raster:
    return read_raster(file.path, band=read["band"], variable=read["variable"], nodata=read["nodata"])


def check_rasters(rasters: SourceRasters, settings: dict):
    """(usable rasters, skipped [name, reason]): each raster read once; its layout and its usable patches."""
    patch, read = settings["patch_size"], settings["read"]
    max_invalid = max_invalid_cells(patch, settings["max_nodata"])
    usable, skipped, cached = [], [], 0
    for file in tqdm(rasters.rasters, desc="check rasters", unit="raster", leave=False, disable=None):
        try:
            raster = _read(file, read)
        except util.UserError as err:
            reason = str(err)
            skipped.append([file.name, reason.removeprefix(f"{file.path}: ").removeprefix(f"{file.name}: ")])
            continue
        warn_suspected_nodata(raster)
        height, width = raster.values.shape
        valid = raster.valid
        if not valid.any():
            skipped.append([file.name, f"every cell is nodata ({height}x{width} cells)"])
            continue
        layout = split_layout(height, width, patch)
        if layout.use == "small":
            skipped.append([file.name, f"{height}x{width} cells, smaller than a {patch}x{patch} patch"])
            continue
        table = invalid_table(valid)
        positions = int(crop_positions(table, layout.train, patch, max_invalid).sum())
        tiles = test_tiles(table, layout.test, patch, max_invalid)
        if positions == 0 and not tiles:
            skipped.append([file.name, f"no {patch}x{patch} patch with at most {settings['max_nodata']:.0%} nodata"])
            continue
        use = "split" if layout.use == "split" else "train"
        nbytes = raster.values.nbytes
        keep = cached + nbytes <= CACHE_BYTES
        cached += nbytes if keep else 0
        usable.append(
            UsableRaster(
                file,
                (height, width),
                tuple(float(v) for v in raster.cell_size_m()),
                raster.units,
                layout,
                use,
                positions,
                tiles,
                raster if keep else None,
                _latitudes(raster),
                str(raster.meta.get("attrs", {}).get("standard_name", "")),
            )
        )
    return usable, skipped


def _latitudes(raster: Raster) -> list[float] | None:
    """[row 0's centre latitude, step per row] in degrees of a geographic raster (for the test scores), else None."""
    lats = row_latitudes(raster)
    return None if lats is None else [float(lats[0]), float(lats[1] - lats[0])]


def assign_whole_rasters(usable: list[UsableRaster], patch: int, source: str) -> list[str]:
    """Send one whole raster to test when no raster has a test region; return the rule's parts about them."""
    parts = []
    if not any(u.use == "split" and u.tiles for u in usable):
        whole = [u for u in usable if u.use == "train" and u.tiles]
        if len(usable) == 1 or not whole:
            names = ", ".join(f"{u.file.name} ({u.shape[0]}x{u.shape[1]})" for u in usable)
            smaller = f"give --patch {patch // 2}, " if patch // 2 >= MIN_PATCH and patch % 16 == 0 else ""
            raise util.UserError(
                f"{source}: no test region: {names} cannot hold both a test region and a training area of "
                f"{patch}x{patch} patches; {smaller}more rasters or larger ones"
            )
        whole[-1].use = "test"
        parts.append(f"whole to test (no raster had a test region): {whole[-1].file.name}")
    to_train = [u.file.name for u in usable if u.use == "train"]
    if to_train:
        parts.append(f"whole to train (too small for a test region and a training area): {', '.join(to_train)}")
    return parts


def split_rule(usable: list[UsableRaster], settings: dict, whole_parts: list[str]) -> str:
    patch = settings["patch_size"]
    rule = (
        f"spatially disjoint, per raster: a test region at the far end of its longer side (the bottom rows or "
        f"the right columns; TEST_FRACTION {TEST_FRACTION:g} of that side rounded to whole {patch}-cell patches, "
        f"at least one) holds only non-overlapping {patch}x{patch} test tiles; training patches are random "
        f"{patch}x{patch} crops entirely outside it; patches with more than {settings['max_nodata']:.0%} nodata "
        "cells are skipped; test_regions gives each region [row0, row1, col0, col1]"
    )
    return "; ".join([rule, *whole_parts])


# ---- 5. Patches -----------------------------------------------------------------------


def train_owners(usable: list[UsableRaster], count: int, seed: int) -> np.ndarray:
    """(count,) int64: the raster index of each training row, shuffled.

    The number of crops of each raster is multinomial in its usable crop positions, so
    that the patches are uniform in space over all rasters, and the rows are shuffled so
    that any first N of them are a fair sample too.
    """
    weights = np.array([u.train_positions if u.train_area else 0 for u in usable], np.float64)
    if count == 0 or weights.sum() == 0:
        return np.zeros(0, np.int64)
    per_raster = np.random.default_rng([seed, 0, 0]).multinomial(count, weights / weights.sum())
    owners = np.repeat(np.arange(len(usable), dtype=np.int64), per_raster)
    return owners[np.random.default_rng([seed, 0, 1]).permutation(count)]


def plan_test(usable: list[UsableRaster], count: int, seed: int) -> np.ndarray:
    """(n, 3) int64 rows (raster index, row, col): up to ``count`` of all usable test tiles, shuffled."""
    rows = [(i, r, c) for i, u in enumerate(usable) if u.test_region for r, c in u.tiles]
    plan = np.array(rows, np.int64).reshape(-1, 3)
    order = np.random.default_rng([seed, 1]).permutation(len(plan))
    return plan[order[:count]]


def _fill_patches(patches: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, H, W) float32 with NaN -> each NaN cell filled from the nearest valid cell of its own patch."""
    out = np.array(patches, np.float32)
    for i in np.flatnonzero(~valid.reshape(len(valid), -1).all(axis=1)):
        out[i] = fill_nodata(out[i])
    return out


def degrade(hr: np.ndarray, lr_method: str, scales: tuple[int, ...]) -> dict[str, np.ndarray]:
    """(N, P, P) float32 HR, NaN for nodata -> {"hr", "mask", "sr{s}"...}: float32 / uint8 NHWC, no NaN."""
    valid = np.isfinite(hr)
    filled = _fill_patches(hr, valid)
    out = {"hr": filled[..., None], "mask": valid.astype(np.uint8)[..., None]}
    for s in scales:
        if lr_method == "bicubic":
            size = hr.shape[1] // s
            lr = util.imresize(filled, output_shape=(size, size), batch=True).astype(np.float32)
        else:
            lr, lr_valid = block_mean(hr, s, valid)
            lr = _fill_patches(lr, np.asarray(lr_valid, bool))
        out[f"sr{s}"] = lr[..., None]
    return out


def patch_kinds(patch: int, scales) -> dict[str, tuple[tuple[int, ...], str]]:
    """file key -> (shape of one patch, dtype) of every file of a split."""
    kinds = {"hr": ((patch, patch, 1), "float32")}
    kinds.update({f"sr{s}": ((patch // s, patch // s, 1), "float32") for s in scales})
    kinds.update({"mask": ((patch, patch, 1), "uint8"), "cell": ((2,), "float32")})
    return kinds


class Deviation:
    """Running sum of squared deviations from each patch's mean over its valid cells: the value scale."""

    def __init__(self):
        self.squares, self.cells = 0.0, 0

    def add(self, hr: np.ndarray) -> None:
        values = hr.reshape(len(hr), -1).astype(np.float64)
        valid = np.isfinite(values)
        counts = valid.sum(axis=1)
        means = np.where(valid, values, 0).sum(axis=1) / np.maximum(counts, 1)
        self.squares += float((np.where(valid, values - means[:, None], 0) ** 2).sum())
        self.cells += int(counts.sum())

    @property
    def value(self) -> float:
        return float(np.sqrt(self.squares / self.cells)) if self.cells else 0.0


def _load(u: UsableRaster, read: dict) -> Raster:
    if u.raster is not None:
        return u.raster
    try:
        return _read(u.file, read)
    except util.UserError as err:
        raise util.UserError(f"{err} (it changed while patches were being cut; run again)") from None


def region_files(usable: list[UsableRaster]) -> dict[str, str]:
    """raster name -> ``test_regions/<stem>.tif``; the whole name with / and . as _ where two stems clash."""
    with_region = [u for u in usable if u.test_region]
    files = {}
    for u in with_region:
        stem = u.file.path.stem
        if sum(v.file.path.stem == stem for v in with_region) > 1:
            stem = u.file.name.replace("/", "_").replace(".", "_")
        files[u.file.name] = f"{REGIONS}/{stem}.tif"
    return files


def fill_splits(usable: list[UsableRaster], settings: dict, plans: dict, arrays: dict, dest: Path) -> float:
    """Crop, degrade and store every planned patch, and write the test regions; return the value scale.

    ``plans["train"]`` holds each row's raster; its crop positions are drawn here, when the
    raster is loaded (once, from the cache or read again, for both splits).
    """
    patch, read, scales, seed = settings["patch_size"], settings["read"], settings["scales"], settings["seed"]
    max_invalid = max_invalid_cells(patch, settings["max_nodata"])
    regions = region_files(usable)
    deviation = Deviation()
    for i, u in enumerate(tqdm(usable, desc="crop", unit="raster", leave=False, disable=None)):
        raster = _load(u, read)
        u.raster = None  # done with the cache once this raster is cut
        if u.test_region:
            region = raster.region(*u.test_region)
            write_raster(dest / regions[u.file.name], region.values, like=region)
        train = plans["train"]
        rows = np.flatnonzero(train[:, 0] == i)
        if len(rows):
            r0, _, c0, _ = u.train_area
            crops = crop_positions(invalid_table(raster.valid), u.train_area, patch, max_invalid)
            train[rows, 1:] = sample_positions(crops, len(rows), np.random.default_rng([seed, 0, 2, i])) + (r0, c0)
        for split in SPLITS:
            plan = plans[split]
            rows = np.flatnonzero(plan[:, 0] == i)
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start : start + CHUNK]
                hr = np.stack([raster.values[r : r + patch, c : c + patch] for _, r, c in plan[chunk]])
                if split == "train":
                    deviation.add(hr)
                for key, data in degrade(hr.astype(np.float32), settings["lr"], scales).items():
                    arrays[split][key][chunk] = data
                arrays[split]["cell"][chunk] = np.asarray(u.cell, np.float32)
        del raster
    return deviation.value


# ---- 6. The data set folder ------------------------------------------------------------


def dataset_settings(
    source: str,
    rasters: SourceRasters,
    counts: dict[str, int],
    seed: int,
    patch: int = PATCH,
    lr: str = LR_METHODS[0],
    read: ReadOptions = ReadOptions(),  # noqa: B008 (frozen)
    max_nodata: float = MAX_NODATA,
) -> dict:
    """What decides the content of a raster data set folder: equal settings, equal files."""
    check_patch(patch)
    if lr not in LR_METHODS:
        raise util.UserError(f"--lr {lr}: give one of {', '.join(LR_METHODS)}")
    return {
        "format": FORMAT_VERSION,
        "kind": KIND,
        "source": source,
        "seed": seed,
        "counts": {split: int(counts[split]) for split in SPLITS},  # test: a maximum
        "patch_size": patch,
        "lr": lr,
        "scales": list(scales_for(patch)),
        "max_nodata": max_nodata,
        "test_fraction": TEST_FRACTION,
        "read": dataclasses.asdict(read),
        "inputs_sha256": rasters_fingerprint(rasters),
    }


def is_up_to_date(dest: Path, settings: dict) -> bool:
    """True when ``dest/manifest.json`` has these settings and every file it lists is there with its shape."""
    return writer.is_up_to_date(dest, settings, expected_files, kind=KIND)


def expected_files(manifest: dict) -> dict:
    """file -> (shape, dtype) of each .npy file the manifest lists; None for its test regions."""
    return {
        entry["file"]: (entry["shape"], entry["dtype"]) if Path(entry["file"]).suffix == ".npy" else None
        for entry in manifest["files"].values()
    }


def skipped_message(source: str, total: int, skipped: list) -> str:
    reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped)
    return f"{source}: skipped {len(skipped)} of {total} rasters ({reasons})"


def _usable_rasters(rasters: SourceRasters, settings: dict):
    """``check_rasters``, with a UserError when no raster is usable and a warning line for those skipped."""
    source = settings["source"]
    usable, skipped = check_rasters(rasters, settings)
    total = len(rasters.rasters)
    if not usable:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped)
        raise util.UserError(f"{source}: no usable raster among {total} ({reasons})")
    if skipped:
        print(f"warning: {skipped_message(source, total, skipped)}", file=sys.stderr)
    return usable, skipped


def plan_splits(usable: list[UsableRaster], settings: dict) -> dict[str, np.ndarray]:
    """split -> (n, 3) int64 rows (raster index, row, col); training rows get their row and col in ``fill_splits``."""
    source, counts, seed, patch = settings["source"], settings["counts"], settings["seed"], settings["patch_size"]
    plans = {"train": np.zeros((counts["train"], 3), np.int64), "test": plan_test(usable, counts["test"], seed)}
    plans["train"][:, 0] = owners = train_owners(usable, counts["train"], seed)
    if len(owners) < counts["train"]:
        raise util.UserError(
            f"{source}: no training crop of {patch}x{patch} cells with at most "
            f"{settings['max_nodata']:.0%} nodata outside the test regions; give --patch 32 or more rasters"
        )
    if not len(plans["test"]):
        raise util.UserError(
            f"{source}: no test tile of {patch}x{patch} cells with at most "
            f"{settings['max_nodata']:.0%} nodata in the test regions; give --patch 32 or more rasters"
        )
    return plans


def _regions_bytes(usable: list[UsableRaster]) -> int:
    return sum((b[1] - b[0]) * (b[3] - b[2]) * 4 for u in usable if (b := u.test_region))


def _manifest_files(layout: dict[str, dict[str, writer.NpyFile]], usable: list[UsableRaster]) -> dict:
    """The manifest's ``files``: every .npy with its shape and dtype, then every test region with its raster."""
    files = {
        f"{split}_{key}": {"file": f.name, "shape": list(f.shape), "dtype": f.dtype}
        for split in SPLITS
        for key, f in layout[split].items()
    }
    for name, file in region_files(usable).items():
        u = next(u for u in usable if u.file.name == name)
        r0, r1, c0, c1 = u.test_region
        files[file.removesuffix(".tif")] = {"file": file, "raster": name, "shape": [r1 - r0, c1 - c0]}
    return files


def remove_old_files(dest: Path, old: set[str], files: dict) -> None:
    """Remove the files of an earlier run (those its manifest listed, and test regions) that this run did not write."""
    written = {entry["file"] for entry in files.values()}
    for stale in (old | {f"{REGIONS}/{p.name}" for p in (dest / REGIONS).glob("*.tif")}) - written:
        (dest / stale).unlink(missing_ok=True)


def common_units(usable: list, source: str) -> str:
    """The data set's units: the first file's, with a warning when the files (``usable[i].units``) disagree."""
    units = sorted({u.units for u in usable})
    if len(units) > 1:
        print(
            f"warning: {source}: the files give different units ({', '.join(map(repr, units))}); "
            f"the data set says {usable[0].units!r}",
            file=sys.stderr,
        )
    return usable[0].units


def _raster_entries(usable: list[UsableRaster]) -> list[dict]:
    """The manifest's ``rasters``: each usable raster's shape, cell size, use, training area and test region."""
    regions = region_files(usable)
    uses = {"split": "train and test", "train": "whole to train", "test": "whole to test"}
    return [
        {
            "name": u.file.name,
            "shape": list(u.shape),
            "cell_m": [round(v, 4) for v in u.cell],
            "role": uses[u.use],  # the manifest's key
            "train_area": list(u.train_area) if u.train_area else None,
            "test_region": list(u.test_region) if u.test_region else None,
            "test_region_file": regions.get(u.file.name),
            **({"latitudes": u.latitudes} if u.latitudes else {}),
        }
        for u in usable
    ]


def write_dataset(dest: Path, rasters: SourceRasters, settings: dict) -> dict:
    """Check the rasters, split them in space, then write the .npy files, test regions and manifest.

    Each .npy is filled through a memory map under a temporary name and renamed when
    complete; the old manifest is removed first and the new one written last, so an
    interrupted run is never mistaken for an up-to-date one.
    """
    source, patch = settings["source"], settings["patch_size"]
    started = time.monotonic()
    usable, skipped = _usable_rasters(rasters, settings)
    rule = split_rule(usable, settings, assign_whole_rasters(usable, patch, source))
    plans = plan_splits(usable, settings)
    layout = writer.npy_layout({split: len(plans[split]) for split in SPLITS}, patch_kinds(patch, settings["scales"]))
    old = writer.listed_files(dest)
    writer.prepare(dest, writer.npy_bytes(layout) + _regions_bytes(usable), quiet_stale=(f"{REGIONS}/.*.part.*",))
    with (
        writer.disk_errors(dest),
        writer.npy_files(dest, layout["train"]) as train,
        writer.npy_files(dest, layout["test"]) as test,
    ):
        value_scale = fill_splits(usable, settings, plans, {"train": train, "test": test}, dest)
    files = _manifest_files(layout, usable)
    remove_old_files(dest, old, files)
    names = [u.file.name for u in usable]
    manifest = {
        "kind": KIND,
        "units": common_units(usable, source),
        **({"standard_name": usable[0].standard_name} if usable[0].standard_name else {}),
        "source": source,
        "origin": rasters.origin,
        "split_rule": rule,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "value_scale": value_scale,
        "files": files,
        "rasters": _raster_entries(usable),
        "test_regions": {u.file.name: list(u.test_region) for u in usable if u.test_region},
        "skipped": skipped,
        "notes": rasters.notes,
        "splits": {
            split: {"rasters": names, "patch_columns": ["raster", "row", "col"], "patches": plans[split].tolist()}
            for split in SPLITS
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    writer.write_manifest(dest, manifest)
    return manifest
