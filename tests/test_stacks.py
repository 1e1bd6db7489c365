"""util/io/stacks.py: time stacks of NetCDF, GRIB and GeoTIFF files read, streamed and written back as CF NetCDF."""

import logging
from pathlib import Path

import cftime
import netCDF4
import numpy as np
import pytest
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

import util
from util.io import kinds
from util.io.stacks import Stack, StackWriter, is_stack, iter_steps, open_stack, read_stack, write_stack

SAMPLES = Path(pytest.importorskip("iris_sample_data").path)
A1B = SAMPLES / "A1B_north_america.nc"
OSTIA = SAMPLES / "ostia_monthly.nc"
POLAR = SAMPLES / "polar_stereo.grib2"
LONS_360 = 350.25 + 0.5 * np.arange(8)  # 350.25 .. 353.75: a grid stored in 0..360 longitudes
LATS_DOWN = 45.75 - 0.5 * np.arange(6)  # descending: row 0 is the northern row


def field(steps=3, height=6, width=8) -> np.ndarray:
    """float32 (steps, height, width) in kelvin: a warm south, a cool north, warming by 1 K a step."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([280 + 2 * rows + 0.5 * np.sin(cols) + t for t in range(steps)]).astype(np.float32)


def packed_360_day(path: Path, steps=3) -> Path:
    """A 360_day stack as climate models write it: int16 packed with scale/offset, a _FillValue land mask,
    0-360 longitudes, descending latitudes, stored (time, lon, lat)."""
    values = field(steps)
    with netCDF4.Dataset(path, "w") as nc:
        nc.history = "2020-01-01 made by a climate model"
        nc.title = "test stack"
        for name, size in (("time", steps), ("lon", 8), ("lat", 6), ("bnds", 2)):
            nc.createDimension(name, size)
        time = nc.createVariable("time", "f8", ("time",))
        time.units, time.calendar, time.bounds = "days since 2000-01-01", "360_day", "time_bnds"
        time[:] = 15 + 30 * np.arange(steps)
        nc.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = np.stack(
            [30 * np.arange(steps), 30 + 30 * np.arange(steps)], 1
        )
        for name, coords, units in (("lon", LONS_360, "degrees_east"), ("lat", LATS_DOWN, "degrees_north")):
            var = nc.createVariable(name, "f8", (name,))
            var[:], var.units = coords, units
        var = nc.createVariable("tas", "i2", ("time", "lon", "lat"), fill_value=np.int16(-32767))
        var.scale_factor, var.add_offset = 0.01, 280.0
        var.units, var.standard_name, var.long_name = "K", "air_temperature", "Near-surface air temperature"
        var.cell_methods = "time: mean"
        land = np.zeros((6, 8), bool)
        land[:2, :3] = True  # the north-west corner
        var[:] = np.ma.masked_array(values, np.broadcast_to(land, values.shape)).transpose(0, 2, 1)
    return path


def level_stack(path: Path) -> Path:
    """(time, plev, lat, lon) with pressure levels 1000, 850, 500 hPa; standard calendar."""
    values = np.stack([field(2) + 100 * k for k in range(3)], 1)
    xr.Dataset(
        {"ta": (("time", "plev", "lat", "lon"), values, {"units": "K"})},
        coords={
            "time": ("time", [0.0, 6.0], {"units": "hours since 2021-03-01", "calendar": "standard"}),
            "plev": ("plev", [100000.0, 85000.0, 50000.0], {"units": "Pa", "positive": "down", "axis": "Z"}),
            "lat": ("lat", LATS_DOWN, {"units": "degrees_north"}),
            "lon": ("lon", LONS_360 - 360, {"units": "degrees_east"}),
        },
    ).to_netcdf(path)
    return path


def grib2(path: Path, values: np.ndarray, hours=(0, 6), element=(0, 0), transform=None) -> Path:
    """A GRIB2 file of ``len(hours)`` messages written by GDAL's GRIB driver: ``element`` (category, number)
    of discipline 0 (0, 0: TMP; 2, 2: UGRD) at the surface, valid ``hours`` after 2020-01-01T00Z."""
    tif = path.with_suffix(".tif")
    transform = transform or Affine(0.5, 0, 10.0, 0, -0.5, 50.0)
    profile = dict(driver="GTiff", count=len(values), height=values.shape[1], width=values.shape[2])
    with rasterio.open(tif, "w", dtype="float32", crs="EPSG:4326", transform=transform, **profile) as dst:
        dst.write(values.astype(np.float32))
    options = {
        "IDS": "CENTER=98 REF_TIME=2020-01-01T00:00:00Z SIGNF_REF_TIME=1 PROD_STATUS=0 TYPE=1",
        "INPUT_UNIT": "K",
    }
    for band, hour in enumerate(hours, 1):
        options[f"BAND_{band}_PDS_PDTN"] = "0"
        options[f"BAND_{band}_PDS_TEMPLATE_ASSEMBLED_VALUES"] = (
            f"{element[0]} {element[1]} 2 0 0 0 0 1 {hour} 1 0 0 255 0 0"
        )
    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"):
        rasterio.shutil.copy(tif, path, driver="GRIB", **options)
    tif.unlink()
    return path


def one_line_error(call, *named: str) -> str:
    with pytest.raises(util.UserError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(n in message for n in named), message
    return message


# ---- 1. NetCDF ----------------------------------------------------------------------------------------------------


def test_packed_360_day_stack_in_lon_lat_order_is_read_north_up_west_first_with_land_as_nan(tmp_path):
    path = packed_360_day(tmp_path / "tas.nc")
    assert is_stack(path) and kinds.file_kind(path) == kinds.RASTER
    stack = read_stack(path)
    assert stack.values.shape == (3, 6, 8) and stack.values.dtype == np.float32 and len(stack) == 3
    expected = field(3)
    land = np.isnan(stack.values)
    assert land[:, :2, :3].all() and land.sum() == 3 * 6  # the fill value is nodata, in every step
    np.testing.assert_allclose(stack.values[~land], expected[~land], atol=0.006)  # unpacked: 0.01 K steps
    assert stack.calendar == "360_day" and stack.time_units == "days since 2000-01-01"
    assert list(stack.times) == [cftime.Datetime360Day(2000, m, 16) for m in (1, 2, 3)]
    assert stack.transform.almost_equals(Affine(0.5, 0, 350.0, 0, -0.5, 46.0), precision=1e-9)
    assert stack.crs == CRS.from_epsg(4326) and stack.units == "K" and stack.name == "tas"
    np.testing.assert_allclose(stack.lats, LATS_DOWN)
    np.testing.assert_allclose(stack.lons, LONS_360)
    assert stack.attrs["standard_name"] == "air_temperature" and "scale_factor" not in stack.attrs
    assert stack.globals["history"] == "2020-01-01 made by a climate model"
    raster = stack.step(1)
    np.testing.assert_array_equal(raster.values, stack.values[1])
    assert raster.transform == stack.transform and raster.meta["time"] == cftime.Datetime360Day(2000, 2, 16)


def test_steps_are_chosen_by_dates_in_the_files_calendar_or_by_indices(tmp_path):
    path = packed_360_day(tmp_path / "tas.nc")  # 2000-01-16, 02-16, 03-16 in a 360-day calendar
    for steps, months in (
        ("2000-02:", [2, 3]),
        ("2000-01-16:2000-03-16", [1, 2]),  # B excluded
        (":2000-02-16T00:00", [1]),
        ("2000-02-30:2000-03-17", [3]),  # 30 February exists in a 360-day year
        ("1:", [2, 3]),  # indices as before
    ):
        stack = read_stack(path, steps=steps)
        assert [t.month for t in stack.times] == months, steps
    one_line_error(lambda: read_stack(path, steps="2001-01:"), "tas.nc", "selects none of its 3 steps", "2000-01-16")
    one_line_error(lambda: read_stack(path, steps="2000-1:2000-03"), "give dates A:B as YYYY-MM")


def test_written_stack_keeps_times_calendar_bounds_attributes_and_row_order(tmp_path):
    stack = read_stack(packed_360_day(tmp_path / "tas.nc"))
    out = write_stack(tmp_path / "out.nc", stack)
    with netCDF4.Dataset(out) as nc:
        time = nc.variables["time"]
        assert time.units == "days since 2000-01-01" and time.calendar == "360_day"
        np.testing.assert_array_equal(time[:], [15, 45, 75])
        np.testing.assert_array_equal(nc.variables["time_bnds"][:], [[0, 30], [30, 60], [60, 90]])
        np.testing.assert_allclose(nc.variables["lat"][:], LATS_DOWN)  # descending, as the input
        np.testing.assert_allclose(nc.variables["lat_bnds"][0], [46.0, 45.5])
        np.testing.assert_allclose(nc.variables["lon_bnds"][0], [350.0, 350.5])
        var = nc.variables["tas"]
        assert var.dimensions == ("time", "lat", "lon") and var.dtype == np.float32
        assert var.standard_name == "air_temperature" and var.cell_methods == "time: mean" and var.units == "K"
        assert nc.title == "test stack" and nc.history == "2020-01-01 made by a climate model"
    again = read_stack(out)
    np.testing.assert_array_equal(again.values, stack.values)
    assert list(again.times) == list(stack.times) and again.calendar == "360_day"


def test_a_level_is_chosen_by_its_coordinate_value(tmp_path):
    path = level_stack(tmp_path / "ta.nc")
    one_line_error(lambda: read_stack(path), "ta.nc: ta has 3 levels along plev (100000, 85000, 50000); give --level")
    one_line_error(lambda: read_stack(path, level=700), "--level 700 is not a level of plev; give one of")
    stack = read_stack(path, level=85000)
    np.testing.assert_allclose(stack.values, field(2) + 100)
    assert stack.meta["level"]["value"] == 85000.0 and stack.times[1] == cftime.DatetimeGregorian(2021, 3, 1, 6)
    with netCDF4.Dataset(write_stack(tmp_path / "out.nc", stack)) as nc:
        assert nc.variables["ta"].coordinates == "plev" and float(nc.variables["plev"][...]) == 85000.0
        assert nc.variables["plev"].units == "Pa"


def test_steps_select_a_range_and_outside_the_range_is_one_line(tmp_path):
    path = packed_360_day(tmp_path / "tas.nc", steps=5)
    stack = read_stack(path, steps="1:3")
    assert len(stack) == 2 and [t.month for t in stack.times] == [2, 3]
    np.testing.assert_allclose(stack.values, read_stack(path).values[1:3])
    assert len(read_stack(path, steps=slice(-2, None))) == 2 and len(read_stack(path, steps="4")) == 1
    one_line_error(lambda: read_stack(path, steps="3:9"), "tas.nc: --steps 3:9 is outside its 5 steps")
    one_line_error(lambda: read_stack(path, steps="7"), "tas.nc: --steps 7 is outside its 5 steps; give 0 to 4")
    one_line_error(lambda: read_stack(path, steps="3:1"), "--steps 3:1 selects none of its 5 steps")
    one_line_error(lambda: read_stack(path, steps="june"), "--steps june: give step indices A:B")


def test_iter_steps_reads_one_step_at_a_time(tmp_path, monkeypatch):
    path = packed_360_day(tmp_path / "tas.nc")
    stack = open_stack(path)
    assert stack.values is None and stack.shape == (3, 6, 8)
    steps = [raster.values for raster in iter_steps(stack)]
    np.testing.assert_array_equal(np.stack(steps), read_stack(path).values)


def test_bad_netcdf_stacks_are_one_line_errors(tmp_path):
    times = {"time": ("time", [0.0, 2.0, 1.0], {"units": "days since 2000-01-01"})}
    lat, lon = ("lat", LATS_DOWN, {"units": "degrees_north"}), ("lon", LONS_360, {"units": "degrees_east"})
    xr.Dataset({"t": (("time", "lat", "lon"), field())}, coords={**times, "lat": lat, "lon": lon}).to_netcdf(
        tmp_path / "unsorted.nc"
    )
    one_line_error(lambda: read_stack(tmp_path / "unsorted.nc"), "unsorted.nc: time is not increasing", "sortby")
    shuffled = ("lon", LONS_360[[0, 2, 1, 3, 4, 5, 6, 7]], {"units": "degrees_east"})
    xr.Dataset({"t": (("time", "lat", "lon"), field())}, coords={"lat": lat, "lon": shuffled}).to_netcdf(
        tmp_path / "shuffled.nc"
    )
    one_line_error(lambda: read_stack(tmp_path / "shuffled.nc"), "shuffled.nc: the coordinates lat, lon of t are not")
    curvilinear = {
        "lat2d": (("y", "x"), np.broadcast_to(LATS_DOWN[:, None], (6, 8)), {"units": "degrees_north"}),
        "lon2d": (("y", "x"), np.broadcast_to(LONS_360, (6, 8)), {"units": "degrees_east"}),
    }
    xr.Dataset({"t": (("time", "y", "x"), field())}, coords=curvilinear).to_netcdf(tmp_path / "curvilinear.nc")
    one_line_error(lambda: read_stack(tmp_path / "curvilinear.nc"), "curvilinear.nc: t has 2-D latitude/longitude")
    empty = np.full((3, 6, 8), np.nan, np.float32)
    xr.Dataset({"t": (("time", "lat", "lon"), empty)}, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "nan.nc")
    one_line_error(lambda: read_stack(tmp_path / "nan.nc"), "nan.nc: every cell of every selected step is nodata")
    xr.Dataset({"t": (("lat", "lon"), field()[0])}, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "flat.nc")
    assert not is_stack(tmp_path / "flat.nc")
    one_line_error(lambda: read_stack(tmp_path / "flat.nc"), "flat.nc: 0 variables with a time axis (none)")


# ---- 2. GRIB and GeoTIFF ---------------------------------------------------------------------------------------------


def test_a_two_message_grib2_is_a_stack_of_its_valid_times(tmp_path):
    values = field(2)
    values[:, 0, 0] = np.nan
    path = grib2(tmp_path / "tmp.grib2", values, hours=(6, 0))  # stored out of time order
    assert kinds.file_kind(path) == kinds.RASTER and is_stack(path)
    stack = read_stack(path)
    assert stack.name == "TMP" and stack.units == "K" and stack.calendar == "standard"
    assert list(stack.times) == [cftime.DatetimeGregorian(2020, 1, 1, 0), cftime.DatetimeGregorian(2020, 1, 1, 6)]
    np.testing.assert_allclose(stack.values, values[::-1], atol=1e-3)  # sorted by valid time
    assert np.isnan(stack.values[:, 0, 0]).all() and np.isnan(stack.values).sum() == 2
    assert stack.transform == Affine(0.5, 0, 10.0, 0, -0.5, 50.0) and stack.crs == CRS.from_epsg(4326)
    with netCDF4.Dataset(write_stack(tmp_path / "tmp.nc", stack)) as nc:
        assert list(nc.variables["TMP"].dimensions) == ["time", "lat", "lon"]
        time = nc.variables["time"]
        assert list(cftime.num2date(time[:], time.units, time.calendar)) == list(stack.times)


def test_mixed_or_misshapen_grib_files_are_one_line_errors(tmp_path):
    tmp = grib2(tmp_path / "t.grib2", field(1), hours=(0,))
    wind = grib2(tmp_path / "u.grib2", field(2), hours=(0, 6), element=(2, 2))
    mixed = tmp_path / "mixed.grib2"
    mixed.write_bytes(tmp.read_bytes() + wind.read_bytes())
    one_line_error(
        lambda: read_stack(mixed), "mixed.grib2: holds several variables: TMP (1 messages), UGRD (2 messages)"
    )
    assert len(read_stack(mixed, variable="UGRD")) == 2
    small = grib2(tmp_path / "small.grib2", field(1, 4, 5), hours=(6,))
    shapes = tmp_path / "shapes.grib2"
    shapes.write_bytes(tmp.read_bytes() + small.read_bytes())
    one_line_error(lambda: read_stack(shapes), "shapes.grib2: time steps of different shapes", "split the file")
    # GDAL's warning is caught whatever another library did to the root logger (OpenVINO's converter: ERROR).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        one_line_error(lambda: read_stack(shapes), "shapes.grib2: time steps of different shapes")
    finally:
        root.setLevel(level)


def test_the_polar_stereographic_grib2_sample_is_read_in_kelvin_on_its_projection():
    if not POLAR.is_file():
        pytest.skip(f"{POLAR} is absent (iris-sample-data without its GRIB2 file)")
    stack = read_stack(POLAR)
    assert stack.values.shape == (1, 200, 247) and stack.units == "K" and stack.name == "TMP"
    assert 250 < np.nanmin(stack.values) < np.nanmax(stack.values) < 310  # kelvin, not GDAL's default Celsius
    assert stack.crs is not None and not stack.crs.is_geographic and stack.lats is None
    assert stack.times[0] == cftime.DatetimeGregorian(2013, 5, 20, 6)


def test_a_multiband_geotiff_is_a_stack_only_when_its_bands_carry_times(tmp_path):
    profile = dict(driver="GTiff", count=3, height=6, width=8, dtype="float32", crs="EPSG:4326")
    with rasterio.open(tmp_path / "timed.tif", "w", transform=Affine(0.5, 0, 10, 0, -0.5, 50), **profile) as dst:
        dst.write(field(3))
        dst.update_tags(**{"time#units": "days since 2000-01-01", "time#calendar": "noleap"})
        for band in range(1, 4):
            dst.update_tags(band, NETCDF_DIM_time=str(31 * (band - 1)))
    with rasterio.open(tmp_path / "bands.tif", "w", transform=Affine(0.5, 0, 10, 0, -0.5, 50), **profile) as dst:
        dst.write(field(3))
    assert is_stack(tmp_path / "timed.tif") and not is_stack(tmp_path / "bands.tif")
    timed = read_stack(tmp_path / "timed.tif")
    assert timed.calendar == "noleap" and [t.month for t in timed.times] == [1, 2, 3]
    np.testing.assert_array_equal(timed.values, field(3))
    asked = read_stack(tmp_path / "bands.tif", steps="1:")  # a stack when asked, without times
    assert asked.times is None and len(asked) == 2


# ---- 3. The iris sample files ----------------------------------------------------------------------------------------


def test_a1b_is_240_steps_of_a_360_day_calendar_and_round_trips(tmp_path):
    stack = read_stack(A1B)
    assert stack.values.shape == (240, 37, 49) and stack.calendar == "360_day"
    assert stack.times[0] == cftime.Datetime360Day(1860, 6, 1) and stack.units == "K"
    assert stack.lats[0] == 60.0 and stack.lons[0] == 225.0  # north first; 0-360 longitudes kept
    out = write_stack(tmp_path / "a1b.nc", stack)
    with xr.open_dataset(A1B, decode_times=False) as source, xr.open_dataset(out, decode_times=False) as written:
        np.testing.assert_array_equal(written["time"].values, source["time"].values)
        assert written["time"].attrs["calendar"] == "360_day" and written["time"].attrs["units"] == source["time"].units
        np.testing.assert_array_equal(written["air_temperature"].values, source["air_temperature"].values)
        assert written["latitude_longitude"].attrs == source["latitude_longitude"].attrs


def test_ostia_land_stays_nan_through_a_write(tmp_path):
    stack = read_stack(OSTIA)
    land = np.isnan(stack.values)
    assert 0.1 < land.mean() < 0.5 and (land == land[0]).all()  # the same land mask in every month
    again = read_stack(write_stack(tmp_path / "ostia.nc", stack))
    np.testing.assert_array_equal(np.isnan(again.values), land)


# ---- 4. Writing ------------------------------------------------------------------------------------------------------


def test_a_failed_stack_write_leaves_no_file(tmp_path):
    stack = read_stack(packed_360_day(tmp_path / "tas.nc"))
    with pytest.raises(RuntimeError), StackWriter(tmp_path / "out.nc", stack, 6, 8) as writer:
        writer.write(stack.values[0], 0)
        raise RuntimeError("the disk filled up")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tas.nc"]
    one_line_error(lambda: StackWriter(tmp_path / "out.tif", stack, 6, 8), "out.tif: a stack is written as NetCDF")


def test_stack_writer_places_rows_at_the_finer_spacing(tmp_path):
    stack = open_stack(packed_360_day(tmp_path / "tas.nc"))
    assert isinstance(stack, Stack)
    with StackWriter(tmp_path / "x2.nc", stack, 12, 16, scale=2) as writer:
        for i in range(len(stack)):
            writer.write(np.full((12, 16), float(i), np.float32), i)
    with netCDF4.Dataset(tmp_path / "x2.nc") as nc:
        np.testing.assert_allclose(np.diff(nc.variables["lat"][:]), -0.25)
        np.testing.assert_allclose(np.diff(nc.variables["lon"][:]), 0.25)
        np.testing.assert_allclose(nc.variables["lat_bnds"][0], [46.0, 45.75])
        assert nc.variables["tas"][2].min() == 2.0


# ---- 5. enhance.py on stacks ----------------------------------------------------------------------------------------

DEM_X2 = Path(__file__).resolve().parents[1] / "assets" / "models" / "dem_x2.keras"  # any one-band grid in units


def enhance(capfd, *argv) -> tuple[int, list[str], list[str]]:
    """enhance.py in this process: (exit code, stdout lines, stderr lines)."""
    import enhance as script

    capfd.readouterr()
    code = util.run_cli(script.main, [str(a) for a in argv] + ["--model", str(DEM_X2), "--quiet"])
    captured = capfd.readouterr()
    return code, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def test_enhance_a1b_keeps_its_360_day_times_and_attributes_at_half_the_spacing(tmp_path, capfd):
    source = tmp_path / A1B.name
    source.write_bytes(A1B.read_bytes())
    code, out, err = enhance(capfd, source)
    target = tmp_path / "A1B_north_america_x2.nc"
    assert code == 0 and not err and out == [f"{source} -> {target} (x2, float32, {out[0].split('float32, ')[1]}"]
    with xr.open_dataset(A1B, decode_times=False) as lr, xr.open_dataset(target, decode_times=False) as hr:
        np.testing.assert_array_equal(hr["time"].values, lr["time"].values)
        assert hr["time"].attrs["calendar"] == "360_day" and hr["time"].attrs["units"] == lr["time"].attrs["units"]
        for dim in ("latitude", "longitude"):
            np.testing.assert_allclose(np.diff(hr[dim].values), np.diff(lr[dim].values)[0] / 2)
            bounds = hr[f"{dim}_bnds"].values
            np.testing.assert_allclose(bounds.mean(axis=1), hr[dim].values)
            np.testing.assert_allclose(bounds[1:, 0], bounds[:-1, 1])
        assert hr["latitude"].values[0] == lr["latitude"].values[0] - 1.25 / 4  # the LR cell split in two
        var = hr["air_temperature"]
        assert var.shape == (240, 74, 98) and var.dtype == np.float32
        for key in ("standard_name", "units", "cell_methods", "grid_mapping"):
            assert var.attrs[key] == lr["air_temperature"].attrs[key], key
        assert hr["latitude_longitude"].attrs == lr["latitude_longitude"].attrs
        assert "A1B_north_america.nc enhanced by dem_x2.keras" in hr.attrs["history"].splitlines()[-1]
        np.testing.assert_allclose(var.values[5, ::2, ::2].mean(), lr["air_temperature"].values[5].mean(), atol=0.5)


def test_enhance_ostia_steps_keeps_land_nan_and_a_grib_becomes_netcdf(tmp_path, capfd):
    source = tmp_path / OSTIA.name
    source.write_bytes(OSTIA.read_bytes())
    grib = grib2(tmp_path / "t2m.grib2", field(3), hours=(0, 6, 12))
    code, out, err = enhance(capfd, source, grib, "--steps", "1:3")
    assert code == 0 and not err, err
    assert out[1].startswith(f"{grib} -> {tmp_path / 't2m_x2.nc'} (x2, float32") and "a stack as NetCDF" in out[1]
    lr = read_stack(OSTIA, steps="1:3")
    hr = read_stack(tmp_path / "ostia_monthly_x2.nc")
    assert len(hr) == 2 and list(hr.times) == list(lr.times)
    land = np.repeat(np.repeat(np.isnan(lr.values), 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(np.isnan(hr.values), land)
    assert [t.hour for t in read_stack(tmp_path / "t2m_x2.nc").times] == [6, 12]  # its steps 1 and 2
    code, out, err = enhance(capfd, source, "--steps", "1:3")
    assert code == 1 and err == [
        f"error: {tmp_path / 'ostia_monthly_x2.nc'}: exists; give --overwrite to replace it or --skip-existing"
    ]


def test_enhance_a4d_variable_takes_level_and_refuses_band(tmp_path, capfd):
    path = level_stack(tmp_path / "ta.nc")
    code, _, err = enhance(capfd, path)
    assert code == 1 and len(err) == 1 and "ta.nc: ta has 3 levels along plev" in err[0] and "give --level" in err[0]
    code, _, err = enhance(capfd, path, "--band", "2")
    assert code == 1 and err == [
        "error: --band 2: ta.nc are time stacks, enhanced step by step; drop --band (give --steps A:B to choose steps)"
    ]
    code, _, err = enhance(capfd, path, "--level", "85000", "--out", tmp_path / "ta_850.tif")
    assert code == 1 and err == [
        f"error: --out {tmp_path / 'ta_850.tif'}: give the suffix .nc (a stack is written as NetCDF)"
    ]
    code, _, err = enhance(capfd, path, "--level", "85000", "--out", tmp_path / "ta_850.nc")
    assert code == 0 and not err
    with netCDF4.Dataset(tmp_path / "ta_850.nc") as nc:
        assert nc.variables["ta"].shape == (2, 12, 16) and float(nc.variables["plev"][...]) == 85000.0


def test_an_all_nodata_stack_is_one_line_and_leaves_no_file(tmp_path, capfd):
    lat, lon = ("lat", LATS_DOWN, {"units": "degrees_north"}), ("lon", LONS_360, {"units": "degrees_east"})
    empty = np.full((3, 6, 8), np.nan, np.float32)
    xr.Dataset({"t": (("time", "lat", "lon"), empty)}, coords={"lat": lat, "lon": lon}).to_netcdf(tmp_path / "nan.nc")
    code, _, err = enhance(capfd, tmp_path / "nan.nc")
    assert code == 1 and err == [
        f"error: {tmp_path / 'nan.nc'}: every cell of every selected step is nodata; nothing to enhance (check --steps)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.nc"]


def test_enhancing_a_stack_holds_one_step_in_memory_whatever_the_number_of_steps(tmp_path):
    import tracemalloc

    from util.inference.raster_enhance import enhance_stack_file
    from util.models.loading import load_model

    model, info = load_model(DEM_X2)
    peaks = []
    for steps in (4, 32):
        values = np.stack([field(1, 96, 128)[0] + k for k in range(steps)])
        source = tmp_path / f"s{steps}.nc"
        xr.Dataset({"t": (("time", "y", "x"), values)}).to_netcdf(source)
        tracemalloc.start()
        enhance_stack_file(source, model, info, tmp_path / f"s{steps}_x2.nc", progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    step_out = 96 * 128 * 4 * 4  # one enhanced step in bytes: 196 kB; 32 steps would be 6.3 MB
    assert peaks[1] < peaks[0] + 4 * step_out, peaks


def test_a_rotated_pole_stack_keeps_its_grid_coordinates_and_a_time_series_is_no_stack(tmp_path):
    rotated = {"grid_mapping_name": "rotated_latitude_longitude", "grid_north_pole_latitude": 37.5}
    rotated["grid_north_pole_longitude"] = 177.5
    coords = {
        "rlat": ("rlat", -2.0 + 0.5 * np.arange(6), {"units": "degrees", "standard_name": "grid_latitude"}),
        "rlon": ("rlon", 10.0 + 0.5 * np.arange(8), {"units": "degrees", "standard_name": "grid_longitude"}),
        "time": ("time", [0.0, 1.0, 2.0], {"units": "days since 2000-01-01", "calendar": "noleap"}),
    }
    data = {"pr": (("time", "rlat", "rlon"), field(), {"units": "kg m-2 s-1", "grid_mapping": "rotated_pole"})}
    xr.Dataset({**data, "rotated_pole": ((), 0, rotated)}, coords=coords).to_netcdf(tmp_path / "rotated.nc")
    stack = read_stack(tmp_path / "rotated.nc")
    assert stack.crs is None and stack.lats is None and stack.calendar == "noleap"
    with netCDF4.Dataset(write_stack(tmp_path / "out.nc", stack, scale=1)) as nc:
        rlat = nc.variables["rlat"]
        assert rlat.units == "degrees" and rlat.standard_name == "grid_latitude"
        np.testing.assert_allclose(rlat[:], -2.0 + 0.5 * np.arange(6))  # ascending, as the input
        assert nc.variables["pr"].grid_mapping == "rotated_pole"
        assert nc.variables["rotated_pole"].grid_north_pole_latitude == 37.5
    series = {"time": ("time", [0.0, 1.0], {"units": "days since 2000-01-01"}), "lat": [45.0], "lon": [7.0]}
    xr.Dataset({"w": (("time", "lat", "lon"), np.ones((2, 1, 1)))}, coords=series).to_netcdf(tmp_path / "series.nc")
    assert not is_stack(tmp_path / "series.nc")  # one point in time, as iris' vlstr_type.nc
