"""The embedded climate default: NetCDF stacks that the Met Office ships in iris-sample-data (no network).

- ``A1B_north_america.nc`` (the default): yearly means of the air temperature at 1.5 m in K,
  1860 to 2099 (240 steps, 360-day calendar), of a Met Office Unified Model (6.05) run under
  the SRES A1B scenario, 37 x 49 cells of 1.25 x 1.875 degrees over North America;
- ``E1_north_america.nc``: the same model under the E1 scenario, step for step the same values
  as A1B up to 1999 (the historical forcing), then cooler;
- ``ostia_monthly.nc``: OSTIA monthly mean sea surface temperature in K, April 2006 to
  September 2010 (54 steps), 18 x 432 cells of 0.56 x 0.83 degrees along the equator (5 S to
  5 N, all longitudes); land (26 % of the cells) is nodata.

``--file`` picks them (a file name, its stem or first word: ``A1B``, ``E1``, ``ostia``;
comma-separated), ``--test-file`` holds one out (download_module/stack_pairs.py). Each is
copied once into ``<out>/raw/climate/`` (so that the data set does not change with the
installed package) and split in time like any stack.
Licence: UK Open Government Licence (iris-sample-data, SciTools).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import util
from download_module.raster_pairs import RasterFile, SourceRasters

NAME = "climate"
FILES = ("A1B_north_america.nc", "E1_north_america.nc", "ostia_monthly.nc")
DEFAULT = FILES[0]


def sample_file(name: str) -> str:
    """The file that ``name`` stands for (its name, stem or first word: ``E1``); a UserError for others."""
    for file in FILES:
        if name in (file, Path(file).stem, file.split("_")[0]):
            return file
    raise util.UserError(f"--file {name}: not a climate sample file; give one of {', '.join(FILES)}")


def _copied(folder: Path, name: str) -> RasterFile:
    path = folder / name
    if not path.exists():
        try:
            import iris_sample_data
        except ImportError:
            raise util.UserError(
                "the climate source needs iris-sample-data; pip install iris-sample-data (requirements.txt)"
            ) from None
        sample = Path(iris_sample_data.path) / name
        if not sample.is_file():
            raise util.UserError(f"iris-sample-data has no {name} in {sample.parent}; reinstall iris-sample-data")
        with util.atomic_path(path) as tmp:
            shutil.copyfile(sample, tmp)
    return RasterFile(path, name)


def find_stacks(out: Path, url: str | None = None, files=(), test_files=()) -> SourceRasters:
    """The sample stacks ``files`` (DEFAULT when none) and ``test_files`` (held out), copied into <out>/raw/climate/."""
    if url:
        raise util.UserError("--url does not apply to the climate source (it needs no download); drop --url")
    held_out = [sample_file(name) for name in test_files]
    names = dict.fromkeys([*(sample_file(name) for name in files or [DEFAULT]), *held_out])
    folder = Path(out) / "raw" / NAME
    return SourceRasters(
        [_copied(folder, name) for name in names],
        origin="iris-sample-data (Met Office, UK Open Government Licence)",
        held_out=held_out,
    )
