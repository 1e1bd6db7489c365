"""enhance.py end to end on tiny models: kinds of photo kept, names, refusals and one-line errors."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from PIL import Image, ImageCms

import enhance
import util
from util.io.images import read_photo, write_png

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {
        "sr4": tiny_models.save(tiny_models.upsampled_model(), folder, "sr4.keras"),
        "lr2": tiny_models.save(tiny_models.lr_model(task="sr2", scale=2), folder, "lr2.keras"),
        "noise": tiny_models.save(tiny_models.upsampled_model("noise64", 1, 8), folder, "noise.keras"),
    }


def photo(height=24, width=32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + np.cumsum(rng.normal(0, 12, (height, width, 3)), axis=1), 0, 255).astype(np.uint8)


def run(*argv):
    enhance.main([str(a) for a in argv] + ["--quiet"])


def test_rgb_photo_gives_x4_png_beside_it_with_its_icc_profile(tmp_path, models):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo()).save(tmp_path / "photo.jpg", quality=95, icc_profile=icc)
    run(tmp_path / "photo.jpg", "--model", models["sr4"])
    with Image.open(tmp_path / "photo_x4.png") as out:
        assert out.mode == "RGB" and out.size == (128, 96)
        assert out.info.get("icc_profile") == icc


def test_rgba_keeps_its_alpha_upscaled_by_bicubic(tmp_path, models):
    alpha = np.tile(np.linspace(0, 255, 32), (24, 1)).astype(np.uint8)
    Image.fromarray(np.dstack([photo(), alpha]), "RGBA").save(tmp_path / "logo.png")
    run(tmp_path / "logo.png", "--model", models["lr2"])
    with Image.open(tmp_path / "logo_x2.png") as out:
        assert out.mode == "RGBA" and out.size == (64, 48)
        upscaled_alpha = np.asarray(out)[..., 3].astype(int)
    assert np.abs(upscaled_alpha - util.bicubic_upscale(alpha, 2)).max() <= 1


def test_greyscale_stays_greyscale(tmp_path, models):
    Image.fromarray(photo()[..., 0], "L").save(tmp_path / "scan.png")
    run(tmp_path / "scan.png", "--model", models["sr4"])
    with Image.open(tmp_path / "scan_x4.png") as out:
        assert out.mode == "L" and out.size == (128, 96)


def test_16_bit_png_stays_16_bit(tmp_path, models):
    deep = np.minimum(photo().astype(np.uint32) * 257 + 100, 65535).astype(np.uint16)
    write_png(tmp_path / "raw.png", deep)
    run(tmp_path / "raw.png", "--model", models["sr4"])
    out = read_photo(tmp_path / "raw_x4.png").pixels
    assert out.dtype == np.uint16 and out.shape == (96, 128, 3)
    eight_bit = tmp_path / "raw8.png"
    Image.fromarray(photo()).save(eight_bit)
    run(eight_bit, "--model", models["sr4"])
    reference = np.asarray(Image.open(tmp_path / "raw8_x4.png"), dtype=np.float64)
    assert np.abs(out / 257.0 - reference).max() < 3  # the same picture, at 16 bits
    assert len(np.unique(out % 257)) > 1  # not just 8-bit values scaled up


def test_exif_orientation_is_applied(tmp_path, models):
    upright = photo(24, 32)
    stored = np.rot90(upright, k=1)  # as a camera held sideways stores it; orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "turned.png", exif=exif.tobytes())
    Image.fromarray(upright).save(tmp_path / "upright.png")
    run(tmp_path / "turned.png", tmp_path / "upright.png", "--model", models["sr4"])
    turned = np.asarray(Image.open(tmp_path / "turned_x4.png"))
    assert turned.shape == (96, 128, 3)
    np.testing.assert_array_equal(turned, np.asarray(Image.open(tmp_path / "upright_x4.png")))


def test_folder_in_folder_out_and_denoised_names(tmp_path, models):
    (tmp_path / "album" / "trip").mkdir(parents=True)
    Image.fromarray(photo()).save(tmp_path / "album" / "a.png")
    Image.fromarray(photo(seed=1)).save(tmp_path / "album" / "trip" / "b.jpg")
    run(tmp_path / "album", "--model", models["noise"])
    out = tmp_path / "album_denoised"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a_denoised.png",
        "trip/b_denoised.png",
    ]
    with Image.open(out / "a_denoised.png") as img:
        assert img.size == (32, 24)


def test_refuses_to_overwrite(tmp_path, models):
    source = tmp_path / "photo.png"
    Image.fromarray(photo()).save(source)
    run(source, "--model", models["sr4"])
    before = (tmp_path / "photo_x4.png").stat().st_mtime_ns
    with pytest.raises(util.UserError, match="exists; give --overwrite"):
        run(source, "--model", models["sr4"])
    assert (tmp_path / "photo_x4.png").stat().st_mtime_ns == before
    run(source, "--model", models["sr4"], "--overwrite")
    original = source.read_bytes()
    with pytest.raises(util.UserError, match="is an input image"):
        run(source, "--model", models["sr4"], "--out", source, "--overwrite")
    assert source.read_bytes() == original
    assert not list(tmp_path.glob(".*part*")), "no temporary file is left behind"


def cli(*argv):
    return subprocess.run(
        [sys.executable, str(REPO / "enhance.py"), *map(str, argv)], capture_output=True, text=True, timeout=120
    )


def test_non_image_and_missing_model_are_one_line_errors(tmp_path, models):
    (tmp_path / "notes.png").write_text("these are notes, not pixels")
    Image.fromarray(photo()).save(tmp_path / "photo.png")
    cases = [
        ((tmp_path / "notes.png", "--model", models["sr4"]), "notes.png"),
        ((tmp_path / "photo.png", "--model", tmp_path / "missing.keras"), "missing.keras"),
        ((tmp_path / "absent.jpg", "--model", models["sr4"]), "absent.jpg"),
    ]
    for argv, named in cases:
        result = cli(*argv)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], result.stderr
    assert not (tmp_path / "photo_x4.png").exists()


def test_default_model_missing_names_its_path_and_how_to_train(tmp_path, monkeypatch):
    Image.fromarray(photo()).save(tmp_path / "photo.png")
    default = tmp_path / "assets" / "models" / "sr4.keras"
    monkeypatch.setattr(enhance, "MODEL", default)  # the real one will exist once a model is trained
    with pytest.raises(util.UserError, match="no such model file; train one") as err:
        enhance.main([str(tmp_path / "photo.png")])
    assert str(err.value).startswith(str(default)) and "\n" not in str(err.value)


def test_out_names_a_file_for_one_image_and_a_folder_for_several(tmp_path, models):
    for name in ("a.png", "b.png"):
        Image.fromarray(photo()).save(tmp_path / name)
    run(tmp_path / "a.png", "--model", models["sr4"], "--out", tmp_path / "big" / "chosen.png")
    assert (tmp_path / "big" / "chosen.png").is_file()
    run(tmp_path / "a.png", tmp_path / "b.png", "--model", models["sr4"], "--out", tmp_path / "outputs")
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["a_x4.png", "b_x4.png"]
    with pytest.raises(util.UserError, match="names one file but there are 2 images"):
        run(tmp_path / "a.png", tmp_path / "b.png", "--model", models["sr4"], "--out", tmp_path / "one.png")


def test_ensemble_flag_averages_the_flips_and_rotations(tmp_path, models):
    from util.inference.tiles import enhance_array
    from util.models.loading import load_model

    Image.fromarray(photo()).save(tmp_path / "photo.png")
    run(tmp_path / "photo.png", "--model", models["lr2"], "--ensemble", "--out", tmp_path / "plus.png")
    model, info = load_model(models["lr2"])
    expected = enhance_array(model, info, photo(), progress=False, ensemble=True)
    assert np.array_equal(read_photo(tmp_path / "plus.png").pixels, expected)


def test_scale_picks_the_shipped_model_of_that_scale(tmp_path, models, monkeypatch):
    import shutil

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(models["lr2"], shipped / "sr2.keras")
    monkeypatch.setattr(enhance, "MODELS", shipped)
    Image.fromarray(photo()).save(tmp_path / "photo.png")
    run(tmp_path / "photo.png", "--scale", 2)
    assert read_photo(tmp_path / "photo_x2.png").pixels.shape == (48, 64, 3)
    with pytest.raises(util.UserError, match="sr8.keras: no such model file"):
        run(tmp_path / "photo.png", "--scale", 8)
    with pytest.raises(util.UserError, match="give one"):
        run(tmp_path / "photo.png", "--scale", 2, "--model", models["sr4"])


def test_shipped_models_say_what_they_do():
    """assets/models/sr<N>.keras are photo models of task srN, dem_x<N>.keras raster models in metres,
    climate_x<N>.keras raster models in K of 16-cell patches, denoise.keras and deblur.keras the blind noise
    and defocus models; each < 5 MB."""
    from util.data.tasks import PURPOSES
    from util.models.loading import load_model

    shipped = sorted((REPO / "assets" / "models").glob("*.keras"))
    names = {path.stem for path in shipped}
    assert {"sr2", "sr4", "sr8", "dem_x2", "dem_x4", "climate_x2", "climate_x4", *PURPOSES} <= names, names
    for path in shipped:
        assert path.stat().st_size < 5 * 2**20, path
        _, info = load_model(path)
        if path.stem.startswith("dem_x"):
            scale = int(path.stem[5:])
            assert info["task"] == f"sr{scale}" and info["data_kind"] == "raster" and info["units"] == "m", info
            assert info["channels"] == 1 and info["value_scale"] > 0
        elif path.stem.startswith("climate_x"):
            task = f"sr{path.stem[9:]}"
            assert (info["task"], info["data_kind"], info["units"], info["patch"]) == (task, "raster", "K", 16), info
        elif path.stem in PURPOSES:
            assert info["task"] == PURPOSES[path.stem] and info["scale"] == 1, (path, info)
        elif path.stem.startswith("sr"):
            assert info["task"] == path.stem and info["scale"] == int(path.stem[2:]), (path, info)
            assert info.get("data_kind", "photo") == "photo"


def test_shipped_dem_model_beats_bicubic_on_a_dem_it_never_saw(shared_data, tmp_path):
    """`enhance.py dem.tif` out of the box, on the real SRTM DEM of Boulder (not in the training data)."""
    import rasterio
    from affine import Affine

    from util.evaluation.raster_eval import evaluate_raster_files
    from util.evaluation.raster_metrics import block_mean
    from util.io.rasters import read_raster

    source = shared_data / "dem" / "srtm_boulder_3arcsec.tif"
    hr = read_raster(source)
    height, width = (n // 4 * 4 for n in hr.values.shape)
    lr = block_mean(hr.values[:height, :width], 4)[0]
    low = tmp_path / "boulder_lr.tif"
    profile = dict(driver="GTiff", height=lr.shape[0], width=lr.shape[1], count=1, dtype="float32")
    with rasterio.open(low, "w", crs=hr.crs, transform=hr.transform * Affine.scale(4), **profile) as dst:
        dst.write(lr, 1)
    assert enhance.main([str(low), "--quiet"]) is None  # the default model: assets/models/dem_x4.keras
    out = read_raster(tmp_path / "boulder_lr_x4.tif")
    assert out.values.shape == (height, width) and out.values.dtype == np.float32
    assert out.crs == hr.crs and out.transform.almost_equals(hr.transform, precision=1e-9)
    scores = evaluate_raster_files([source], 4, _shipped_dem_enhance())["pooled"]
    assert scores["model"]["rmse"] < 0.9 * scores["bicubic"]["rmse"]
    assert scores["model"]["slope_rmse"] < scores["cubic spline"]["slope_rmse"]


def _shipped_dem_enhance():
    from util.inference.raster_enhance import enhance_raster_array
    from util.models.loading import load_model

    model, info = load_model(REPO / "assets" / "models" / "dem_x4.keras")
    return lambda lr: enhance_raster_array(model, info, lr)


def test_a_bad_photo_in_a_batch_is_reported_and_the_others_are_written(tmp_path, models):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(photo()).save(photos / name)
    whole = (photos / "b.png").read_bytes()
    (photos / "b.png").write_bytes(whole[: len(whole) // 2])  # truncated: its header reads, its pixels do not
    result = cli(photos, "--model", models["sr4"], "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert errors[0].startswith("error: ") and "b.png" in errors[0]
    assert errors[-1] == (
        "error: 1 of 3 images could not be read (each named above); the other 2 are written: fix or remove those "
        "files and run again with --skip-existing"
    )
    out = tmp_path / "photos_x4"
    assert sorted(p.name for p in out.iterdir()) == ["a_x4.png", "c_x4.png"]
    before = (out / "a_x4.png").stat().st_mtime_ns
    (photos / "b.png").write_bytes(whole)
    with pytest.raises(util.UserError, match="exists; give --overwrite to replace it, --skip-existing"):
        run(photos, "--model", models["sr4"])
    run(photos, "--model", models["sr4"], "--skip-existing")
    assert sorted(p.name for p in out.iterdir()) == ["a_x4.png", "b_x4.png", "c_x4.png"]
    assert (out / "a_x4.png").stat().st_mtime_ns == before  # kept, not enhanced again


def test_tiles_output_folder_and_output_size_are_checked_before_any_work(tmp_path, models, monkeypatch):
    from util.inference import photos

    source = tmp_path / "photo.png"
    Image.fromarray(photo()).save(source)
    (tmp_path / "file.txt").write_text("not a folder")
    for argv, named in (
        (("--tile", "-8"), "--tile -8: give a tile side of at least 1"),
        (("--overlap", "-1"), "--overlap -1: give 0 or more"),
        (("--overlap", "999"), "--overlap 999: must be smaller than the tile (128 px)"),
        (("--out", tmp_path / "file.txt" / "sub"), "is not a writable folder"),
    ):
        with pytest.raises(util.UserError, match=re.escape(named)) as err:
            run(source, "--model", models["sr4"], *argv)
        assert "\n" not in str(err.value)
    monkeypatch.setattr(photos, "available_memory", lambda: 10_000)  # its 128x96 RGB output needs 36 864 bytes
    with pytest.raises(util.UserError, match=r"photo.png: its x4 output \(128x96\) needs 0.0 GiB, more than the"):
        run(source, "--model", models["sr4"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "photo.png"]  # nothing written
