"""Raster models: one channel in data units, masked training, fine-tuning (INIT_FROM), scores in metres."""

import json
import zipfile

import numpy as np
import pytest

import util

TINY = ["--train-patches", "48", "--backprops", "192", "--batch", "8", "--epochs", "2", "--val-patches", "8"]


def _jacksboro() -> np.ndarray:
    from matplotlib import cbook

    return np.load(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False))["elevation"].astype(np.float32)


@pytest.fixture(scope="module")
def tiny_raster_pairs(tmp_path_factory):
    """A raster data set in download.py's layout, cut from the embedded Jacksboro DEM by hand.

    The first training patch has a nodata strip whose HR cells hold 1e6: masked, it must not matter.
    """
    folder = tmp_path_factory.mktemp("datasets") / "tinydem"
    folder.mkdir()
    z, patch, rng = _jacksboro(), 32, np.random.default_rng(0)
    for split, n, lo, hi in (("train", 56, 0, 260), ("test", 6, 300, 403 - patch)):
        rows, cols = rng.integers(0, z.shape[0] - patch, n), rng.integers(lo, hi, n)
        hr = np.stack([z[r : r + patch, c : c + patch] for r, c in zip(rows, cols, strict=True)])[..., None]
        mask = np.ones(hr.shape, dtype=np.uint8)
        if split == "train":
            mask[0, :4], hr[0, :4] = 0, 1e6
        for s in (2, 4):
            lr = hr.reshape(n, patch // s, s, patch // s, s, 1).mean(axis=(2, 4))
            lr[0, : 4 // s] = lr[0, 4 // s : 8 // s].mean() if split == "train" else lr[0, : 4 // s]
            np.save(folder / f"{split}_sr{s}.npy", lr.astype(np.float32))
        np.save(folder / f"{split}_hr.npy", hr)
        np.save(folder / f"{split}_mask.npy", mask)
        np.save(folder / f"{split}_cell.npy", np.tile(np.float32([92.6, 74.3]), (n, 1)))
    manifest = {"kind": "raster", "units": "m", "value_scale": 100.0, "settings": {"patch_size": patch}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_untrained_raster_edsr_is_bicubic_in_metres():
    import edsr_lite
    from util.data.resize import bicubic_upscale
    from util.models.layers import model_info, raster_model

    model = raster_model(edsr_lite.build_model("sr4", channels=1), value_scale=100.0)
    info = model_info(model)
    assert (info["data_kind"], info["channels"], info["value_scale"]) == ("raster", 1, 100.0)
    lr = _jacksboro()[None, 100:132, 100:132, None] + 3000.0  # heights far from 0 keep their precision
    out = np.asarray(model(lr))
    reference = bicubic_upscale(lr, 4, batch=True)
    inner = np.s_[:, 8:-8, 8:-8]  # tf.image bicubic differs from MATLAB's only near the border
    assert out.dtype == np.float32 and out.shape == (1, 128, 128, 1)
    assert np.abs(out[inner] - reference[inner]).max() < 0.05


def test_every_script_trains_on_rasters_and_scores_in_metres(tiny_raster_pairs, tmp_path):
    import edsr_lite
    import inception2

    for script, name in ((edsr_lite, "edsr_lite"), (inception2, "inception2")):
        folder = script.main(["--dataset", str(tiny_raster_pairs), "--out", str(tmp_path), *TINY])
        results = json.loads((folder / "results.json").read_text())
        scores = results["raster_scores"]
        assert set(scores) == {"bicubic", "cubic spline", "model"}
        assert results["data_kind"] == "raster" and results["units"] == "m"
        card = json.loads(zipfile.ZipFile(folder / "model.keras").read("config.json"))
        assert '"patch": 32' in json.dumps(card)  # the card records the training patches' side: inference tiles at it
        for values in scores.values():
            assert np.isfinite([values["rmse"], values["mae"], values["bias"], values["slope_rmse"]]).all()
        # The masked 1e6 cells never reach the loss: it stays in metres of real terrain (m2 for MSE).
        log = (folder / "training.csv").read_text().splitlines()
        power = 2 if results["settings"]["loss"] == "mse" else 1
        assert float(log[-1].split(",")[1]) < 100.0**power, (name, log)
        assert (folder / "comparison.png").stat().st_size > 0
        assert json.loads((folder / "settings.json").read_text())["augment"] == (
            ["flips", "invert", "amplitude"] if name == "edsr_lite" else []
        )


def test_init_from_fine_tunes_a_saved_model(tiny_raster_pairs, tmp_path):
    import edsr_lite
    import inception2
    from util.models.loading import load_model

    first = edsr_lite.main(["--dataset", str(tiny_raster_pairs), "--out", str(tmp_path / "a"), *TINY])
    saved, _ = load_model(first / "model.keras")
    second = edsr_lite.main(
        ["--dataset", str(tiny_raster_pairs), "--out", str(tmp_path / "b"), *TINY[:2], "--backprops", "8"]
        + ["--epochs", "1", "--learning-rate", "1e-9", "--ema", "0", "--init-from", str(first / "model.keras")]
    )
    tuned, _ = load_model(second / "model.keras")
    for a, b in zip(saved.get_weights(), tuned.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # a learning rate of 1e-9 leaves the saved weights
    with pytest.raises(util.UserError, match="INIT_FROM=.*architecture"):
        inception2.main(
            ["--dataset", str(tiny_raster_pairs), "--out", str(tmp_path / "c"), *TINY]
            + ["--init-from", str(first / "model.keras")]
        )
    with pytest.raises(util.UserError, match="INIT_FROM='nowhere.keras': no such model file"):
        edsr_lite.main(["--dataset", str(tiny_raster_pairs), "--init-from", "nowhere.keras"])


def test_photo_augmentations_are_refused_on_rasters(tiny_raster_pairs, tmp_path):
    import edsr_lite

    with pytest.raises(util.UserError, match="channels, shifts do.*not apply to rasters"):
        edsr_lite.main(
            ["--dataset", str(tiny_raster_pairs), "--out", str(tmp_path), "--augment", "flips,channels,shifts"]
        )
    assert not list(tmp_path.iterdir())


def test_a_raster_model_is_given_tiles_of_its_training_patches_when_its_card_records_them(tmp_path):
    """A model trained on 16-cell patches at x4 sees 4 x 4 LR tiles, half overlapping (docs/experiments.md)."""
    import edsr_lite
    from util.inference.raster_enhance import enhance_raster_array, raster_tiling
    from util.models.layers import model_info, raster_model
    from util.models.loading import load_model

    model = raster_model(edsr_lite.build_model("sr4", channels=1), value_scale=5.0, units="K", patch=16)
    model.save(tmp_path / "m.keras")
    model, info = load_model(tmp_path / "m.keras")
    assert info["patch"] == 16 and raster_tiling(info) == (4, 2, 1)
    assert raster_tiling(info, tile=8) == (8, 2, 1)  # a tile given keeps the quarter overlap
    old = {**info, "patch": 0}  # a card saved before the field (the shipped models): ~512-cell output tiles
    assert raster_tiling(old) == (128, 32, 1)
    assert model_info(raster_model(edsr_lite.build_model("sr4", channels=1), 5.0))["patch"] == 0

    seen = []

    class Spy:
        def predict_on_batch(self, x):
            seen.append(x.shape)
            return model.predict_on_batch(x)

    lr = _jacksboro()[:9, :12] / 100.0 + 280.0
    tiled = enhance_raster_array(Spy(), info, lr)
    assert {shape[1:] for shape in seen} == {(4, 4, 1)} and len(seen) == 4  # one batch per band of tiles
    assert sum(shape[0] for shape in seen) == 4 * 5  # 4 bands of 5 tiles cover 9 x 12 cells
    whole = enhance_raster_array(model, info, lr, tile=12)
    assert tiled.shape == whole.shape == (36, 48)
    assert np.abs(tiled - whole).max() < 0.5  # untrained: bicubic either way, up to the tiles' edges
