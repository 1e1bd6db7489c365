"""Static predictors (util/data/static.py): regridding, coverage, training with AUX, enhance.py --aux."""

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

import download
import util
from util.data import static

TINY = ["--train-patches", "24", "--backprops", "48", "--batch", "8", "--epochs", "1", "--val-patches", "8"]


def write_geotiff(path: Path, values: np.ndarray, west: float, north: float, cell: float) -> Path:
    import rasterio

    profile = {"driver": "GTiff", "height": values.shape[0], "width": values.shape[1], "count": 1}
    profile |= {"dtype": values.dtype, "crs": "EPSG:4326", "transform": Affine(cell, 0, west, 0, -cell, north)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    return path


def linear_elevation(path: Path, west=-2.0, north=52.0, cells=(56, 80), cell=0.25) -> Path:
    """A GeoTIFF of 100 * lon + 10 * lat (linear: bilinear regridding gives it exactly)."""
    rows, cols = np.mgrid[0 : cells[0], 0 : cells[1]]
    lon, lat = west + (cols + 0.5) * cell, north - (rows + 0.5) * cell
    return write_geotiff(path, (100 * lon + 10 * lat).astype(np.float32), west, north, cell)


def test_a_linear_field_is_regridded_bilinearly_across_the_dateline_convention_and_a_mask_nearest(tmp_path):
    grid = static.Grid((12, 20), Affine(0.5, 0, 200.0, 0, -0.5, 50.0), CRS.from_epsg(4326), name="grid")
    xs, ys = grid.centres()  # 200..210 east: the file below says -160..-150
    elevation = linear_elevation(tmp_path / "elev.tif", west=-162.0, north=52.0, cells=(40, 60))
    field, how = static.regridded(elevation, grid)
    assert how == "bilinear" and field.shape == (12, 20)
    np.testing.assert_allclose(field, 100 * (xs - 360) + 10 * ys, atol=0.05)

    mask = np.zeros((40, 60), np.float32)
    mask[:, 30:] = 1  # land east of -154.5
    field, how = static.regridded(write_geotiff(tmp_path / "lsm.tif", mask, -162.0, 52.0, 0.25), grid)
    assert how == "nearest" and set(np.unique(field)) == {0.0, 1.0}  # no 0.4 on the coast

    import xarray as xr  # a NetCDF single grid, lat ascending, as many files come

    lat, lon = np.arange(40.125, 52, 0.25), np.arange(-161.875, -147, 0.25)
    values = (100 * lon[None, :] + 10 * lat[:, None]).astype(np.float32)
    coords = {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})}
    xr.Dataset({"orog": (("lat", "lon"), values, {"units": "m"})}, coords=coords).to_netcdf(tmp_path / "orog.nc")
    field, how = static.regridded(tmp_path / "orog.nc", grid)
    np.testing.assert_allclose(field, 100 * (xs - 360) + 10 * ys, atol=0.05)


def test_a_file_that_does_not_cover_the_grid_is_one_line_naming_it_and_the_fix(tmp_path):
    grid = static.Grid((12, 20), Affine(0.5, 0, 0.0, 0, -0.5, 50.0), CRS.from_epsg(4326), name="tas.nc")
    short = linear_elevation(tmp_path / "elev.tif", west=-1.0, north=52.0, cells=(40, 30))  # ends at 6.5 E
    with pytest.raises(util.UserError) as err:
        static.regridded(short, grid)
    message = str(err.value)
    assert "\n" not in message and str(short) in message and "does not cover tas.nc's grid" in message
    assert "give an --aux file that covers the whole grid" in message


def test_latitude_and_space_to_depth_match_the_grid_and_tensorflow():
    import tensorflow as tf

    grid = static.Grid((4, 6), Affine(1.0, 0, 10.0, 0, -1.0, 60.0), CRS.from_epsg(4326))
    np.testing.assert_allclose(static.latitude_field(grid)[:, 0], [59.5, 58.5, 57.5, 56.5])
    from_manifest = static.Grid((4, 6), latitudes=(59.5, -1.0))
    np.testing.assert_allclose(static.latitude_field(from_manifest), static.latitude_field(grid))
    fields = np.random.default_rng(0).normal(size=(3, 8, 12, 2)).astype(np.float32)
    np.testing.assert_array_equal(static.lr_channels(fields, 4), tf.nn.space_to_depth(fields, 4).numpy())
    with pytest.raises(util.UserError, match="neither a built-in predictor"):
        static.check_aux(("latitude", "nowhere.tif"))


def write_stack(path: Path, steps: int = 10) -> np.ndarray:
    """A small CF NetCDF stack (time, lat, lon) of temperatures that fall with latitude, 50..40 N, 0..15 E."""
    import xarray as xr

    rng = np.random.default_rng(steps)
    lat, lon = np.linspace(50, 40, 24), np.linspace(0, 15, 40)
    values = (300 - lat[None, :, None] + rng.normal(size=(steps, 24, 40))).astype(np.float32)
    time = ("time", np.arange(steps) * 24.0, {"units": "hours since 2000-01-01", "calendar": "noleap"})
    coords = {"time": time, "lat": ("lat", lat, {"units": "degrees_north"})}
    coords["lon"] = ("lon", lon, {"units": "degrees_east"})
    attrs = {"units": "K", "standard_name": "air_temperature"}
    xr.Dataset({"tas": (("time", "lat", "lon"), values, attrs)}, coords=coords).to_netcdf(path)
    return values


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A stack data set, an elevation covering it and an EDSR-lite trained a few steps with latitude and it."""
    import edsr_lite

    root = tmp_path_factory.mktemp("static")
    (root / "era").mkdir()
    write_stack(root / "era" / "tas.nc")
    download.main(["--folder", str(root / "era"), "--out", str(root / "data"), "--train", "30", "--test", "50"])
    elevation = linear_elevation(root / "elev.tif")
    dataset = root / "data" / "folder-era"
    aux = f"latitude,{elevation}"
    run = edsr_lite.main(["--dataset", str(dataset), "--out", str(root / "runs"), "--aux", aux, *TINY])
    return {"root": root, "dataset": dataset, "elevation": elevation, "run": run}


def test_training_with_aux_records_the_fields_in_the_card_and_scores_with_them(trained):
    from util.models.loading import load_model

    manifest = json.loads((trained["dataset"] / "manifest.json").read_text())
    assert manifest["stacks"][0]["crs"] == "EPSG:4326" and len(manifest["stacks"][0]["transform"]) == 6
    model, info = load_model(trained["run"] / "model.keras")  # safe_mode: StaticNormalize is registered
    card = info["aux"]
    assert info["channels"] == 1 + 2 * 16 and card["scale"] == 4
    assert [(f["name"], f["made"]) for f in card["fields"]] == [
        ("latitude", "computed from the grid's coordinates"),
        ("elev", "bilinear"),
    ]
    assert 40 < card["fields"][0]["mean"] < 50 and card["fields"][0]["std"] > 1
    assert card["fields"][1]["source"] == str(trained["elevation"].resolve())
    results = json.loads((trained["run"] / "results.json").read_text())
    assert results["settings"]["aux"] == f"latitude,{trained['elevation']}"
    assert all(np.isfinite(s["rmse"]) and s["rmse"] < 5 for s in results["raster_scores"].values())


def test_a_script_without_extra_channels_and_aux_on_rasters_are_one_line(trained, tmp_path):
    import inception2

    with pytest.raises(util.UserError, match="this script's model takes no extra input channels; train static"):
        inception2.main(["--dataset", str(trained["dataset"]), "--out", str(tmp_path), "--aux", "latitude", *TINY])
    with pytest.raises(util.UserError, match="neither a built-in predictor"):
        inception2.main(["--dataset", str(trained["dataset"]), "--out", str(tmp_path), "--aux", "altitude"])


def enhance(capfd, *argv) -> tuple[int, list[str]]:
    import enhance as script

    capfd.readouterr()
    code = util.run_cli(script.main, [str(a) for a in argv] + ["--quiet", "--runtime", "keras"])
    return code, capfd.readouterr().err.strip().splitlines()


def test_enhance_rebuilds_latitude_reads_the_file_again_and_names_a_missing_one(trained, tmp_path, capfd):
    import xarray as xr

    model = trained["run"] / "model.keras"
    source = tmp_path / "tas.nc"
    write_stack(source, steps=3)
    code, err = enhance(capfd, source, "--model", model)
    assert code == 0 and not err
    with xr.open_dataset(tmp_path / "tas_x4.nc") as out:
        values = out["tas"].values
        assert values.shape == (3, 96, 160) and np.isfinite(values).all()
        assert abs(float(values.mean()) - (300 - 45)) < 1.0  # in kelvin, near the input's mean

    moved = tmp_path / "elevation_elsewhere.tif"
    moved.write_bytes(trained["elevation"].read_bytes())
    again = ("--model", model, "--overwrite")
    assert enhance(capfd, source, *again, "--aux", f"latitude,{moved}")[0] == 0  # the file given again
    code, err = enhance(capfd, source, *again, "--aux", str(moved))
    assert code == 1 and len(err) == 1 and "takes 2 static predictor(s) (latitude, elev)" in err[0]
    trained["elevation"].rename(trained["root"] / "gone.tif")
    try:
        code, err = enhance(capfd, source, *again)
    finally:
        (trained["root"] / "gone.tif").rename(trained["elevation"])
    assert code == 1 and len(err) == 1 and "needs the static predictor elev" in err[0]
    assert "give --aux latitude,elev-FILE" in err[0]


def test_evaluate_scores_a_model_with_static_predictors_on_whole_grids_as_enhance_makes_them(trained, tmp_path):
    """evaluate.py on a stack's steps: the model gets latitude and the elevation for each block-mean LR, the
    same inputs enhance.py gives it for that LR written as a file."""
    import xarray as xr

    import enhance as enhance_script
    import evaluate
    from util.evaluation.raster_eval import degrade

    model = trained["run"] / "model.keras"
    source = tmp_path / "tas.nc"
    values = write_stack(source, steps=2)
    evaluate.main(["--model", str(model), "--data", str(source), "--steps", "1:", "--out", str(tmp_path / "eval")])
    result = json.loads((tmp_path / "eval" / "eval_tas_sr4.json").read_text())
    pooled = result["pooled"]
    assert result["rasters"][0]["steps"] == [1, 2] and np.isfinite(pooled["model"]["rmse"])
    # The same LR through enhance.py: the block mean of step 1 as a file of the LR grid.
    hr = xr.open_dataset(source)
    lr = degrade(values[1], 4)[1]
    coarse = hr.isel(time=[1]).coarsen(lat=4, lon=4).mean()
    coarse["tas"].values[:] = lr[None]
    coarse.to_netcdf(tmp_path / "lr.nc")
    enhance_script.main([str(tmp_path / "lr.nc"), "--model", str(model), "--quiet", "--runtime", "keras"])
    with xr.open_dataset(tmp_path / "lr_x4.nc") as out:
        output = out["tas"].values[0]
    truth, scored = values[1][: output.shape[0], : output.shape[1]], degrade(values[1], 4)[2]
    rmse = float(np.sqrt(np.mean((output - truth)[scored] ** 2)))
    assert abs(rmse - pooled["model"]["rmse"]) < 1e-3 * max(1.0, rmse)
    with pytest.raises(util.UserError, match="--aux apply to a model, not to bicubic"):
        evaluate.main(["--model", "bicubic", "--scale", "4", "--data", str(source), "--aux", "latitude"])


def test_aux_for_a_model_without_static_predictors_is_one_line(tmp_path, capfd):
    source = tmp_path / "tas.nc"
    write_stack(source, steps=2)
    dem_x2 = Path(__file__).resolve().parents[1] / "assets" / "models" / "dem_x2.keras"
    code, err = enhance(capfd, source, "--model", dem_x2, "--aux", "latitude")
    assert code == 1 and err == ["error: --aux latitude: the model takes no static predictors; drop --aux"]
