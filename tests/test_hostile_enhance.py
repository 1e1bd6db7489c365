"""enhance.py under hostile input: outputs that collide, sidecars, partial batches, signals, bad models and flags."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import rasterio
import tiny_models
from affine import Affine
from PIL import Image
from rasterio.crs import CRS

import enhance
import util
from util.models import SuiteInfo, load_model

REPO = Path(__file__).resolve().parents[1]
DEM_X2 = REPO / "assets" / "models" / "dem_x2.keras"
UTM = CRS.from_epsg(32613)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {
        "deblur": tiny_models.save(tiny_models.upsampled_model("defocus", 1, 1), folder, "deblur.keras"),
        "negative": tiny_models.save(tiny_models.upsampled_model("sr4", -4, 1), folder, "negative.keras"),
    }


def dem(height=24, width=24, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1000 + np.cumsum(rng.normal(0, 2, (height, width)), axis=1)).astype(np.float32)


def write_tif(path: Path, values: np.ndarray, crs=UTM) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", height=values.shape[0], width=values.shape[1], count=1, dtype="float32")
    with rasterio.open(path, "w", crs=crs, transform=Affine(10, 0, 480000, 0, -10, 4430000), **profile) as dst:
        dst.write(values, 1)
    return path


def write_asc(path: Path, values: np.ndarray, prj: str | None = None) -> Path:
    header = [f"ncols {values.shape[1]}", f"nrows {values.shape[0]}", "xllcorner 0", "yllcorner 0", "cellsize 10"]
    path.write_text("\n".join(header + [" ".join(f"{v:.3f}" for v in row) for row in values]) + "\n")
    if prj is not None:
        path.with_suffix(".prj").write_text(prj)
    return path


def run(capfd, *argv) -> tuple[int, list[str]]:
    """enhance.py in this process: (exit code, lines on stderr)."""
    capfd.readouterr()
    code = util.run_cli(enhance.main, [str(a) for a in argv] + ["--quiet"])
    return code, capfd.readouterr().err.strip().splitlines()


def assert_one_line_error(code: int, lines: list[str], *named: str) -> None:
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in named:
        assert text in lines[0], lines


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*part*"))


# ---- 1. Loading a model -------------------------------------------------------------------------


def test_a_negative_scale_in_suiteinfo_is_refused_when_loading(models, tmp_path, capfd):
    with pytest.raises(util.UserError, match=r"negative\.keras: its SuiteInfo says scale -4 for task sr4"):
        load_model(models["negative"])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    code, lines = run(capfd, tmp_path / "photo.png", "--model", models["negative"])
    assert_one_line_error(code, lines, "negative.keras", "scale -4")
    write_tif(tmp_path / "dem.tif", dem())
    code, lines = run(capfd, tmp_path / "dem.tif", "--model", models["negative"])
    assert_one_line_error(code, lines, "negative.keras", "scale -4")


def test_a_text_file_zero_bytes_or_a_folder_named_keras_say_what_they_are(tmp_path):
    (tmp_path / "notes.keras").write_text("not a model\n")
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "folder.keras").mkdir()
    for name, said in [
        ("notes.keras", "not a .keras model (a .keras file is a zip archive; this is 12 bytes"),
        ("empty.keras", "this is 0 bytes"),
        ("folder.keras", "is a folder, not a model file"),
    ]:
        with pytest.raises(util.UserError) as err:
            load_model(tmp_path / name)
        assert str(err.value).startswith(f"{tmp_path / name}: ") and said in str(err.value)
        assert "File not found" not in str(err.value) and "no such model file" not in str(err.value)


def test_a_lambda_model_is_refused_by_safe_mode_in_so_many_words(tmp_path):
    inputs = keras.Input((None, None, 3))
    x = SuiteInfo(task="sr4", scale=4, input_kind="upsampled", architecture="lambda")(inputs)
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(x)).save(tmp_path / "lambda.keras")
    with pytest.raises(util.UserError) as err:
        load_model(tmp_path / "lambda.keras")
    message = str(err.value)
    assert "lambda.keras: the model contains a Lambda layer" in message and "safe_mode=True refuses" in message
    assert "registered layers" in message and "\n" not in message


# ---- 2. Output names ----------------------------------------------------------------------------


def test_a_deblurring_model_writes_deblurred_not_the_denoisers_name(models, tmp_path, capfd):
    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(tmp_path / "x.png")
    code, lines = run(capfd, tmp_path / "x.png", "--model", models["deblur"])
    assert code == 0, lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png", "x_deblurred.png"]
