"""Photo or raster: the one rule that decides how the suite reads a file (download.py, enhance.py, evaluate.py).

A *photo* is a picture for the eye: it goes through the photo models (RGB in [0, 1]) and
comes back as a PNG. A *raster* is a grid of values in data units (heights in metres, a heat
map): it goes through the raster models and comes back in its own format, georeferenced.
The decision is made per file, from its suffix and, for TIFFs, from its header (rasterio,
no pixels read, no TensorFlow):

- always rasters: ``.asc``, ``.npy``, ``.npz``, ``.nc`` and GRIB (``.grib``, ``.grib2``, ``.grb``,
  ``.grb2``): formats that hold values, not pictures (a GRIB file is a stack: util.io.stacks);
- always photos: ``.png``, ``.jpg``/``.jpeg``, ``.bmp``, ``.webp``, ``.gif``, ``.ppm``, ``.pgm``
  (a 16-bit PNG too: it stays a 16-bit PNG);
- a TIFF (``.tif``, ``.tiff``) is a raster when it is georeferenced (a CRS, a transform
  other than the identity, or ground control points), when it holds floats or signed
  integers, when it has one band that is not 8-bit (uint16 heights), or when its bands are
  not those of a picture; it is a photo when it is not georeferenced and holds 1 to 4
  8-bit bands (grey, grey + alpha, RGB, RGBA) or 3 to 4 16-bit bands that GDAL reads as
  red, green, blue (a 16-bit RGB scan). A TIFF that GDAL cannot open counts as a raster,
  so that the raster reader names it in one line;
- any other file is neither: a folder's listing leaves it out, as it leaves out hidden
  files and folders (``.DS_Store``, macOS's ``._photo.jpg``, ``.ipynb_checkpoints/``).

The suffix is compared in lower case (``DEM.TIF`` is a TIFF). A folder holding both kinds
is *mixed*: each entry point says what it does with one (``mixed_folder_error``).

A data set (``manifest.json``'s ``kind``) is of photos, of rasters (single grids, split in space)
or of *stacks* (``STACK``: raster files that hold a grid at several time steps, which
``util.io.stacks.is_stack`` tells apart from single grids; split in time).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from util.io.files import UserError

PHOTO = "photo"
RASTER = "raster"
KINDS = (PHOTO, RASTER)  # the kinds of files
STACK = "stack"  # a kind of data set: raster files that hold a grid at several time steps (util.io.stacks)
MIXED = "mixed"  # a folder holding both kinds
TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_ONLY_SUFFIXES = (".asc", ".npy", ".npz", ".nc", ".grib", ".grib2", ".grb", ".grb2")
PHOTO_ONLY_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".ppm", ".pgm")


def file_kind(path) -> str | None:
    """``"photo"`` or ``"raster"`` for ``path`` by the rule of the module doc; None for any other file."""
    suffix = Path(path).suffix.lower()
    if suffix in RASTER_ONLY_SUFFIXES:
        return RASTER
    if suffix in PHOTO_ONLY_SUFFIXES:
        return PHOTO
    if suffix in TIFF_SUFFIXES:
        return _tiff_kind(Path(path))
    return None


def _tiff_kind(path: Path) -> str:
    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                georeferenced = src.crs is not None or not src.transform.is_identity or bool(src.gcps[0])
                dtypes, colours = set(src.dtypes), [c.name for c in src.colorinterp]
                count = src.count
    except (rasterio.errors.RasterioError, OSError):
        return RASTER
    if georeferenced:
        return RASTER
    if dtypes == {"uint8"} and count <= 4:
        return PHOTO
    if dtypes == {"uint16"} and count in (3, 4) and colours[:3] == ["red", "green", "blue"]:
        return PHOTO
    return RASTER


def _hidden(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def folder_files(folder) -> dict[str, list[Path]]:
    """``{"photo": [...], "raster": [...]}``: the files below ``folder`` by kind, each list sorted by path.

    Hidden files and folders and files of neither kind are left out; symbolic links to
    files are followed, links to folders are not (as ``Path.rglob``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a folder of photos or rasters")
    found = {kind: [] for kind in KINDS}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not _hidden(path, folder):
            kind = file_kind(path)
            if kind is not None:
                found[kind].append(path)
    return found


def kind_of(found: dict[str, list[Path]]) -> str | None:
    """The kind of the files ``found`` (``folder_files``): photo, raster, ``"mixed"`` for both, None for none."""
    kinds = [kind for kind in KINDS if found[kind]]
    return kinds[0] if len(kinds) == 1 else (MIXED if kinds else None)


def examples(paths, folder=None, count: int = 2) -> str:
    """``a.png, b.jpg and 3 more``: the first ``count`` names (relative to ``folder`` when given)."""
    names = [str(Path(p).relative_to(folder)) if folder is not None else Path(p).name for p in paths[:count]]
    more = len(paths) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def mixed_folder_error(folder, found: dict[str, list[Path]], fix: str) -> UserError:
    """One line for a folder that holds several kinds (``found``: kind -> files): two files of each, then ``fix``."""
    held = " and ".join(f"{len(paths)} {kind}(s) ({examples(paths, folder)})" for kind, paths in found.items() if paths)
    return UserError(f"{folder}: holds {held}; {fix}")
