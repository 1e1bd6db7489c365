"""Stacks: download.py climate and --folder of stacks split in time, StackPairs training, the bad inputs."""

import json
from pathlib import Path

import numpy as np
import pytest

import download
import util

REPO = Path(__file__).resolve().parents[1]

TINY = ["--train-patches", "48", "--backprops", "192", "--batch", "8", "--epochs", "2", "--val-patches", "8"]


def mtimes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def sample(name: str):
    import iris_sample_data
    import xarray as xr

    return xr.open_dataset(Path(iris_sample_data.path) / name, decode_times=False)


def check_files(dest: Path, patch: int = 16, scales=(2, 4)) -> dict:
    """Every file has its shape and dtype, no NaN, masks of 0/1 with at most MAX_NODATA nodata a patch."""
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["kind"] == "stack" and manifest["settings"]["scales"] == list(scales)
    for split in ("train", "test"):
        hr, mask = np.load(dest / f"{split}_hr.npy"), np.load(dest / f"{split}_mask.npy")
        n = len(manifest["splits"][split]["patches"])
        assert n > 0 and hr.shape == (n, patch, patch, 1) and hr.dtype == np.float32 and np.isfinite(hr).all()
        assert mask.shape == hr.shape and (1 - mask).reshape(n, -1).mean(axis=1).max() <= 0.25
        for s in scales:
            assert np.load(dest / f"{split}_sr{s}.npy").shape == (n, patch // s, patch // s, 1)
        assert np.load(dest / f"{split}_cell.npy").shape == (n, 2)
    return manifest


def test_climate_is_split_in_time_and_says_so_then_is_up_to_date(tmp_path, capsys):
    args = ["climate", "--out", str(tmp_path), "--train", "64", "--test", "30"]
    download.main(args)
    assert "wrote 64 train / 30 test patches of 16x16 cells (block-mean LR x2/x4" in capsys.readouterr().out
    dest = tmp_path / "climate"
    manifest = check_files(dest)
    assert manifest["units"] == "K" and manifest["standard_name"] == "air_temperature"
    assert manifest["split"] == {"by": "time", "test_fraction": 0.2, "test_files": []}
    assert manifest["split_rule"].startswith("in time, per stack: its last 20% of the time steps")
    (entry,) = manifest["stacks"]
    assert entry["name"] == "A1B_north_america.nc" and entry["shape"] == [240, 37, 49]
    assert entry["calendar"] == "360_day" and len(entry["times"]) == 240
    assert (entry["train_steps"], entry["test_steps"]) == ([0, 192], [192, 240])
    assert entry["test_times"] == ["2052-06-01T00:00:00", "2099-06-01T00:00:00"]
    assert entry["train_times"][1] == "2051-06-01T00:00:00" and entry["latitudes"] == [60.0, -1.25]
    splits = manifest["splits"]
    assert splits["train"]["patch_columns"] == ["stack", "step", "row", "col"]
    assert max(p[1] for p in splits["train"]["patches"]) < 192 <= min(p[1] for p in splits["test"]["patches"])
    # An HR patch is the file's grid at its step (rows north to south), its LR the block mean of it.
    values = sample("A1B_north_america.nc").air_temperature.values[:, ::-1]
    _, step, row, col = splits["test"]["patches"][0]
    hr = np.load(dest / "test_hr.npy")[0, ..., 0]
    np.testing.assert_allclose(hr, values[step, row : row + 16, col : col + 16])
    lr = np.load(dest / "test_sr4.npy")[0, ..., 0]
    np.testing.assert_allclose(lr, hr.reshape(4, 4, 4, 4).mean(axis=(1, 3)), rtol=1e-6)
    before = mtimes(dest)
    download.main(args)
    assert "up to date (seed 0, 64/30, 16x16 cells)" in capsys.readouterr().out and mtimes(dest) == before


def test_ostia_land_is_nodata_and_a_held_out_scenario_is_tested_on_its_last_steps(tmp_path):
    download.main(["climate", "--file", "ostia", "--out", str(tmp_path), "--train", "40", "--test", "500"])
    manifest = check_files(tmp_path / "climate")
    values = sample("ostia_monthly.nc").surface_temperature.values[:, ::-1]  # latitudes ascend in the file
    mask = np.load(tmp_path / "climate" / "test_mask.npy")[..., 0].astype(bool)
    for i, (_, step, row, col) in enumerate(manifest["splits"]["test"]["patches"]):
        assert (mask[i] == np.isfinite(values[step, row : row + 16, col : col + 16])).all()
    assert not mask.all()  # coasts: land cells masked in some test patches
    assert manifest["stacks"][0]["test_steps"] == [43, 54] and manifest["stacks"][0]["calendar"] == "gregorian"

    download.main(["climate", "--test-file", "E1", "--name", "scenarios", "--out", str(tmp_path), "--train", "40"])
    manifest = check_files(tmp_path / "scenarios")
    assert manifest["split"]["test_files"] == ["E1_north_america.nc"]
    names = manifest["splits"]["train"]["stacks"]
    assert {names[p[0]] for p in manifest["splits"]["train"]["patches"]} == {"A1B_north_america.nc"}
    assert {names[p[0]] for p in manifest["splits"]["test"]["patches"]} == {"E1_north_america.nc"}
    assert max(p[1] for p in manifest["splits"]["train"]["patches"]) < 192  # A1B = E1 up to 1999: not trained on
    assert min(p[1] for p in manifest["splits"]["test"]["patches"]) >= 192


def write_stack(path: Path, steps: int = 10, calendar: str = "noleap") -> np.ndarray:
    """A small CF NetCDF stack (time, lat, lon) of temperatures with a nodata corner; its values north-up."""
    import xarray as xr

    rng = np.random.default_rng(steps)
    values = (280 + rng.normal(size=(steps, 24, 40))).astype(np.float32)
    values[:, :4, :4] = np.nan
    time = ("time", np.arange(steps) * 24.0, {"units": "hours since 2000-01-01", "calendar": calendar})
    coords = {"time": time, "lat": ("lat", np.linspace(50, 40, 24), {"units": "degrees_north"})}
    coords["lon"] = ("lon", np.linspace(0, 15, 40), {"units": "degrees_east"})
    attrs = {"units": "K", "standard_name": "air_temperature"}
    xr.Dataset({"tas": (("time", "lat", "lon"), values, attrs)}, coords=coords).to_netcdf(path)
    return values


def test_a_folder_of_stacks_is_split_in_time_and_a_folder_with_single_grids_needs_kind(tmp_path, capsys):
    folder = tmp_path / "era"
    folder.mkdir()
    write_stack(folder / "a.nc")
    write_stack(folder / "b.nc", steps=5)
    out = tmp_path / "out"
    download.main(["--folder", str(folder), "--out", str(out), "--train", "30", "--test", "50"])
    manifest = check_files(out / "folder-era")
    steps = {e["name"]: (e["train_steps"], e["test_steps"], e["test_times"]) for e in manifest["stacks"]}
    assert steps == {
        "a.nc": ([0, 8], [8, 10], ["2000-01-09T00:00:00", "2000-01-10T00:00:00"]),
        "b.nc": ([0, 4], [4, 5], ["2000-01-05T00:00:00", "2000-01-05T00:00:00"]),
    }
    assert len(manifest["splits"]["test"]["patches"]) == 3 * 2  # 1 x 2 tiles of 16 in 24 x 40 cells, 3 test steps

    np.save(folder / "grid.npy", np.ones((40, 40), np.float32))
    with pytest.raises(util.UserError, match=r"holds 1 raster\(s\) \(grid.npy\) and 2 stack\(s\) \(a.nc, b.nc\); "):
        download.main(["--folder", str(folder), "--out", str(out)])
    download.main(["--folder", str(folder), "--out", str(out), "--kind", "stack", "--train", "30", "--test", "50"])
    assert "1 raster(s) (grid.npy) are left out" in capsys.readouterr().err


def _write_level_stack(path: Path) -> np.ndarray:
    """ERA5 on pressure levels as grib_to_netcdf writes it: t (time, level, latitude, longitude), hourly,
    levels 500, 850, 1000 in millibars, 0.25 degree cells, latitudes descending; its values."""
    import xarray as xr

    rng = np.random.default_rng(0)
    values = (250 + rng.normal(size=(5, 3, 24, 40))).astype(np.float32)
    values[:, 1] += 30  # 850 hPa, warmer than the levels beside it
    coords = {"time": ("time", np.arange(5.0), {"units": "hours since 2019-01-01", "calendar": "standard"})}
    coords["level"] = ("level", [500, 850, 1000], {"units": "millibars", "long_name": "pressure_level"})
    coords |= {"latitude": ("latitude", np.linspace(60, 54.25, 24)), "longitude": ("longitude", np.arange(40) / 4)}
    variable = (("time", "level", "latitude", "longitude"), values, {"units": "K"})
    xr.Dataset({"t": variable}, coords=coords).to_netcdf(path)
    return values


def test_a_folder_of_4d_stacks_takes_level(tmp_path):
    folder = tmp_path / "pl"
    folder.mkdir()
    values = _write_level_stack(folder / "era5.nc")
    out = tmp_path / "out"
    with pytest.raises(util.UserError, match=r"era5.nc: t has 3 levels along level \(500, 850, 1000\); give --level"):
        download.main(["--folder", str(folder), "--out", str(out), "--variable", "t"])
    download.main(["--folder", str(folder), "--out", str(out), "--level", "850", "--train", "30", "--test", "50"])
    manifest = check_files(out / "folder-pl")
    assert manifest["settings"]["read"]["level"] == "850" and manifest["stacks"][0]["test_steps"] == [4, 5]
    hr = np.load(out / "folder-pl" / "test_hr.npy")
    for tile, (_, step, row, col) in zip(hr, manifest["splits"]["test"]["patches"], strict=True):
        np.testing.assert_allclose(tile[..., 0], values[step, 1, row : row + 16, col : col + 16], atol=1e-4)


def test_the_hourly_era5_study_fetches_its_file_from_the_sdist_and_download_takes_its_level(
    tmp_path, http_server, fast_retries, monkeypatch
):
    import hashlib
    import io
    import tarfile

    from studies import era5_hourly

    source = tmp_path / "src"
    source.mkdir()
    era5 = source / "era5.nc"
    _write_level_stack(era5)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(era5, arcname=era5_hourly.MEMBERS["met-20190101-eu.nc"])
    sdist = buffer.getvalue()
    url = http_server.add("/packages/" + era5_hourly.SDIST, sdist)
    http_server.cut_once.add("/packages/" + era5_hourly.SDIST)  # the transfer resumes
    monkeypatch.setattr(era5_hourly, "URL", url)
    monkeypatch.setattr(era5_hourly, "SHA256", "sha256:" + hashlib.sha256(sdist).hexdigest())
    out = tmp_path / "era5h"
    era5_hourly.main(["--out", str(out), "--downloads", str(tmp_path / "downloads")])
    assert (out / "met-20190101-eu.nc").read_bytes() == era5.read_bytes()
    assert [status for _, byte_range, status in http_server.requests if byte_range] == [206]  # resumed once
    download.main(["--folder", str(out), "--out", str(tmp_path / "ds"), "--level", "850", "--train", "30"])
    assert check_files(tmp_path / "ds" / "folder-era5h")["stacks"][0]["train_steps"] == [0, 4]


@pytest.fixture(scope="module")
def tiny_climate(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datasets")
    download.main(["climate", "--out", str(out), "--train", "56", "--test", "12"])
    return out / "climate"


def test_a_tiny_climate_run_trains_through_stack_pairs_and_fine_tunes(tiny_climate, tmp_path):
    import edsr_lite
    from util.data.pairs import StackPairs, open_pairs
    from util.models.loading import load_model

    assert type(open_pairs(str(tiny_climate))) is StackPairs
    first = edsr_lite.main(["--dataset", str(tiny_climate), "--out", str(tmp_path / "a"), "--task", "sr2", *TINY])
    results = json.loads((first / "results.json").read_text())
    assert results["data_kind"] == "stack" and results["units"] == "K" and "split in time" in results["protocol"]
    assert results["settings"]["augment"] == ["mirror", "amplitude"]
    assert "air_temperature" in results["slope_left_out"]
    scores = results["raster_scores"]
    assert {"bicubic", "mean-preserving bicubic", "cubic spline", "model"} <= set(scores)
    assert all("slope_rmse" not in s and 0 < s["rmse"] < 5 for s in scores.values())  # kelvin, no slope
    assert "lat_weighted_rmse" in scores["model"]  # latitudes of the test patches from the manifest
    second = edsr_lite.main(
        ["--dataset", str(tiny_climate), "--out", str(tmp_path / "b"), "--task", "sr2", *TINY[:2]]
        + ["--backprops", "8", "--epochs", "1", "--learning-rate", "1e-9", "--ema", "0"]
        + ["--init-from", str(first / "model.keras")]
    )
    for a, b in zip(
        load_model(first / "model.keras")[0].get_weights(),
        load_model(second / "model.keras")[0].get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-5)  # a learning rate of 1e-9 leaves the saved weights


def test_rotations_of_a_latitude_longitude_grid_are_refused(tiny_climate, tmp_path):
    import edsr_lite

    with pytest.raises(util.UserError, match=r"flips turns .* A1B_north_america.nc's latitude-longitude grid"):
        edsr_lite.main(["--dataset", str(tiny_climate), "--out", str(tmp_path), "--augment", "flips"])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["climate", "--file", "bogus"], "--file bogus: not a climate sample file; give one of A1B_north_america.nc"),
        (["climate", "--test-file", "A1B"], "--test-file A1B_north_america.nc: holds out every stack of climate"),
        (["climate", "--file", "ostia", "--patch", "32"], "18x432 cells, smaller than a 32x32 patch); give other"),
        (["climate", "--band", "2"], "--band 2: climate is stacks, whose bands are time steps; drop it"),
        (["dem", "--test-file", "x.nc"], "--test-file: only for stacks, and dem is rasters; drop it"),
        (["dem", "--level", "850"], "--level: only for stacks, and dem is rasters; drop it"),
        (["benchmarks", "--level", "850"], "benchmarks takes no --level: it fetches the evaluation sets whole"),
        (["benchmarks", "--file", "E1"], "benchmarks takes no --file: it fetches the evaluation sets whole"),
        (["dem", "--file", "E1"], "--file: only for climate, not dem; drop them"),
        (
            ["--folder", "{stacks}", "--test-file", "c.nc"],
            "--test-file c.nc: not among the stacks of folder-stacks (a.nc)",
        ),
        (["--folder", "{one_step}"], "a.nc: one time step, nothing to split in time; use it as a single grid"),
    ],
)
def test_bad_stack_inputs_are_one_line(tmp_path, argv, message):
    for name, steps in (("stacks", 6), ("one_step", 1)):
        (tmp_path / name).mkdir()
        write_stack(tmp_path / name / "a.nc", steps=steps)
    argv = [arg.format(stacks=tmp_path / "stacks", one_step=tmp_path / "one_step") for arg in argv]
    with pytest.raises(util.UserError) as error:
        download.main([*argv, "--out", str(tmp_path / "out")])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_level_that_no_stack_has_is_refused_without_the_patch_advice(tmp_path):
    folder = tmp_path / "tas"
    folder.mkdir()
    write_stack(folder / "a.nc")
    with pytest.raises(util.UserError) as error:
        download.main(["--folder", str(folder), "--out", str(tmp_path / "out"), "--level", "850"])
    assert str(error.value).endswith("(a.nc: tas has no level dimension; drop --level 850); give other stacks")


def test_a_data_set_of_3d_stacks_has_the_settings_it_had_before_stacks_had_levels():
    from download_module import stack_pairs

    assert stack_pairs._read_settings(None) == {"variable": None, "nodata": None}
    assert stack_pairs._read_settings({"variable": "t", "nodata": None, "level": "850"})["level"] == "850"
    assert "level" not in stack_pairs._read_settings({"variable": "t", "nodata": None, "level": None})


def test_time_cut_keeps_a_step_on_each_side():
    from download_module import stack_pairs

    assert [stack_pairs.time_cut(n) for n in (2, 5, 10, 240)] == [1, 4, 8, 192]


@pytest.mark.parametrize("scale", [4, 2])
def test_the_shipped_climate_model_beats_cubic_spline_on_a_scenario_it_never_saw(scale):
    """assets/models/climate_x<s>.keras (A1B, 1860-2051) on E1's last 12 years, whole grids: the rule to ship it."""
    iris_sample_data = pytest.importorskip("iris_sample_data")
    from util.evaluation.raster_eval import evaluate_raster_files
    from util.inference.raster_enhance import enhance_raster_array
    from util.models.loading import load_model

    model, info = load_model(REPO / "assets" / "models" / f"climate_x{scale}.keras")
    e1 = Path(iris_sample_data.path) / "E1_north_america.nc"
    result = evaluate_raster_files(
        [e1], scale, lambda lr: enhance_raster_array(model, info, lr), {"steps": "228:", "variable": "air_temperature"}
    )
    scores = {name: score["rmse"] for name, score in result["pooled"].items()}
    assert result["rasters"][0]["steps"] == [228, 240]
    # Over 2052-2099: x4 0.377 K against 0.863, x2 0.174 against 0.328.
    assert scores["model"] < 0.65 * scores["cubic spline"], scores


def test_enhance_gives_stacks_the_shipped_climate_model_and_single_grids_the_dem_model(tmp_path, monkeypatch):
    """A folder of a DEM GeoTIFF and a temperature stack: each with the shipped model of its kind, in one run."""
    import json as json_module

    import rasterio
    import xarray as xr
    from affine import Affine
    from rasterio.crs import CRS

    import enhance

    folder = tmp_path / "inputs"
    folder.mkdir()
    write_stack(folder / "tas.nc", steps=3)
    heights = (1500 + 30 * np.sin(np.arange(32 * 32).reshape(32, 32) / 40)).astype(np.float32)
    profile = dict(driver="GTiff", count=1, height=32, width=32, dtype="float32", crs=CRS.from_epsg(32613))
    with rasterio.open(folder / "dem.tif", "w", transform=Affine(30, 0, 480000, 0, -30, 4430000), **profile) as dst:
        dst.write(heights[None])
    enhance.main([str(folder), "--quiet", "--runtime", "keras"])
    with xr.open_dataset(tmp_path / "inputs_x4" / "tas_x4.nc") as stack:
        assert json_module.loads(stack.attrs["provenance"])["model"] == "climate_x4.keras"
        assert stack["tas"].shape == (3, 96, 160)
    with rasterio.open(tmp_path / "inputs_x4" / "dem_x4.tif") as dem:
        assert dem.tags(ns="PROVENANCE")["model"] == "dem_x4.keras" and dem.shape == (128, 128)
    monkeypatch.setattr(enhance, "MODELS", tmp_path / "no_models")
    with pytest.raises(util.UserError, match=r"--scale 2: no shipped model of that scale for time stacks .*--model"):
        enhance.main([str(folder / "tas.nc"), "--scale", "2", "--quiet"])
