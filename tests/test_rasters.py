"""util/io/rasters.py and raster enhancement: every format round trips with its georeferencing, nodata, bad input."""

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

import enhance
import util
from util.data.resize import bicubic_upscale
from util.inference.raster_enhance import enhance_raster_file
from util.io.rasters import Raster, fill_nodata, read_raster, warn_suspected_nodata, write_raster

REPO = Path(__file__).resolve().parents[1]
UTM = CRS.from_epsg(32613)
UTM_CELLS = Affine(10.0, 0.0, 480000.0, 0.0, -10.0, 4430000.0)  # 10 m cells, north-up
MOON = (
    'GEOGCS["Moon 2000",DATUM["D_Moon_2000",SPHEROID["Moon_2000_IAU_IAG",1737400.0,0.0]],'
    'PRIMEM["Greenwich",0],UNIT["Decimal_Degree",0.0174532925199433]]'
)
MOON_RADIUS = 1737400.0
INNER = np.s_[8:-8, 8:-8]  # the untrained EDSR upsamples by tf.image bicubic, which differs from MATLAB's at the border


@pytest.fixture(scope="module")
def sr2(tmp_path_factory):
    """The untrained raster EDSR x2 (bicubic-like, in metres): (model, info, saved .keras path)."""
    import keras

    import edsr_lite
    from util.models.layers import model_info, raster_model

    model = raster_model(edsr_lite.build_model("sr2", channels=1), value_scale=100.0)
    path = tmp_path_factory.mktemp("models") / "dem_x2.keras"
    keras.saving.save_model(model, path)
    return model, model_info(model), path


def surface(height=40, width=48, base=2000.0) -> np.ndarray:
    """float32 (height, width) smooth terrain in metres: hills on a slope rising to the south."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (base + 40 * np.sin(cols / 6) + 25 * np.cos(rows / 5) + 2 * rows).astype(np.float32)


def write_tif(path, bands, crs=UTM, transform=UTM_CELLS, nodata=None, dtype="float32") -> Path:
    """A GeoTIFF of ``bands`` ((H, W) or (count, H, W)) as GDAL writes it."""
    bands = np.asarray(bands)
    bands = bands if bands.ndim == 3 else bands[None]
    profile = dict(driver="GTiff", count=len(bands), height=bands.shape[1], width=bands.shape[2], dtype=dtype)
    with rasterio.open(path, "w", crs=crs, transform=transform, nodata=nodata, **profile) as dst:
        dst.write(bands.astype(dtype))
    return Path(path)


def write_asc(path, values: np.ndarray, nodata=None, cellsize=10.0) -> Path:
    """An ESRI ASCII grid as field instruments write it, with a NODATA_value line only when ``nodata`` is given."""
    header = [f"ncols {values.shape[1]}", f"nrows {values.shape[0]}", "xllcorner 0.0", "yllcorner 0.0"]
    header += [f"cellsize {cellsize}"] + ([f"NODATA_value {nodata:g}"] if nodata is not None else [])
    rows = [" ".join(f"{v:.4f}" for v in row) for row in values]
    Path(path).write_text("\n".join(header + rows) + "\n")
    return Path(path)


def upscale2(values: np.ndarray) -> np.ndarray:
    """Each cell as 2x2 cells: a stand-in for an enhanced raster whose nodata is where it should be."""
    return np.repeat(np.repeat(values, 2, axis=0), 2, axis=1)


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes (.<stem>.<random>.part<suffix>) left in ``folder``."""
    return sorted(p.name for p in folder.rglob(".*part*"))


def run(capfd, *argv) -> tuple[int, list[str]]:
    """enhance.py in this process: (exit code, lines on stderr, C libraries' included)."""
    capfd.readouterr()
    code = util.run_cli(enhance.main, [str(a) for a in argv] + ["--quiet"])
    return code, capfd.readouterr().err.strip().splitlines()


def cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "enhance.py"), *map(str, argv), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(code: int, lines: list[str], named: str) -> None:
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and named in lines[0], lines


# ---- 1. Every format round trips with its georeferencing -------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".asc"])
def test_write_raster_keeps_crs_transform_nodata_and_values(tmp_path, suffix):
    heights = surface(20, 30)
    heights[4:6, 7:11] = -9999.0
    like = read_raster(write_tif(tmp_path / "in.tif", heights, nodata=-9999.0))
    assert like.nodata == -9999.0 and np.isnan(like.values).sum() == 8
    enhanced = upscale2(like.values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing deprecated or ignored on the way
        out = write_raster(tmp_path / f"out{suffix}", enhanced, like, scale=2)
    with rasterio.open(out) as src:
        assert src.crs == UTM and (src.count, src.dtypes[0], src.nodata) == (1, "float32", -9999.0)
        assert (src.height, src.width) == (40, 60)
        np.testing.assert_allclose(tuple(src.transform), tuple(UTM_CELLS * Affine.scale(0.5)), rtol=0, atol=1e-6)
        stored = src.read(1)
    np.testing.assert_array_equal(stored, np.where(np.isnan(enhanced), np.float32(-9999.0), enhanced))
    assert read_raster(out).cell_size_m() == (5.0, 5.0)
    written = {"out.tif"} if suffix == ".tif" else {"out.asc", "out.prj"}  # GDAL's .aux.xml and temp files gone
    assert {p.name for p in tmp_path.iterdir()} == {"in.tif"} | written


def test_write_raster_netcdf_has_fill_value_cell_centres_and_crs_wkt(tmp_path):
    import netCDF4
    import xarray as xr

    heights = surface(10, 12)
    heights[0, :3] = -32768.0
    like = read_raster(write_tif(tmp_path / "in.tif", heights, nodata=-32768.0))
    out = write_raster(tmp_path / "out.nc", upscale2(like.values), like, scale=2)
    with netCDF4.Dataset(out) as nc:
        var = nc.variables["values"]
        assert var.dtype == np.float32 and var.dimensions == ("y", "x") and var._FillValue == np.float32(-32768.0)
        np.testing.assert_allclose(nc.variables["x"][:3], [480002.5, 480007.5, 480012.5])
        np.testing.assert_allclose(nc.variables["y"][:2], [4429997.5, 4429992.5])  # north first, as the input
        assert CRS.from_wkt(nc.variables[var.grid_mapping].crs_wkt) == UTM
        var.set_auto_maskandscale(False)
        assert (var[:2, :6] == np.float32(-32768.0)).all() and var[2, 0] == heights[1, 0]
    with xr.open_dataset(out) as dataset:
        assert np.isnan(dataset["values"].values[:2, :6]).all()
    back = read_raster(out)
    assert back.crs == UTM and back.nodata == -32768.0 and back.values.shape == (20, 24)
    assert back.transform.almost_equals(UTM_CELLS * Affine.scale(0.5))


def test_write_raster_npy_keeps_nan_as_float32(tmp_path):
    values = surface(6, 7).astype(np.float64)
    values[2, 3] = np.nan
    np.save(tmp_path / "grid.npy", values)
    like = read_raster(tmp_path / "grid.npy")
    assert like.values.dtype == np.float32 and like.transform is None and like.crs is None
    write_raster(tmp_path / "out.npy", upscale2(like.values), like, scale=2)
    stored = np.load(tmp_path / "out.npy")
    assert stored.dtype == np.float32 and stored.shape == (12, 14)
    np.testing.assert_array_equal(stored, upscale2(values.astype(np.float32)))  # NaN where NaN


def source_in(suffix: str, folder: Path, heights: np.ndarray) -> Path:
    """``heights`` (-9999 = nodata) as a file of ``suffix`` georeferenced on UTM_CELLS where the format can hold it."""
    like = read_raster(write_tif(folder / "georef.tif", heights, nodata=-9999.0))
    if suffix == ".npy":
        np.save(folder / "dem.npy", like.values)  # NaN is the nodata of a .npy
    elif suffix == ".npz":  # matplotlib's layout: corners in degrees (WGS84)
        height, width = heights.shape
        corners = {"xmin": -105.5, "xmax": -105.5 + width / 1200, "ymin": 40.2, "ymax": 40.2 - height / 1200}
        np.savez(folder / "dem.npz", elevation=like.values, dx=1 / 1200, dy=1 / 1200, **corners)
    else:
        write_raster(folder / f"dem{suffix}", like.values, like)
    return folder / f"dem{suffix}"


@pytest.mark.parametrize("suffix", [".tif", ".asc", ".npy", ".npz", ".nc"])
def test_enhance_py_writes_the_same_format_georeferenced_at_half_the_cell_size(tmp_path, sr2, capfd, suffix):
    heights = surface(24, 28)
    heights[3:5, 10:13] = -9999.0
    source = source_in(suffix, tmp_path, heights)
    before = read_raster(source)
    code, lines = run(capfd, source, "--model", sr2[2])
    assert code == 0 and lines == [], lines  # no warning: the nodata is declared (NaN in .npy/.npz)
    out = read_raster(tmp_path / f"dem_x2{suffix}")
    assert out.values.dtype == np.float32 and out.values.shape == (48, 56)
    assert out.crs == before.crs and out.nodata == before.nodata
    if before.transform is None:
        assert suffix == ".npy" and out.transform is None
    else:
        assert out.transform.almost_equals(before.transform * Affine.scale(0.5), precision=1e-9)
        dy, dx = before.cell_size_m()
        np.testing.assert_allclose(out.cell_size_m(), (dy / 2, dx / 2), rtol=1e-6)
    hole = upscale2(before.values[3:5, 10:13])
    assert np.isnan(out.values[6:10, 20:26]).all() and np.isnan(hole).all()
    assert np.isnan(out.values).sum() == hole.size  # nodata at the output resolution, nowhere else
    reference = bicubic_upscale(heights, 2)  # heights 1 LR cell or more from the hole are bicubic's
    inner = np.ones_like(out.values, bool)
    inner[2:14, 16:30] = False
    inner = inner[INNER]
    assert np.abs(out.values[INNER][inner] - reference[INNER][inner]).max() < 0.05


def test_jacksboro_npz_is_3_arcsecond_wgs84_and_keeps_it_through_a_write(tmp_path):
    from matplotlib import cbook

    raster = read_raster(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False))
    assert raster.values.shape == (344, 403) and raster.values.dtype == np.float32 and raster.valid.all()
    assert raster.crs == CRS.from_epsg(4326) and raster.meta["variable"] == "elevation"
    t = raster.transform
    np.testing.assert_allclose((t.a, t.b, t.d, t.e), (1 / 1200, 0, 0, -1 / 1200), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose((t.c, t.f), (-84.41375, 36.73291667), atol=1e-7)  # the north-west corner
    np.testing.assert_allclose(raster.cell_size_m(), (92.5, 74.5), rtol=0.002)
    write_raster(tmp_path / "jacksboro_x2.npz", upscale2(raster.values), raster, scale=2)
    back = read_raster(tmp_path / "jacksboro_x2.npz")
    assert back.crs == raster.crs and back.transform.almost_equals(t * Affine.scale(0.5), precision=1e-12)
    np.testing.assert_array_equal(back.values[::2, ::2], raster.values)


def test_topobathy_npz_is_read_north_up_and_written_back_south_up(tmp_path):
    from matplotlib import cbook

    path = cbook.get_sample_data("topobathy.npz", asfileobj=False)
    stored = np.load(path)
    raster = read_raster(path)
    assert stored["latitude"][0] < stored["latitude"][-1]  # the file runs south to north
    np.testing.assert_array_equal(raster.values, stored["topo"][::-1])
    assert raster.transform.c == pytest.approx(234.0167 - 360 - raster.transform.a / 2, abs=1e-3)
    write_raster(tmp_path / "topobathy_x2.npz", upscale2(raster.values), raster, scale=2)
    written = np.load(tmp_path / "topobathy_x2.npz")
    np.testing.assert_array_equal(written["topo"][::2, ::2], stored["topo"])  # the input's order
    assert np.all(np.diff(written["latitude"]) > 0) and written["longitude"].min() > 180  # its conventions
    back = read_raster(tmp_path / "topobathy_x2.npz")
    np.testing.assert_array_equal(back.values[::2, ::2], raster.values)
    assert back.transform.almost_equals(raster.transform * Affine.scale(0.5), precision=1e-9)


# ---- 2. A lunar CRS (no EPSG code) -------------------------------------------------------------------------


def test_lunar_crs_is_kept_and_its_cells_are_measured_on_the_moon(tmp_path, sr2):
    model, info, _ = sr2
    arcsec = 1 / 3600
    moon = CRS.from_wkt(MOON)
    source = write_tif(tmp_path / "crater.tif", surface(24, 24, 1000.0), moon, Affine(arcsec, 0, 30, 0, -arcsec, 60.0))
    raster = read_raster(source)
    assert raster.crs.to_dict() == moon.to_dict() == {"proj": "longlat", "R": 1737400, "no_defs": True}  # axes aside
    assert raster.crs.to_epsg() is None and "Moon 2000" in raster.crs.to_wkt()
    metres = MOON_RADIUS * math.radians(arcsec)  # 8.42 m; on the Earth it would be 30.9 m
    centre = math.radians(60.0 - 12 * arcsec)
    np.testing.assert_allclose(raster.cell_size_m(), (metres, metres * math.cos(centre)), rtol=1e-9)
    for suffix in (".tif", ".asc", ".nc"):
        out = enhance_raster_file(source, model, info, tmp_path / f"crater_x2{suffix}", progress=False)
        back = read_raster(out)
        assert back.crs == raster.crs and "Moon 2000" in back.crs.to_wkt() and "1737400" in back.crs.to_wkt(), suffix
        assert back.transform.almost_equals(raster.transform * Affine.scale(0.5), precision=1e-9), suffix
        np.testing.assert_allclose(back.cell_size_m(), (metres / 2, metres / 2 * math.cos(centre)), rtol=1e-6)


# ---- 3. Nodata ---------------------------------------------------------------------------------------------


def test_a_raster_model_built_under_bfloat16_normalises_heights_in_float32():
    """Mixed-precision training must not round 2000 m heights to bfloat16's 8 m steps before normalising."""
    import keras

    import edsr_lite
    from util.models.layers import raster_model

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = raster_model(edsr_lite.build_model("sr2", channels=1), value_scale=100.0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    heights = surface(24, 28)
    out = np.asarray(model(heights[None, ..., None]))[0, ..., 0]
    reference = bicubic_upscale(heights, 2)
    # bfloat16 inside the network leaves centimetres; rounding the input would leave metres
    assert np.abs(out[INNER] - reference[INNER]).max() < 0.5


def test_fill_nodata_takes_the_nearest_valid_cell():
    values = np.array([[1.0, np.nan, np.nan, 4.0], [np.nan, np.nan, np.nan, np.nan]], np.float32)
    np.testing.assert_array_equal(fill_nodata(values), [[1, 1, 4, 4], [1, 1, 4, 4]])
    with pytest.raises(ValueError, match="every cell is nodata"):
        fill_nodata(np.full((2, 2), np.nan, np.float32))


def test_nodata_stays_nodata_and_does_not_pull_its_neighbours(tmp_path, sr2):
    model, info, _ = sr2
    heights = surface()
    hole = np.zeros(heights.shape, bool)
    hole[12:18, 20:27] = True
    hole[30, 5] = True  # a single cell as well
    source = write_tif(tmp_path / "holes.tif", np.where(hole, np.float32(-9999.0), heights), nodata=-9999.0)
    truth = write_tif(tmp_path / "whole.tif", heights, nodata=-9999.0)  # the same raster, nodata cells with heights
    with_holes = enhance_raster_file(source, model, info, tmp_path / "holes_x2.tif", progress=False)
    whole = enhance_raster_file(truth, model, info, tmp_path / "whole_x2.tif", progress=False)
    with rasterio.open(with_holes) as src:
        assert src.nodata == -9999.0
        masked = src.read(1, masked=True)
    np.testing.assert_array_equal(masked.mask, upscale2(hole))
    difference = np.abs(masked.filled(np.nan) - read_raster(whole).values)
    beside = upscale2(ndimage.binary_dilation(hole) & ~hole)  # the valid cells touching nodata
    assert beside.sum() == 4 * (2 * 6 + 2 * 7 + 4) and difference[beside].max() < 5.0  # -9999: hundreds of metres
    assert masked.min() > heights.min() - 5
    far = upscale2(ndimage.distance_transform_cdt(~hole, metric="chessboard") > 14)
    assert far.sum() > 1000 and difference[far].max() < 1e-3  # the model sees only cells close by


def test_declared_nodata_value_masks_a_file_without_one_and_the_warning_says_so(tmp_path, sr2, capfd):
    heights = surface(20, 24, 500.0)
    heights[0, :] = heights[:, -1] = -9999.0  # a border of nodata, and no NODATA line
    source = write_asc(tmp_path / "site.asc", heights)
    code, lines = run(capfd, source, "--model", sr2[2], "--out", tmp_path / "plain.asc")
    assert code == 0 and len(lines) == 1, lines
    assert lines[0].startswith(f"warning: {source}: declares no nodata but 43 cells hold -9999") and (
        "give --nodata -9999 if they are missing cells" in lines[0]
    )
    code, lines = run(capfd, source, "--model", sr2[2], "--nodata", "-9999")
    assert code == 0 and lines == [], lines
    with rasterio.open(tmp_path / "site_x2.asc") as src:
        assert src.nodata == -9999.0 and src.dtypes[0] == "float32"
        masked = src.read(1, masked=True)
    np.testing.assert_array_equal(masked.mask, upscale2(heights == -9999.0))
    assert masked.min() > 400  # the valid cells beside the border are heights, not pulled towards -9999
    assert read_raster(tmp_path / "plain.asc").values.min() < -9000  # without --nodata, -9999 was a height


def test_warn_suspected_nodata_on_the_real_file_without_a_nodata_line(shared_data, capsys):
    hugo = read_raster(shared_data / "dem" / "hugo_site_10m_no_nodata_header.asc")
    assert hugo.nodata is None and hugo.suspected_nodata == -9999.0 and hugo.valid.all()
    warn_suspected_nodata(hugo)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "hugo_site_10m_no_nodata_header.asc: declares no nodata but 2028 cells" in lines[0]
    assert "give --nodata -9999 " in lines[0]
    declared = read_raster(shared_data / "dem" / "hugo_site_10m_no_nodata_header.asc", nodata=-9999)
    assert declared.nodata == -9999.0 and (~declared.valid).sum() == 2028 and declared.suspected_nodata is None
    warn_suspected_nodata(read_raster(shared_data / "dem" / "runout_10m.asc"))  # declares -9999: no warning
    assert capsys.readouterr().err == ""


def test_suggested_nodata_value_matches_float32_lowest(capsys):
    lowest = np.finfo(np.float32).min
    raster = Raster(Path("grid.npy"), np.array([[lowest, 1.0]], np.float32))
    assert raster.suspected_nodata == float(lowest)
    warn_suspected_nodata(raster)
    given = float(capsys.readouterr().err.split("give --nodata ")[1].split()[0])
    assert np.float32(given) == lowest  # the suggested value, typed back, masks these cells


def test_hugo_with_declared_nodata_through_enhance(tmp_path, shared_data, sr2):
    model, info, _ = sr2
    source = shared_data / "dem" / "hugo_site_10m_no_nodata_header.asc"
    out = enhance_raster_file(source, model, info, tmp_path / "hugo_x2.asc", nodata=-9999.0, progress=False)
    hugo = read_raster(source, nodata=-9999)
    with rasterio.open(out) as src:
        assert (src.height, src.width, src.nodata, src.res) == (110, 152, -9999.0, (5.0, 5.0))
        masked = src.read(1, masked=True)
    np.testing.assert_array_equal(masked.mask, upscale2(~hugo.valid))
    low, high = np.nanmin(hugo.values), np.nanmax(hugo.values)
    assert low - 5 < masked.min() and masked.max() < high + 5


def test_real_dems_read_with_their_georeferencing(shared_data):
    dem = shared_data / "dem"
    tif = read_raster(dem / "srtm_boulder_3arcsec.tif")
    asc = read_raster(dem / "srtm_boulder_3arcsec.asc")
    cog = read_raster(dem / "Copernicus_DSM_COG_10_N40_00_W106_00_DEM.tif")
    assert (tif.crs, tif.nodata, cog.crs, cog.nodata) == (CRS.from_epsg(4326), -32768.0, CRS.from_epsg(4326), None)
    assert asc.crs is None and asc.degrees and asc.nodata == 0.0  # no .prj: tiny cells in lon/lat ranges
    for other in (asc, cog):
        assert other.transform.almost_equals(tif.transform, precision=1e-9)
        np.testing.assert_array_equal(other.values, tif.values)
    np.testing.assert_allclose(tif.cell_size_m(), (92.5, 71.0), rtol=0.002)
    assert asc.cell_size_m() == tif.cell_size_m()
    tidal = read_raster(dem / "tidal_flat_2m.asc")
    assert tidal.nodata == 999.0 and np.nanmax(tidal.values) < 999 and np.nanmin(tidal.values) < -2.5
    runout = read_raster(dem / "runout_10m.asc")
    assert runout.nodata == -9999.0 and np.isnan(runout.values[:, -1]).all() and runout.cell_size_m() == (10, 10)


# ---- 4. Bad input: one line naming the file, nothing left behind ---------------------------------------------


def test_truncated_geotiff_is_a_one_line_error_and_leaves_no_file(tmp_path, sr2):
    whole = write_tif(tmp_path / "whole.tif", surface(64, 64)).read_bytes()
    (tmp_path / "half.tif").write_bytes(whole[: len(whole) // 2])  # a download cut short
    with pytest.raises(util.UserError, match=r"half\.tif: not a readable raster \(.*Read error") as err:
        read_raster(tmp_path / "half.tif")
    assert "\n" not in str(err.value) and "download it again" in str(err.value)
    (tmp_path / "header.tif").write_bytes(whole[:100])  # cut inside its header: GDAL cannot even open it
    result = cli(tmp_path / "header.tif", "--model", sr2[2])
    assert_one_line_error(result.returncode, result.stderr.strip().splitlines(), "header.tif: not a readable raster")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.tif", "header.tif", "whole.tif"]


def test_rasters_smaller_than_the_model_needs_are_enhanced(tmp_path, sr2):
    """A U-Net-like model takes multiples of 16 HR cells: tiny rasters are padded, and the result is still right."""
    import keras

    from util.models.layers import model_info, raster_model, suite_input

    inputs, upsampled = suite_input("sr2", "upsampled", 16, "bicubic (identity on the upsampled input)", channels=1)
    bicubic = raster_model(keras.Model(inputs, upsampled), value_scale=100.0)
    model, info = sr2[0], sr2[1]
    for shape in ((1, 1), (1, 5), (3, 3), (9, 4)):
        heights = 100 + np.random.default_rng(0).normal(0, 10, shape).astype(np.float32)
        np.save(tmp_path / "tiny.npy", heights)
        out = enhance_raster_file(
            tmp_path / "tiny.npy", bicubic, model_info(bicubic), tmp_path / "a.npy", progress=False
        )
        np.testing.assert_allclose(np.load(out), bicubic_upscale(heights, 2), atol=1e-4)
        np.save(tmp_path / "flat.npy", np.full(shape, 1234.5, np.float32))
        out = enhance_raster_file(tmp_path / "flat.npy", model, info, tmp_path / "b.npy", progress=False)
        np.testing.assert_allclose(np.load(out), np.full((2 * shape[0], 2 * shape[1]), 1234.5), atol=1e-3)


def test_all_nodata_raster_is_a_one_line_error(tmp_path, sr2, capfd):
    source = write_tif(tmp_path / "empty.tif", np.full((8, 8), -9999.0), nodata=-9999.0)
    code, lines = run(capfd, source, "--model", sr2[2])
    assert_one_line_error(code, lines, "empty.tif: every cell is nodata")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif"]


def test_three_band_geotiff_needs_band(tmp_path, sr2, capfd):
    bands = np.stack([surface(16, 16, 1000.0 * b) for b in (1, 2, 3)])
    source = write_tif(tmp_path / "bands.tif", bands, nodata=-9999.0)
    code, lines = run(capfd, source, "--model", sr2[2])
    assert_one_line_error(code, lines, "bands.tif: 3 bands; give --band 1 to 3")
    for band in (0, 4):
        code, lines = run(capfd, source, "--model", sr2[2], "--band", band)
        assert_one_line_error(code, lines, f"bands.tif: --band {band}, but the file has 3 band(s)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bands.tif"]
    code, lines = run(capfd, source, "--model", sr2[2], "--band", 2)
    assert code == 0 and lines == [], lines
    with rasterio.open(tmp_path / "bands_x2.tif") as src:
        assert (src.count, src.height, src.width, src.crs) == (1, 32, 32, UTM)
        enhanced = src.read(1)
    np.testing.assert_allclose(enhanced[INNER], bicubic_upscale(bands[1], 2)[INNER], atol=0.05)


def test_netcdf_with_two_grids_needs_variable(tmp_path, sr2, capfd):
    import netCDF4

    with netCDF4.Dataset(tmp_path / "two.nc", "w") as nc:
        nc.createDimension("y", 12)
        nc.createDimension("x", 14)
        nc.createVariable("y", "f8", ("y",))[:] = 4430000 - 10 * np.arange(12)
        nc.createVariable("x", "f8", ("x",))[:] = 480000 + 10 * np.arange(14)
        nc.createVariable("height", "f4", ("y", "x"))[:] = surface(12, 14)
        nc.createVariable("slope", "f4", ("y", "x"))[:] = np.ones((12, 14), np.float32)
    code, lines = run(capfd, tmp_path / "two.nc", "--model", sr2[2])
    assert_one_line_error(code, lines, "two.nc: 2 gridded variables (height, slope); give --variable NAME")
    code, lines = run(capfd, tmp_path / "two.nc", "--model", sr2[2], "--variable", "aspect")
    assert_one_line_error(code, lines, "two.nc: no variable 'aspect'; give --variable one of height, slope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.nc"]
    code, lines = run(capfd, tmp_path / "two.nc", "--model", sr2[2], "--variable", "slope")
    assert code == 0 and lines == [], lines
    with netCDF4.Dataset(tmp_path / "two_x2.nc") as nc:
        assert list(nc.variables) == ["y", "x", "slope"]  # no CRS to write
        np.testing.assert_allclose(nc.variables["slope"][:], 1.0, atol=1e-4)
        np.testing.assert_allclose(nc.variables["x"][:2], [479997.5, 480002.5])


def test_existing_output_is_left_untouched_without_overwrite(tmp_path, sr2):
    source = write_tif(tmp_path / "dem.tif", surface(16, 16), nodata=-9999.0)
    (tmp_path / "dem_x2.tif").write_bytes(b"an earlier result")
    result = cli(source, "--model", sr2[2])
    assert_one_line_error(result.returncode, result.stderr.strip().splitlines(), "dem_x2.tif: exists; give --overwrite")
    assert (tmp_path / "dem_x2.tif").read_bytes() == b"an earlier result"
    assert leftovers(tmp_path) == []
    assert enhance.main([str(source), "--model", str(sr2[2]), "--quiet", "--overwrite"]) is None
    with rasterio.open(tmp_path / "dem_x2.tif") as src:
        assert (src.height, src.width, src.dtypes[0]) == (32, 32, "float32")


def test_raster_flags_where_they_do_not_apply_are_refused(tmp_path):
    from PIL import Image

    source = write_tif(tmp_path / "dem.tif", surface(8, 8))
    with pytest.raises(util.UserError, match=r"dem\.tif: --variable applies to \.npz and \.nc files; drop it"):
        read_raster(source, variable="height")
    np.save(tmp_path / "grid.npy", surface(8, 8))
    with pytest.raises(util.UserError, match=r"grid\.npy: --band applies to multi-band GeoTIFFs; drop it"):
        read_raster(tmp_path / "grid.npy", band=1)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    for flag in ("--nodata", "--band"):  # 0 is a value, not "not given"
        with pytest.raises(util.UserError, match=f"{flag} apply to rasters"):
            enhance.main([str(tmp_path / "photo.png"), flag, "0"])


def test_a_failed_write_leaves_neither_the_output_nor_temporary_files(tmp_path, monkeypatch):
    from util.io import rasters

    like = read_raster(write_tif(tmp_path / "dem.tif", surface(8, 8)))

    def broken(self):
        raise OSError("disk full")

    monkeypatch.setattr(rasters.RasterWriter, "_write_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        write_raster(tmp_path / "out.nc", like.values, like)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]  # no half-written out.nc, no temp files


# ---- 5. Integer input --------------------------------------------------------------------------------------


def test_int16_input_gives_float32_output_that_does_not_wrap(tmp_path, sr2):
    model, info, _ = sr2
    heights = np.full((24, 24), 32000, np.int16)
    heights[:, 12:] = 32760  # a cliff: bicubic overshoots above int16's 32767
    heights[0, 0] = -32768
    source = write_tif(tmp_path / "high.tif", heights, nodata=-32768, dtype="int16")
    out = enhance_raster_file(source, model, info, tmp_path / "high_x2.tif", progress=False)
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "float32" and src.nodata == -32768.0
        masked = src.read(1, masked=True)
    assert masked.mask.sum() == 4 and masked.mask[:2, :2].all()
    assert masked.max() > 32767  # above int16's range, not wrapped to negative heights
    assert masked.min() > 31900
    np.testing.assert_allclose(masked[8:40, 8:16], 32000, atol=0.5)


# ---- 6. NetCDF read ------------------------------------------------------------------------------------------


def test_netcdf_packed_south_up_is_read_north_up_and_written_back_south_up(tmp_path, sr2):
    import netCDF4

    model, info, _ = sr2
    lats = 40.005 + 0.01 * np.arange(20)  # ascending: row 0 is the southern row
    lons = -105.495 + 0.01 * np.arange(24)
    heights = surface(20, 24)[::-1]  # stored south to north
    with netCDF4.Dataset(tmp_path / "packed.nc", "w") as nc:
        nc.createDimension("lat", 20)
        nc.createDimension("lon", 24)
        for name, values, units in (("lat", lats, "degrees_north"), ("lon", lons, "degrees_east")):
            var = nc.createVariable(name, "f8", (name,))
            var[:], var.units = values, units
        var = nc.createVariable("elevation", "i2", ("lat", "lon"), fill_value=np.int16(-32767))
        var.scale_factor, var.add_offset, var.units, var.long_name = 0.5, 2000.0, "m", "surface height"
        var[:] = heights
        var[0, 0] = np.ma.masked  # the south-west cell
        var.set_auto_maskandscale(False)
        packed = var[:]
    assert packed[0, 0] == -32767 and packed[1, 1] == np.int16(round((heights[1, 1] - 2000) / 0.5))
    raster = read_raster(tmp_path / "packed.nc")
    assert raster.crs == CRS.from_epsg(4326) and raster.nodata == -32767.0 and raster.meta["south_up"]
    assert raster.transform.almost_equals(Affine(0.01, 0, -105.5, 0, -0.01, 40.2), precision=1e-9)
    np.testing.assert_allclose(raster.values[:-1], surface(20, 24)[:-1], atol=0.25)  # north-up, unpacked
    assert np.isnan(raster.values[-1, 0]) and np.isnan(raster.values).sum() == 1  # the south-west cell
    out = enhance_raster_file(tmp_path / "packed.nc", model, info, tmp_path / "packed_x2.nc", progress=False)
    with netCDF4.Dataset(out) as nc:
        assert list(nc.dimensions) == ["lat", "lon"] and nc.variables["lat"].units == "degrees_north"
        np.testing.assert_allclose(nc.variables["lat"][:3], [40.0025, 40.0075, 40.0125])  # ascending, as the input
        var = nc.variables["elevation"]
        assert var.dtype == np.float32 and var._FillValue == np.float32(-32767) and var.long_name == "surface height"
        assert CRS.from_wkt(nc.variables[var.grid_mapping].crs_wkt) == CRS.from_epsg(4326)
        written = var[:]
    assert written.mask[:2, :2].all() and written.mask.sum() == 4  # the south-west cell, south first again
    enhanced = read_raster(out).values
    np.testing.assert_array_equal(enhanced, written.filled(np.nan)[::-1])
    np.testing.assert_allclose(enhanced[INNER], bicubic_upscale(fill_nodata(raster.values), 2)[INNER], atol=0.05)


# ---- 6. The average of several raster models (edsr_lite.py --role average) --------------------------------


def _member(task: str, seed: int, path: Path) -> Path:
    """A raster EDSR whose weights are all nudged at random, so that no two members agree; saved at ``path``."""
    import keras

    import edsr_lite
    from util.models.layers import raster_model

    model = raster_model(edsr_lite.build_model(task, channels=1), value_scale=100.0)
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in model.get_weights()])
    keras.saving.save_model(model, path)
    return path


def average_cli(capfd, *argv) -> tuple[int, list[str]]:
    import edsr_lite

    capfd.readouterr()
    code = util.run_cli(edsr_lite.main, ["--role", "average", *map(str, argv)])
    return code, capfd.readouterr().err.strip().splitlines()


def test_average_of_raster_models_is_the_mean_of_their_outputs_and_enhances_a_geotiff(tmp_path, capfd):
    from util.models.loading import load_model

    members = [_member("sr2", seed, tmp_path / f"m{seed}.keras") for seed in (1, 2)]
    out = tmp_path / "avg" / "dem_x2.keras"
    code, lines = average_cli(capfd, "--model", ",".join(map(str, members)), "--output", out)
    assert code == 0, lines
    model, info = load_model(out)
    assert (info["task"], info["scale"], info["data_kind"], info["units"]) == ("sr2", 2, "raster", "m")
    assert info["architecture"].startswith("average of 2: EDSR-lite")
    heights = surface(24, 32)[None, ..., None]
    outputs = [load_model(m)[0].predict(heights, verbose=0) for m in members]
    assert np.abs(outputs[0] - outputs[1]).max() > 0.05  # the members differ, so the mean is a real test
    np.testing.assert_allclose(model.predict(heights, verbose=0), (outputs[0] + outputs[1]) / 2, atol=1e-3)
    source = write_tif(tmp_path / "dem.tif", surface())
    code, lines = run(capfd, source, "--model", out, "--out", tmp_path / "dem_x2.tif")
    assert code == 0, lines
    with rasterio.open(tmp_path / "dem_x2.tif") as done:
        assert done.shape == (80, 96) and done.dtypes[0] == "float32"
        assert done.transform.a == UTM_CELLS.a / 2


def test_average_refuses_models_of_other_tasks_a_single_model_and_overwriting_a_member(tmp_path, capfd):
    sr2, sr4 = _member("sr2", 1, tmp_path / "a.keras"), _member("sr4", 2, tmp_path / "b.keras")
    out = tmp_path / "avg.keras"
    code, lines = average_cli(capfd, "--model", f"{sr2},{sr4}", "--output", out)
    assert_one_line_error(code, lines, "b.keras")
    assert "task='sr4'" in lines[0] and "same task" in lines[0]
    assert_one_line_error(*average_cli(capfd, "--model", str(sr2), "--output", out), "at least two models")
    assert_one_line_error(*average_cli(capfd, "--model", f"{sr2},{sr2}", "--output", sr2), "one of the models")
    assert_one_line_error(*average_cli(capfd, "--model", f"{sr2},{sr2}"), "--output FILE.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras"]  # nothing written
