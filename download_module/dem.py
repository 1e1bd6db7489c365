"""The embedded raster default: the two DEMs that matplotlib ships in its wheel (no network).

- ``jacksboro_fault_dem.npz``: 344x403 int16 elevations in metres, 3 arc-second cells
  (about 92 m north-south, 74 m east-west at 36.6 N), Jacksboro fault, Tennessee;
- ``topobathy.npz``: 91x120 float32 topography and bathymetry in metres, 2 arc-minute
  cells (about 2.4 km), the coast of British Columbia and Washington.

Each is copied once into ``<out>/raw/dem/`` (so that the data set does not change
with the installed matplotlib) and read by ``util.io.rasters.read_raster``, which knows
both layouts. They are split in space like any raster (download_module/raster_pairs.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import util
from download_module.raster_pairs import RasterFile, SourceRasters

NAME = "dem"
FILES = ("jacksboro_fault_dem.npz", "topobathy.npz")


def _copied(folder: Path, name: str) -> RasterFile:
    from matplotlib import cbook

    path = folder / name
    if not path.exists():
        try:
            sample = Path(cbook.get_sample_data(name, asfileobj=False))
        except (OSError, ValueError) as err:
            raise util.UserError(f"matplotlib's sample data has no {name} ({err}); reinstall matplotlib") from None
        with util.atomic_path(path) as tmp:
            shutil.copyfile(sample, tmp)
    return RasterFile(path, name)


def find_rasters(out: Path, url: str | None = None) -> SourceRasters:
    if url:
        raise util.UserError("--url does not apply to the dem source (it needs no download); drop --url")
    folder = Path(out) / "raw" / NAME
    return SourceRasters(
        [_copied(folder, name) for name in FILES],
        origin="matplotlib sample data (matplotlib.cbook.get_sample_data)",
    )
