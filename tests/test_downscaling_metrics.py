"""The scores of a downscaling (issue 31.4): each against a hand-checkable case, and slope for elevations only."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

import evaluate
import util

DEM_KEYS = ["rmse", "mae", "bias", "slope_rmse", "psnr", "cells"]


def temperatures(height=48, width=64) -> np.ndarray:
    """float32 (height, width) smooth air temperature in K: waves on a gradient cooling by 0.3 K a row."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (288 + 10 * np.sin(cols / 7) + 6 * np.cos(rows / 5) - 0.3 * rows).astype(np.float32)


def test_mean_preserving_bicubic_keeps_the_lr_block_means_and_bicubic_does_not():
    from util.evaluation.raster_metrics import block_mean, upsample_bicubic, upsample_bicubic_mean_preserving

    lr = np.random.default_rng(0).normal(280.0, 5.0, (6, 9))
    for scale in (2, 4):
        output = upsample_bicubic_mean_preserving(lr, scale)
        assert output.dtype == np.float32 and output.shape == (6 * scale, 9 * scale)
        means = block_mean(output, scale, dtype=np.float64)[0]
        np.testing.assert_allclose(means, lr, rtol=0, atol=np.spacing(np.float32(300.0)))  # float32 rounding
        assert np.abs(block_mean(upsample_bicubic(lr, scale), scale)[0] - lr).max() > 0.1


def test_conservation_rmse_of_fields_whose_block_means_are_known():
    from util.evaluation.raster_metrics import conservation_rmse

    lr = np.array([[280.0, 285.0], [290.0, 295.0]])
    checker = np.array([[1.0, -1.0], [-1.0, 1.0]])  # zero mean in every 2 x 2 block
    hr = np.kron(lr, np.ones((2, 2))) + np.tile(checker, (2, 2))
    assert conservation_rmse(hr, lr) == 0.0
    assert conservation_rmse(hr + 0.5, lr) == pytest.approx(0.5)
    valid = np.ones(hr.shape, bool)
    valid[1, 1] = False  # block (0, 0) then holds 281, 279, 279: mean 279.667, one third below 280
    errors = np.array([-1 / 3, 0, 0, 0])
    assert conservation_rmse(hr, lr, valid) == pytest.approx(np.sqrt(np.mean(errors**2)))
    valid[:2, :2] = False  # a block without a valid cell does not count
    assert conservation_rmse(hr, lr, valid) == 0.0


def test_correlation_is_1_with_itself_and_a_rescaled_copy_and_minus_1_with_its_negation():
    from util.evaluation.raster_metrics import correlation

    field = temperatures(16, 16)
    assert correlation(field, field) == pytest.approx(1.0)
    assert correlation(2 * field + 5, field) == pytest.approx(1.0)
    assert correlation(-field, field) == pytest.approx(-1.0)
    valid = np.ones(field.shape, bool)
    valid[:4] = False
    spoiled = np.where(valid, field, 1e6)  # junk in the nodata rows does not count
    assert correlation(spoiled, field, valid) == pytest.approx(1.0)
    assert np.isnan(correlation(np.ones_like(field), field))


def test_the_power_spectrum_of_a_sine_peaks_at_its_wavenumber_and_small_scales_hold_fast_waves_only():
    from util.evaluation.raster_metrics import radial_power_spectrum, small_scale_variance

    cols = np.arange(64)[None, :] * np.ones((64, 1))
    slow = np.sin(2 * np.pi * 8 * cols / 64)  # 8 cycles in 64 cells: 0.125 cycle per cell
    wavenumbers, power = radial_power_spectrum(slow)
    assert len(wavenumbers) == 32 and wavenumbers[np.argmax(power)] == pytest.approx(0.125)
    fast = np.sin(2 * np.pi * 0.4 * cols)  # wavelength 2.5 cells, in the highest third of the wavenumbers
    assert small_scale_variance(fast) == pytest.approx(0.5, rel=0.02)  # a sine's variance
    assert small_scale_variance(slow) < 1e-6


def test_latitude_weighted_rmse_on_a_two_row_grid():
    from util.evaluation.raster_metrics import latitude_weighted_rmse

    error = np.array([[1.0, 1.0], [2.0, 2.0]])  # row 0 on the equator, row 1 at 60 degrees: cos = 1, 1/2
    target = np.zeros((2, 2))
    valid = np.ones((2, 2), bool)
    assert latitude_weighted_rmse(error, target, valid, np.array([0.0, 60.0])) == pytest.approx(np.sqrt(2.0))
    assert latitude_weighted_rmse(error, target, valid, np.array([0.0, 0.0])) == pytest.approx(np.sqrt(2.5))


def test_cell_error_maps_over_a_stack_of_steps():
    from util.evaluation.raster_metrics import cell_error_maps

    targets = np.zeros((3, 2, 2))
    predicted = np.array([[[1, 1], [0, 5]], [[-1, 3], [0, 5]], [[1, 3], [0, 5]]], float)
    valid = np.ones(targets.shape, bool)
    valid[0, 0, 1] = False  # cell (0, 1) counts in steps 1 and 2 only
    valid[:, 1, 1] = False  # cell (1, 1) never counts
    rmse, bias = cell_error_maps(predicted, targets, valid)
    np.testing.assert_allclose(rmse[:, :1], [[1.0], [0.0]])
    np.testing.assert_allclose(bias[:, :1], [[1 / 3], [0.0]])
    assert rmse[0, 1] == pytest.approx(3.0) and bias[0, 1] == pytest.approx(3.0)
    assert np.isnan(rmse[1, 1]) and np.isnan(bias[1, 1])


def test_slope_applies_to_elevations_by_quantity_standard_name_or_length_units():
    from util.evaluation.raster_metrics import not_elevation

    for units in ("m", "metres", "km", "ft", " M "):
        assert not_elevation(units) == "", units
    assert not_elevation("K") == "its units are 'K', not a length, so it is not an elevation"
    assert "not a length" in not_elevation("degC")
    assert not_elevation("m", standard_name="surface_altitude") == ""
    assert "'lwe_thickness_of_precipitation_amount'" in not_elevation(
        "m", standard_name="lwe_thickness_of_precipitation_amount"
    )
    assert not_elevation("K", quantity="elevation") == ""
    assert "quantity is 'temperature'" in not_elevation("m", quantity="temperature")


def test_scores_of_other_quantities_leave_out_the_slope_and_those_of_dems_keep_their_keys():
    from util.evaluation.raster_metrics import block_mean, raster_scores

    hr = np.stack([temperatures(32, 32), temperatures(32, 32)[::-1]]).astype(np.float64)
    valid = np.ones(hr.shape, bool)
    cells = np.full((2, 2), 1000.0)
    dem = raster_scores(hr + 0.1, hr, valid, cells)
    assert list(dem) == DEM_KEYS
    lr = block_mean(hr, 4)[0]
    other = raster_scores(hr + 0.1, hr, valid, cells, lr, np.full((2, 32), 60.0), elevation=False)
    assert "slope_rmse" not in other
    assert other["rmse"] == pytest.approx(0.1) and other["correlation"] == pytest.approx(1.0)
    assert other["conservation_rmse"] == pytest.approx(0.1, abs=1e-4)
    assert other["small_scale_power_ratio"] == pytest.approx(1.0)
    assert other["lat_weighted_rmse"] == pytest.approx(0.1)
    assert "lat_weighted_rmse" not in raster_scores(hr, hr, valid, cells, lr, elevation=False)


def run_evaluate(capfd, tmp_path, source, *extra) -> tuple[dict, str]:
    """evaluate.py --model bicubic --scale 2 on one raster: (its JSON, stdout)."""
    capfd.readouterr()
    argv = ["--model", "bicubic", "--scale", "2", "--data", str(source), "--out", str(tmp_path), *map(str, extra)]
    code = util.run_cli(evaluate.main, argv)
    out, err = capfd.readouterr()
    assert code == 0, err
    return json.loads((tmp_path / f"eval_{source.stem}_sr2.json").read_text()), out


def test_a_temperature_raster_has_no_slope_and_gets_the_downscaling_scores_while_a_dem_keeps_its_slope(tmp_path, capfd):
    source = tmp_path / "tas.nc"
    lats, lons = 60.0 - 0.25 * np.arange(48), -10.0 + 0.25 * np.arange(64)
    xr.Dataset(
        {"tas": (("lat", "lon"), temperatures(), {"units": "K", "standard_name": "air_temperature"})},
        coords={"lat": ("lat", lats, {"units": "degrees_north"}), "lon": ("lon", lons, {"units": "degrees_east"})},
    ).to_netcdf(source)
    result, out = run_evaluate(capfd, tmp_path, source)
    pooled = result["pooled"]
    assert list(pooled) == ["bicubic", "mean-preserving bicubic", "cubic spline"]
    assert all("slope_rmse" not in scores for scores in pooled.values())
    assert "slope" not in out.split("## tas sr2")[1].split("slope RMSE left out")[0]  # the table
    assert out.count("slope RMSE left out") == 1 and "standard_name is 'air_temperature'" in out
    assert "| RMSE, cos(latitude)-weighted (K) |" in out and "| spatial correlation |" in out
    assert pooled["mean-preserving bicubic"]["conservation_rmse"] < 1e-4 < pooled["bicubic"]["conservation_rmse"]
    assert pooled["bicubic"]["correlation"] > 0.99 and pooled["bicubic"]["lat_weighted_rmse"] > 0
    assert (tmp_path / "eval_tas_sr2.png").stat().st_size > 0

    np.save(tmp_path / "dem.npy", temperatures() * 10)  # no units: metres, an elevation
    result, out = run_evaluate(capfd, tmp_path, tmp_path / "dem.npy", "--cell-size", 30)
    assert list(result["pooled"]) == ["bicubic", "cubic spline"]
    assert list(result["pooled"]["bicubic"]) == DEM_KEYS and "| slope RMSE (degrees) |" in out
    assert "slope RMSE left out" not in out and "correlation" not in out


def test_a_folder_of_elevations_and_temperatures_is_refused_in_one_line(tmp_path, capfd):
    np.save(tmp_path / "a_dem.npy", temperatures() * 10)
    xr.Dataset({"tas": (("y", "x"), temperatures(), {"units": "K"})}).to_netcdf(tmp_path / "b_tas.nc")
    capfd.readouterr()
    argv = ["--model", "bicubic", "--scale", "2", "--data", str(tmp_path), "--out", str(tmp_path / "out")]
    code = util.run_cli(evaluate.main, argv)
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert "b_tas.nc: its units are 'K', not a length, so it is not an elevation, unlike" in lines[0]


@pytest.fixture(scope="module")
def temperature_pairs(tmp_path_factory):
    """A raster data set of air temperature in K in download.py's layout, its test patches at known latitudes."""
    folder = tmp_path_factory.mktemp("datasets") / "tas"
    folder.mkdir()
    field, patch = temperatures(96, 96), 32
    tiles = [(0, 0), (32, 32), (64, 0)]
    hr = np.stack([field[r : r + patch, c : c + patch] for r, c in tiles])[..., None]
    mask = np.ones(hr.shape, np.uint8)
    mask[0, :4, :6] = 0  # whole 2 x 2 blocks: the LR cells there are not scored
    np.save(folder / "test_hr.npy", hr)
    np.save(folder / "test_sr2.npy", hr.reshape(3, 16, 2, 16, 2, 1).mean(axis=(2, 4)).astype(np.float32))
    np.save(folder / "test_mask.npy", mask)
    np.save(folder / "test_cell.npy", np.tile(np.float32([27800.0, 19600.0]), (3, 1)))
    manifest = {
        "kind": "raster",
        "units": "K",
        "standard_name": "air_temperature",
        "rasters": [{"name": "tas.nc", "latitudes": [45.0, -0.25]}],
        "splits": {"test": {"rasters": ["tas.nc"], "patches": [[0, r, c] for r, c in tiles]}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_test_pairs_of_temperatures_score_without_slope_and_report_it_in_one_note(temperature_pairs, tmp_path):
    import edsr_lite
    from util.evaluation import report
    from util.evaluation.pair_scores import latitudes_of_test_patches, score_raster_test_pairs
    from util.models.layers import raster_model

    manifest = json.loads((temperature_pairs / "manifest.json").read_text())
    lats = latitudes_of_test_patches(manifest, 3, 32)
    np.testing.assert_allclose(lats[1, [0, -1]], [45.0 - 0.25 * 32, 45.0 - 0.25 * 63])

    model = raster_model(edsr_lite.build_model("sr2", channels=1), value_scale=5.0)
    settings = SimpleNamespace(task="sr2", test_patches=0)
    meta = {"model": "edsr_lite", "task": "sr2", "dataset": "tas"}
    results = score_raster_test_pairs(model, settings, temperature_pairs, tmp_path, meta)
    scores = results["raster_scores"]
    assert list(scores) == ["bicubic", "mean-preserving bicubic", "cubic spline", "model"]
    assert all("slope_rmse" not in s and np.isfinite(s["lat_weighted_rmse"]) for s in scores.values())
    assert scores["mean-preserving bicubic"]["conservation_rmse"] < 1e-4
    assert "air_temperature" in results["slope_left_out"]
    text = report.results_markdown(results, tmp_path / "results.md")
    assert "slope RMSE (degrees)" not in text and text.count("Slope RMSE left out") == 1
    line = report.summary_line(results)
    assert "slope" not in line and "bicubic RMSE" in line and " K / r " in line
    for name in ("comparison.png", "cell_errors.png"):
        assert (tmp_path / name).stat().st_size > 0

    dem = {"rmse": 1.5, "mae": 1.0, "bias": 0.1, "slope_rmse": 2.25, "psnr": 40.0, "cells": 10}
    results = {"model": "m", "task": "sr4", "dataset": "dem", "n_test": 2, "units": "m"}
    results["raster_scores"] = {"bicubic": dem, "model": dem}
    assert report.summary_line(results) == (
        "m sr4 on dem: 2 test patches, bicubic RMSE 1.500 m / slope 2.25 deg, model RMSE 1.500 m / slope 2.25 deg"
    )


def test_scores_in_small_units_keep_three_significant_digits_and_metres_keep_three_decimals():
    from util.evaluation import report

    def scores(rmse, bias):
        return {"rmse": rmse, "mae": rmse / 2, "bias": bias, "correlation": 0.99, "conservation_rmse": 0.0}

    humidity = {"cubic spline": scores(0.000178, 5.05e-7), "model": scores(0.000103, -6.3e-7)}  # kg/kg
    rows = "\n".join(report.raster_rows(humidity, "kg kg**-1"))
    assert "| RMSE (kg kg**-1) | 0.000178 | 0.000103 |" in rows
    assert "| bias (kg kg**-1) | 0.000001 | -0.000001 |" in rows  # the RMSE's decimals, not the bias's own
    results = {"model": "m", "task": "sr4", "dataset": "q", "n_test": 2, "units": "kg kg**-1"}
    results["raster_scores"] = humidity
    assert "cubic spline RMSE 0.000178 kg kg**-1 / r 0.9900, model RMSE 0.000103 kg kg**-1" in report.summary_line(
        results
    )
    import evaluate

    row = {"file": "q.nc", "shape": [101, 129], "cell_m": [27795.1, 18835.9], "scores": humidity}
    assert evaluate.file_line(row).endswith("RMSE cubic spline 0.000178, model 0.000103")
    assert report.in_units([1e-30]) == ["0.000000000000"]  # 12 decimals at most
    metres = "\n".join(report.raster_rows({"bicubic": scores(5.5561, 0.02), "model": scores(0.0123, 0.0)}, "m"))
    assert "| RMSE (m) | 5.556 | 0.012 |" in metres and "| bias (m) | 0.020 | 0.000 |" in metres


def temperature_stack(path, steps=5, height=24, width=32):
    """A CF NetCDF (time, lat, lon) of ``steps`` years of temperatures in a 360-day calendar, warming 0.5 K a step."""
    lats, lons = 60.0 - 1.25 * np.arange(height), -130.0 + 1.875 * np.arange(width)
    values = np.stack([temperatures(height, width) + 0.5 * t for t in range(steps)])
    values[:, :3, :4] = np.nan  # land in the north-west corner: nodata
    xr.Dataset(
        {"tas": (("time", "lat", "lon"), values, {"units": "K", "standard_name": "air_temperature"})},
        coords={
            "time": ("time", 180.0 + 360 * np.arange(steps), {"units": "days since 2000-01-01", "calendar": "360_day"}),
            "lat": ("lat", lats, {"units": "degrees_north"}),
            "lon": ("lon", lons, {"units": "degrees_east"}),
        },
    ).to_netcdf(path)
    return path


def test_a_stack_is_scored_step_by_step_on_whole_grids_with_cell_maps_and_steps_chosen(tmp_path, capfd):
    source = temperature_stack(tmp_path / "tas.nc")
    result, out = run_evaluate(capfd, tmp_path, source, "--steps", "3:")
    (row,) = result["rasters"]
    assert row["steps"] == [3, 5] and row["step_count"] == 2 and row["shape"] == [2, 24, 32]
    assert row["times"] == ["2003-07-01T00:00:00", "2004-07-01T00:00:00"] and row["calendar"] == "360_day"
    assert "2 whole grids of 24x32: steps 3:5, 2003-07-01 to 2004-07-01" in out and "Its steps pooled:" in out
    # pooled over the two steps: each step's own score, cell for cell (the +0.5 K shift changes nothing)
    one, _ = run_evaluate(capfd, tmp_path / "one", source, "--steps", "3:4")
    assert result["pooled"]["bicubic"]["cells"] == 2 * one["pooled"]["bicubic"]["cells"] > 0
    assert result["pooled"]["bicubic"]["rmse"] == pytest.approx(one["pooled"]["bicubic"]["rmse"], rel=1e-5)
    assert (tmp_path / "eval_tas_sr2_cells.png").stat().st_size > 0  # per-cell RMSE and bias over the steps
    all_steps, _ = run_evaluate(capfd, tmp_path / "all", source)  # a stack without --steps: all of them
    assert all_steps["rasters"][0]["steps"] == [0, 5]


def test_stack_flags_are_refused_in_one_line_where_they_do_not_apply(tmp_path, capfd):
    source = temperature_stack(tmp_path / "tas.nc")
    np.save(tmp_path / "dem.npy", temperatures() * 10)
    for data, extra, expected in (
        (source, ["--band", "2"], "tas.nc: a stack (a grid at several times); choose its steps with --steps"),
        (source, ["--steps", "7:"], "tas.nc: --steps 7: is outside its 5 steps"),
        (tmp_path / "dem.npy", ["--steps", "0:1"], "dem.npy: not a stack file"),
        (source, ["--tile", "4"], "--ensemble / --tile / --overlap / --aux apply to a model, not to bicubic"),
    ):
        capfd.readouterr()
        argv = ["--model", "bicubic", "--scale", "2", "--data", str(data), "--out", str(tmp_path), *extra]
        code = util.run_cli(evaluate.main, argv)
        lines = capfd.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and expected in lines[0], lines
