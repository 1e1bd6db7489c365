"""Hostile raster files: what the readers of util/io/rasters.py make of them, through enhance.py and evaluate.py.

Each input is either read right (axes, coordinates, units, scale/offset as the file says) or
refused in one line that names the file; a cell size the file cannot say is never made up.
"""

import json
import re
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

import enhance
import evaluate
import util
from util.io.rasters import read_raster

REPO = Path(__file__).resolve().parents[1]
DEM_X2 = REPO / "assets" / "models" / "dem_x2.keras"
UTM = CRS.from_epsg(32613)
UTM_CELLS = Affine(10.0, 0.0, 480000.0, 0.0, -10.0, 4430000.0)


def surface(height=24, width=32, base=2000.0) -> np.ndarray:
    """float32 (height, width) smooth terrain in metres: hills on a slope rising by 2 m a row."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (base + 40 * np.sin(cols / 6) + 25 * np.cos(rows / 5) + 2 * rows).astype(np.float32)


def run(capfd, main, *argv) -> tuple[int, str, list[str]]:
    """A script's ``main`` in this process: (exit code, stdout, lines on stderr)."""
    capfd.readouterr()
    code = util.run_cli(main, [str(a) for a in argv])
    captured = capfd.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def assert_one_line_error(code: int, lines: list[str], named: str) -> None:
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and named in lines[0], lines


def evaluate_json(capfd, tmp_path, source: Path, *extra) -> tuple[dict, str]:
    """evaluate.py --model bicubic --scale 2 on one raster: (its JSON, stdout)."""
    code, out, err = run(
        capfd, evaluate.main, "--model", "bicubic", "--scale", 2, "--data", source, "--out", tmp_path, *extra
    )
    assert code == 0, err
    return json.loads((tmp_path / f"eval_{source.stem}_sr2.json").read_text()), out


def enhance_x2(capfd, source: Path) -> Path:
    """enhance.py with the shipped DEM x2 model; the output beside the input."""
    code, _, err = run(capfd, enhance.main, source, "--model", DEM_X2, "--quiet")
    assert code == 0, err
    return source.with_name(f"{source.stem}_x2{source.suffix}")


def lined_up(output: xr.DataArray, source: xr.DataArray) -> float:
    """The largest difference between ``output`` and ``source`` interpolated at ``output``'s coordinates (interior)."""
    reference = source.interp({d: output[d] for d in source.dims}, method="linear")
    difference = (output - reference).isel({d: slice(4, -4) for d in output.dims})
    return float(np.abs(difference).max())


# ---- The rows -------------------------------------------------------------------------------------


def lon_lat_dataset(heights: np.ndarray, lats: np.ndarray, lons: np.ndarray) -> xr.Dataset:
    """A CF variable ``elevation`` stored with dimensions (lon, lat), as some climate tools write it."""
    return xr.Dataset(
        {"elevation": (("lon", "lat"), heights.T, {"units": "m"})},
        coords={
            "lat": ("lat", lats, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lons, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )


def test_netcdf_lon_lat_is_transposed_to_rows_of_latitude_and_keeps_its_crs(tmp_path, capfd):
    heights = surface()  # row 0: the southern row, as the ascending latitudes
    lats, lons = 40.0 + 0.001 * np.arange(24), -105.0 + 0.001 * np.arange(32)
    source = tmp_path / "lonlat.nc"
    lon_lat_dataset(heights, lats, lons).to_netcdf(source)
    raster = read_raster(source)
    assert raster.values.shape == (24, 32) and raster.crs == CRS.from_epsg(4326)
    np.testing.assert_array_equal(raster.values, heights[::-1])  # north up
    assert raster.transform.almost_equals(Affine(0.001, 0, -105.0005, 0, -0.001, 40.0235), precision=1e-9)

    with xr.open_dataset(enhance_x2(capfd, source)) as out:
        assert out["elevation"].dims == ("lat", "lon") and out["lat"].attrs["units"] == "degrees_north"
        assert out["lon"].attrs["units"] == "degrees_east" and "crs" in out.variables
        assert lined_up(out["elevation"], xr.DataArray(heights, {"lat": lats, "lon": lons}, ("lat", "lon"))) < 3.0

    result, _ = evaluate_json(capfd, tmp_path, source)
    np.testing.assert_allclose(result["rasters"][0]["cell_m"], [111.0, 85.3], rtol=0.01)  # metres, not 0.001
    assert "slope_left_out" not in result["rasters"][0]


def test_netcdf_across_longitude_0_360_is_unwrapped_and_written_with_coordinates(tmp_path, capfd):
    heights = surface(16, 21)
    lats, lons = 50.0 - 0.002 * np.arange(16), (359.98 + 0.002 * np.arange(21)) % 360  # 359.98 .. 0.02
    source = tmp_path / "wrap.nc"
    xr.Dataset(
        {"elevation": (("lat", "lon"), heights, {"units": "m"})},
        coords={"lat": ("lat", lats, {"units": "degrees_north"}), "lon": ("lon", lons, {"units": "degrees_east"})},
    ).to_netcdf(source)
    raster = read_raster(source)
    assert raster.transform.almost_equals(Affine(0.002, 0, -0.021, 0, -0.002, 50.001), precision=1e-9)

    with xr.open_dataset(enhance_x2(capfd, source)) as out:
        lon = out["lon"].values
        assert out["lon"].attrs["units"] == "degrees_east" and len(lon) == 42 and (np.diff(lon) > 0).all()
        np.testing.assert_allclose(lon[[0, -1]], [-0.0205, 0.0205], atol=1e-9)
        unwrapped = xr.DataArray(heights, {"lat": lats, "lon": lons - 360 * (lons > 180)}, ("lat", "lon"))
        assert lined_up(out["elevation"], unwrapped) < 3.0

    result, _ = evaluate_json(capfd, tmp_path, source)
    np.testing.assert_allclose(result["rasters"][0]["cell_m"], [222.5, 143.1], rtol=0.01)


def test_int16_geotiff_with_scale_and_offset_is_read_and_written_in_physical_units(tmp_path, capfd):
    heights = surface(base=2640.0)
    heights[3, 4] = np.nan
    stored = np.where(np.isfinite(heights), np.round((heights - 2000.0) / 0.1), -32768).astype(np.int16)
    source = tmp_path / "packed.tif"
    profile = dict(driver="GTiff", height=24, width=32, count=1, dtype="int16", nodata=-32768)
    with rasterio.open(source, "w", crs=UTM, transform=UTM_CELLS, **profile) as dst:
        dst.write(stored, 1)
        dst.scales, dst.offsets = (0.1,), (2000.0,)
    raster = read_raster(source)
    np.testing.assert_allclose(raster.values, heights, atol=0.051, equal_nan=True)  # 0.1 m steps, not 10x the relief

    out = enhance_x2(capfd, source)
    with rasterio.open(out) as dst:
        assert dst.dtypes == ("float32",) and dst.scales == (1.0,) and dst.offsets == (0.0,)  # no packing left behind
        values = dst.read(1, masked=True)
    assert abs(float(values.mean()) - float(np.nanmean(heights))) < 1.0
    assert np.isnan(read_raster(out).values[6:8, 8:10]).all()  # the nodata cell stays nodata


ASCII_BODY = "\n".join(" ".join(f"{v:.2f}" for v in row) for row in surface(40, 5)) + "\n"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("ncols 5\nnrows 4O\nxllcorner abc\nyllcorner 0\ncellsize \n", "header line 'nrows 4O' needs one number"),
        ("ncols 5\nnrows 40\nxllcorner abc\nyllcorner 0\ncellsize 10\n", "'xllcorner abc' needs one number"),
        ("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize\n", "'cellsize' needs one number"),
        ("ncols 5\nnrows 4\nxllcorner 0\nyllcorner 0\ncellsize 10\n", "holds 200 values but its header says"),
        ("ncols 5\nnrows 50\nxllcorner 0\nyllcorner 0\ncellsize 10\n", "= 250; the file is cut short"),
        ("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize 0\n", "cellsize 0: give a cell size above 0"),
        ("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize -10\n", "cellsize -10: give a cell size above 0"),
        ("ncols 5\nnrows 40.5\nxllcorner 0\nyllcorner 0\ncellsize 10\n", "nrows 40.5: give a whole number"),
        ("ncols 5\nnrows 40\nyllcorner 0\ncellsize 10\n", "no xllcorner (or xllcenter) line"),
        ("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\n", "no cellsize line"),
        ("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize 10\nNODATA_value\n", "'NODATA_value' needs one"),
        ("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize 10\nnodata -9999\n", "is not an ESRI ASCII header"),
    ],
)
def test_ascii_grid_with_a_broken_header_is_refused_in_one_line(tmp_path, capfd, header, message):
    """GDAL reads every one of these with no error (4 of 40 rows, cell size from the first value, nodata 0 ...)."""
    source = tmp_path / "broken.asc"
    source.write_text(header + ASCII_BODY)
    code, _, lines = run(capfd, enhance.main, source, "--model", DEM_X2, "--quiet")
    assert_one_line_error(code, lines, "broken.asc: ")
    assert message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.asc"]


def test_ascii_grid_with_a_word_among_its_values_is_refused(tmp_path):
    source = tmp_path / "word.asc"
    lines = ASCII_BODY.splitlines()
    lines[2] = lines[2].replace(" ", " abc ", 1)  # a word in the third row of values (line 8)
    source.write_text("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize 10\n" + "\n".join(lines) + "\n")
    with pytest.raises(util.UserError, match=r"word\.asc: line 8 holds 'abc', not a number"):
        read_raster(source)


def test_ascii_grids_in_every_layout_gdal_writes_are_still_read(tmp_path):
    """Header keys in any case and order, xllcenter, dx/dy, NODATA_value nan, and GRASS ASCII left to GDAL."""
    body = ASCII_BODY
    layouts = {
        "upper.asc": "NCOLS 5\nNROWS 40\nXLLCORNER 0\nYLLCORNER 0\nCELLSIZE 10\nNODATA_VALUE -9999\n",
        "centre.asc": "ncols 5\nnrows 40\nxllcenter 5\nyllcenter 5\ncellsize 10\n",
        "dxdy.asc": "ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ndx 10\ndy 10\nNODATA_value nan\n",
        "grass.asc": "north: 400\nsouth: 0\neast: 50\nwest: 0\nrows: 40\ncols: 5\n",
    }
    for name, header in layouts.items():
        (tmp_path / name).write_text(header + body)
        raster = read_raster(tmp_path / name)
        assert raster.values.shape == (40, 5) and raster.cell_size_m() == (10.0, 10.0), name
        np.testing.assert_allclose(raster.values, surface(40, 5), atol=0.006)


def test_unknown_cell_size_leaves_the_slope_out_with_the_reason_or_takes_cell_size(tmp_path, capfd):
    np.save(tmp_path / "grid.npy", surface())
    result, out = evaluate_json(capfd, tmp_path, tmp_path / "grid.npy")
    row = result["rasters"][0]
    assert row["cell_m"] is None and "give --cell-size METRES" in row["slope_left_out"]
    assert np.isnan(result["pooled"]["bicubic"]["slope_rmse"]) and result["pooled"]["bicubic"]["rmse"] > 0
    assert "slope RMSE left out for" in out and "a .npy array has no coordinates" in out

    result, _ = evaluate_json(capfd, tmp_path, tmp_path / "grid.npy", "--cell-size", 10)
    assert result["rasters"][0]["cell_m"] == [10.0, 10.0] and np.isfinite(result["pooled"]["bicubic"]["slope_rmse"])

    with netCDF4.Dataset(tmp_path / "plain.nc", "w") as nc:  # coordinates without units, no CRS
        for name, size in (("y", 24), ("x", 32)):
            nc.createDimension(name, size)
            nc.createVariable(name, "f8", (name,))[:] = 0.01 * np.arange(size)
        nc.createVariable("z", "f4", ("y", "x"))[:] = surface()
    result, _ = evaluate_json(capfd, tmp_path, tmp_path / "plain.nc")
    assert "coordinates y, x have no length unit" in result["rasters"][0]["slope_left_out"]

    tif = tmp_path / "utm.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=24, width=32, count=1, dtype="float32", crs=UTM,
                       transform=UTM_CELLS) as dst:  # fmt: skip
        dst.write(surface(), 1)
    code, _, lines = run(capfd, evaluate.main, "--model", "bicubic", "--scale", 2, "--data", tif, "--cell-size", 30)
    assert_one_line_error(code, lines, "utm.tif: its georeferencing gives cells of 10 x 10 m, not the --cell-size 30")
    result, _ = evaluate_json(capfd, tmp_path, tif, "--cell-size", 10)  # agreeing is fine
    assert result["rasters"][0]["cell_m"] == [10.0, 10.0]


def test_netcdf_coordinates_in_kilometres_give_cells_in_metres(tmp_path):
    with netCDF4.Dataset(tmp_path / "km.nc", "w") as nc:
        for name, size in (("y", 24), ("x", 32)):
            nc.createDimension(name, size)
            var = nc.createVariable(name, "f8", (name,))
            var[:] = 4000.0 - 0.5 * np.arange(size) if name == "y" else 480.0 + 0.5 * np.arange(size)
            var.units = "km"
        nc.createVariable("z", "f4", ("y", "x"))[:] = surface()
    raster = read_raster(tmp_path / "km.nc")
    assert raster.cell_size_m() == (500.0, 500.0) and not raster.cell_unknown
    assert raster.transform.almost_equals(Affine(500, 0, 479750, 0, -500, 4000250), precision=1e-6)


def test_complex_npy_is_refused_in_one_line(tmp_path, capfd):
    np.save(tmp_path / "complex.npy", surface().astype(np.complex64) * (1 + 1j))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw ComplexWarning either
        code, _, lines = run(capfd, enhance.main, tmp_path / "complex.npy", "--model", DEM_X2, "--quiet")
    assert_one_line_error(code, lines, "complex.npy: a complex64 (complex) array; give real values")


# ---- More hostile inputs ----------------------------------------------------------------------------------


def grid_nc(path: Path, heights: np.ndarray, coords: dict, dims=("lat", "lon")) -> Path:
    xr.Dataset({"z": (dims, heights)}, coords=coords).to_netcdf(path)
    return path


LATS, LONS = 40.0 + 0.001 * np.arange(24), -105.0 + 0.001 * np.arange(32)
NORTH_UP_WEST_FIRST = Affine(0.001, 0, -105.0005, 0, -0.001, 40.0235)


def test_netcdf_with_descending_longitudes_or_a_time_axis_of_one_is_read_west_to_east(tmp_path):
    heights = surface()
    time = {"time": [np.datetime64("2020-01-01")], "lat": LATS, "lon": LONS}
    degrees = {"lat": ("lat", LATS, {"units": "degrees"}), "lon": ("lon", LONS, {"units": "degrees"})}
    for name, data, dims, coords in (
        ("east_first.nc", heights[:, ::-1], ("lat", "lon"), {"lat": LATS, "lon": LONS[::-1]}),
        ("time1.nc", heights[None], ("time", "lat", "lon"), time),
        ("axes.nc", heights.T, ("a", "b"), {"a": ("a", LONS, {"axis": "X"}), "b": ("b", LATS, {"axis": "Y"})}),
        ("degrees.nc", heights, ("lat", "lon"), degrees),
    ):
        raster = read_raster(grid_nc(tmp_path / name, data, coords, dims))
        assert raster.transform.almost_equals(NORTH_UP_WEST_FIRST, precision=1e-9), name
        np.testing.assert_array_equal(raster.values, heights[::-1], err_msg=name)
        assert raster.crs == (None if name == "axes.nc" else CRS.from_epsg(4326)), name


def test_npz_with_descending_longitudes_is_read_west_to_east_with_known_cells(tmp_path):
    np.savez(tmp_path / "topo.npz", topo=surface(), latitude=LATS, longitude=LONS[::-1])
    raster = read_raster(tmp_path / "topo.npz")
    np.testing.assert_array_equal(raster.values, surface()[::-1, ::-1])
    assert raster.transform.almost_equals(NORTH_UP_WEST_FIRST, precision=1e-9) and not raster.cell_unknown


@pytest.mark.parametrize(
    ("name", "lats", "lons", "message"),
    [
        ("shuffled.nc", LATS, LONS[[0, 1, 2, 4, 3, *range(5, 32)]], "coordinates lat, lon of z are not evenly spaced"),
        ("repeated.nc", LATS, np.r_[LONS[:5], LONS[4:31]], "not evenly spaced; the suite reads regular grids"),
        ("polar.nc", 80.0 + np.arange(24), LONS, "latitudes 80 to 103 go beyond +-90; fix lat"),
    ],
)
def test_netcdf_coordinates_that_no_transform_describes_are_refused(tmp_path, name, lats, lons, message):
    """Read before as a grid without coordinates: the output lost its georeferencing without a word."""
    with pytest.raises(util.UserError, match=re.escape(message)):
        read_raster(grid_nc(tmp_path / name, surface(), {"lat": lats, "lon": lons}))


def test_netcdf_whose_axes_or_values_cannot_be_told_apart_is_refused(tmp_path):
    coords = {"a": ("a", np.arange(24.0), {"axis": "X"}), "b": ("b", np.arange(32.0), {"axis": "X"})}
    with pytest.raises(util.UserError, match=r"cannot tell the x and y axes of z \(a: X, b: X\)"):
        read_raster(grid_nc(tmp_path / "two_x.nc", surface(), coords, ("a", "b")))
    with pytest.raises(util.UserError, match=r"words\.nc: z holds <U1 values; give a variable of numbers"):
        read_raster(grid_nc(tmp_path / "words.nc", np.full((24, 32), "a"), {"lat": LATS, "lon": LONS}))


def test_geotiff_scale_and_offset_beyond_float32_are_refused(tmp_path):
    source = tmp_path / "overflow.tif"
    profile = dict(driver="GTiff", height=8, width=8, count=1, dtype="int16", crs=UTM, transform=UTM_CELLS)
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(np.full((8, 8), 32000, np.int16), 1)
        dst.scales, dst.offsets = (1e36,), (1e38,)
    with pytest.raises(util.UserError, match=r"overflow\.tif: band scale 1e\+36 / offset 1e\+38 take values beyond"):
        read_raster(source)  # every cell was read as nodata, with a raw RuntimeWarning


def test_nodata_value_beyond_float32_masks_nothing_and_warns_nothing(tmp_path, capfd):
    source = tmp_path / "huge.asc"
    source.write_text("ncols 5\nnrows 40\nxllcorner 0\nyllcorner 0\ncellsize 10\nNODATA_value 1e40\n" + ASCII_BODY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raster = read_raster(source)
        assert raster.nodata is None and np.isfinite(raster.values).all()  # the output declares NaN instead
        assert np.isnan(read_raster(source, nodata=1e40).values).sum() == 0


def test_truncated_npz_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "whole.npz", z=surface())
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # numpy leaves the file to the garbage collector
        with pytest.raises(util.UserError, match=r"cut\.npz: not a readable NumPy file \(File is not a zip file\)"):
            read_raster(tmp_path / "cut.npz")


def test_netcdf_grids_of_one_row_are_refused_by_their_shape_and_curvilinear_grids_say_why_cells_are_unknown(tmp_path):
    source = grid_nc(tmp_path / "row.nc", surface(1, 32), {"lat": LATS[:1], "lon": LONS})
    with pytest.raises(util.UserError, match=r"row\.nc: no grid of at least 2 x 2 cells \(z is 1x32\)"):
        read_raster(source)  # it said "0 gridded variables (none); give --variable NAME"
    with pytest.raises(util.UserError, match=r"row\.nc: z is 1x32; the suite reads grids of at least 2 x 2 cells"):
        read_raster(source, variable="z")
    lats, lons = np.meshgrid(LATS, LONS, indexing="ij")
    coords = {
        "lat": (("y", "x"), lats, {"units": "degrees_north"}),
        "lon": (("y", "x"), lons, {"units": "degrees_east"}),
    }
    raster = read_raster(grid_nc(tmp_path / "curvilinear.nc", surface(), coords, ("y", "x")))
    assert raster.transform is None and "2-D latitude/longitude make a curvilinear grid" in raster.cell_unknown


def test_netcdf_values_outside_the_valid_range_are_nodata(tmp_path):
    """CF: values outside valid_min/valid_max/valid_range (stored units when packed) are missing; xarray keeps them."""
    heights = surface()
    heights[0, :5] = 32767.0
    attrs = {"valid_min": -500.0, "valid_max": 9000.0}
    source = tmp_path / "valid.nc"
    xr.Dataset({"z": (("lat", "lon"), heights, attrs)}, coords={"lat": LATS, "lon": LONS}).to_netcdf(source)
    values = read_raster(source).values
    assert np.isnan(values[-1, :5]).all() and np.isfinite(values).sum() == heights.size - 5
    with netCDF4.Dataset(tmp_path / "packed.nc", "w") as nc:
        for name, coordinate in (("lat", LATS), ("lon", LONS)):
            nc.createDimension(name, len(coordinate))
            nc.createVariable(name, "f8", (name,))[:] = coordinate
        var = nc.createVariable("z", "i2", ("lat", "lon"))
        var.scale_factor, var.add_offset, var.valid_range = 0.1, 2000.0, np.array([-1000, 1000], np.int16)
        var[:] = np.where(heights > 9000, 2150.0, heights)  # 2083 m is stored as 830, inside; 2150 m as 1500, outside
    values = read_raster(tmp_path / "packed.nc").values
    assert np.isfinite(values).sum() == heights.size - 5 and np.isnan(values[-1, :5]).all()
