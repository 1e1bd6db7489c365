"""CONSERVE (issue 31.4): the block-mean correction layer, raster models built with it, and its refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_pairs

import download
import util

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--filters", "8", "--blocks", "1", "--precision", "float32"]


@pytest.fixture(scope="module")
def tiny_climate(tmp_path_factory) -> Path:
    """A1B air temperature from iris-sample-data, 16x16-cell patches split in time (download.py climate)."""
    out = tmp_path_factory.mktemp("datasets")
    download.main(["climate", "--out", str(out), "--train", "24", "--test", "12"])
    return out / "climate"


def block_means(grid: np.ndarray, scale: int) -> np.ndarray:
    """(N, H, W, C) -> (N, H/s, W/s, C), in float64: what conservation is measured against."""
    n, h, w, c = grid.shape
    return grid.astype(np.float64).reshape(n, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))


def conserving_model(tiny_climate: Path, conserve=True, seed=0):
    """edsr_lite's raster model for sr4 from the data handle, its weights perturbed (not the zero-output bicubic)."""
    import edsr_lite
    from util.data.pairs import open_pairs
    from util.training.roles import MODEL_SCRIPTS

    argv = ["--dataset", str(tiny_climate), "--task", "sr4", *SMALL, "--conserve" if conserve else "--no-conserve"]
    settings, _ = MODEL_SCRIPTS["edsr_lite"].settings(argv)
    assert settings.conserve is conserve and edsr_lite.build_model
    model = open_pairs(str(tiny_climate)).model_for(edsr_lite.build_model, settings, value_scale=5.0, units="K")
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model, settings


def a1b_last_year() -> np.ndarray:
    """float32 (37, 49) air temperature in K: the last step of iris-sample-data's A1B_north_america.nc."""
    import iris_sample_data
    import xarray as xr

    path = Path(iris_sample_data.path) / "A1B_north_america.nc"
    with xr.open_dataset(path, decode_times=False) as data:
        return data["air_temperature"].values[-1].astype(np.float32)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_the_layer_makes_each_block_mean_the_lr_cell_within_float32_rounding(scale):
    from util.models.layers import ConserveBlockMean

    rng = np.random.default_rng(scale)
    for h, w, channels in [(1, 1, 1), (3, 5, 1), (7, 4, 3)]:
        output = rng.normal(280.0, 10.0, (2, h * scale, w * scale, channels)).astype(np.float32)
        lr = rng.normal(280.0, 10.0, (2, h, w, channels)).astype(np.float32)
        corrected = np.asarray(ConserveBlockMean(scale)([output, lr]))
        assert corrected.shape == output.shape and corrected.dtype == np.float32
        ulp = np.spacing(np.float32(np.abs(corrected).max()))
        np.testing.assert_allclose(block_means(corrected, scale), lr, rtol=0, atol=ulp)
        # One constant added per block: the detail within each block is the network's.
        shift = (corrected.astype(np.float64) - output).reshape(2, h, scale, w, scale, channels)
        assert np.ptp(shift, axis=(2, 4)).max() <= 2 * ulp
    assert ConserveBlockMean.from_config(ConserveBlockMean(scale).get_config()).scale == scale


def test_a_conserving_raster_model_scores_zero_conservation_on_real_grids_and_in_tiles(tiny_climate):
    from util.data.pipelines import load_raster_split
    from util.evaluation.raster_metrics import block_mean, conservation_rmse
    from util.inference.raster_enhance import enhance_raster_array, predict_raster_patches
    from util.models.layers import model_info

    lr, hr, mask, _ = load_raster_split(tiny_climate, "sr4", "test")  # the last A1B years, in K
    scores = {}
    for conserve in (True, False):
        model, _ = conserving_model(tiny_climate, conserve)
        info = model_info(model)
        assert info["conserve"] is conserve
        outputs = predict_raster_patches(model, info, lr)[..., 0]
        scores[conserve] = conservation_rmse(outputs, lr[..., 0], mask[..., 0].astype(bool))
        assert 0 < np.sqrt(np.mean((outputs - hr[..., 0]) ** 2)) < 5
    assert scores[True] < 1e-4 < 0.01 < scores[False]  # kelvin

    # The last year of A1B (36 x 48 of its 37 x 49 cells) whole, in overlapping tiles of 4 LR cells.
    model, _ = conserving_model(tiny_climate)
    grid = a1b_last_year()[:36, :48]
    coarse = block_mean(grid, 4)[0]
    output = enhance_raster_array(model, model_info(model), coarse, tile=4, overlap=2)
    assert conservation_rmse(output, coarse) < 1e-4
    pixelwise = {**model_info(model), "conserve": False}  # blend weights that vary within a block
    assert conservation_rmse(enhance_raster_array(model, pixelwise, coarse, tile=4, overlap=2), coarse) > 1e-3


def test_a_conserving_model_saves_loads_and_exports_as_one(tiny_climate, tmp_path):
    from util.models.export import FORMATS, export_model, load_exported, probe_input
    from util.models.layers import ConserveBlockMean, model_info
    from util.models.loading import average_models, load_model

    model, _ = conserving_model(tiny_climate)
    model.save(tmp_path / "conserve.keras")
    loaded, info = load_model(tmp_path / "conserve.keras")
    assert info["conserve"] is True and any(isinstance(layer, ConserveBlockMean) for layer in loaded.layers)
    x = np.concatenate([probe_input(info, size=12)] * 2)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=0, atol=1e-3)
    exported = load_exported(export_model(loaded, info, tmp_path / "conserve_saved_model", FORMATS["saved_model"]))
    np.testing.assert_allclose(exported.predict_on_batch(x), np.asarray(model(x)), rtol=0, atol=1e-3)

    _, shipped = load_model(REPO / "assets" / "models" / "dem_x4.keras")  # saved before CONSERVE: False
    assert shipped["conserve"] is False
    plain, _ = conserving_model(tiny_climate, conserve=False)
    names = ["a.keras", "b.keras"]
    assert model_info(average_models([model, loaded], names))["conserve"] is True
    assert model_info(average_models([model, plain], names))["conserve"] is False


def test_a_tiny_conserving_run_trains_and_says_so(tiny_climate, tmp_path):
    import edsr_lite
    from util.models.loading import load_model

    tiny = ["--train-patches", "16", "--backprops", "16", "--batch", "8", "--epochs", "1", "--val-patches", "8"]
    folder = edsr_lite.main(["--dataset", str(tiny_climate), "--out", str(tmp_path), "--conserve", *tiny, *SMALL])
    results = json.loads((folder / "results.json").read_text())
    assert results["settings"]["conserve"] is True
    assert results["raster_scores"]["model"]["conservation_rmse"] < 1e-4
    assert results["raster_scores"]["bicubic"]["conservation_rmse"] > 0.01
    assert load_model(folder / "model.keras")[1]["conserve"] is True


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_conserve_is_refused_in_one_line_for_photos_denoising_and_upsampled_inputs(tmp_path, capsys):
    import edsr_lite
    from util.models.layers import keras, raster_model, suite_input

    photos = photo_pairs(tmp_path / "datasets" / "photos", train=4, test=2, factors=(4,), noise64=False)
    out = tmp_path / "runs"
    assert util.run_cli(edsr_lite.main, ["--dataset", str(photos), "--out", str(out), "--conserve"]) == 1
    line = one_error_line(capsys)
    assert "CONSERVE=True" in line and "photos" in line and "raster and stack data sets" in line
    assert not out.exists()  # refused before any run folder is made

    with pytest.raises(util.UserError, match=r"CONSERVE=True: task noise25 keeps the input's size") as error:
        raster_model(edsr_lite.build_model("noise25", channels=1, levels=1, blocks=1, filters=4), 5.0, conserve=True)
    assert "\n" not in str(error.value)

    inputs, x = suite_input("sr4", "upsampled", 1, "upsampled-input net", channels=1)
    upsampled = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(x))
    with pytest.raises(util.UserError, match=r"CONSERVE=True: upsampled-input net takes the grid bicubic-upsampled"):
        raster_model(upsampled, 5.0, conserve=True)
