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
from util.models.layers import SuiteInfo
from util.models.loading import load_model

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


# ---- 3. Raster outputs --------------------------------------------------------------------------


def test_two_rasters_with_the_same_output_are_refused_before_any_work(tmp_path, capfd):
    first, second = write_tif(tmp_path / "da" / "dem.tif", dem()), write_tif(tmp_path / "db" / "dem.tif", dem(seed=1))
    code, lines = run(capfd, first, second, "--out", tmp_path / "o", "--overwrite", "--model", DEM_X2)
    assert_one_line_error(code, lines, "dem_x2.tif: two inputs would give this same output")
    assert not (tmp_path / "o").exists()


def test_the_prj_of_an_ascii_grid_is_an_output_not_replaced_without_overwrite(tmp_path, capfd):
    source = write_asc(tmp_path / "ro.asc", dem(), prj=UTM.to_wkt())
    (tmp_path / "ro_x2.prj").write_text("the user's own notes")
    code, lines = run(capfd, source, "--model", DEM_X2)
    assert_one_line_error(code, lines, "ro_x2.prj: exists (written with ro_x2.asc); give --overwrite")
    assert (tmp_path / "ro_x2.prj").read_text() == "the user's own notes"
    assert not (tmp_path / "ro_x2.asc").exists() and leftovers(tmp_path) == []
    code, lines = run(capfd, source, "--model", DEM_X2, "--skip-existing")  # the grid is not there: not skipped
    assert_one_line_error(code, lines, "ro_x2.prj: exists")
    code, lines = run(capfd, source, "--model", DEM_X2, "--overwrite")
    assert code == 0, lines
    assert CRS.from_wkt((tmp_path / "ro_x2.prj").read_text()) == UTM


def test_overwriting_a_grid_without_a_crs_removes_the_stale_prj_of_the_old_one(tmp_path, capfd):
    source = write_asc(tmp_path / "plain.asc", dem())
    (tmp_path / "plain_x2.prj").write_text(UTM.to_wkt())
    code, lines = run(capfd, source, "--model", DEM_X2, "--overwrite")
    assert code == 0, lines
    assert not (tmp_path / "plain_x2.prj").exists()
    with rasterio.open(tmp_path / "plain_x2.asc") as src:
        assert src.crs is None


def test_a_bad_raster_in_a_batch_is_reported_and_the_others_are_written(tmp_path, capfd):
    good, good2 = write_tif(tmp_path / "good.tif", dem()), write_tif(tmp_path / "good2.tif", dem(seed=2))
    (tmp_path / "bad.asc").write_text("this is not a grid\n")
    code, lines = run(capfd, good, tmp_path / "bad.asc", good2, "--model", DEM_X2)
    assert code == 1 and len(lines) == 2 and all(line.startswith("error: ") for line in lines), lines
    assert "bad.asc" in lines[0]
    assert "1 of 3 rasters could not be enhanced" in lines[1] and "--skip-existing" in lines[1]
    assert (tmp_path / "good_x2.tif").is_file() and (tmp_path / "good2_x2.tif").is_file()
    assert not (tmp_path / "bad_x2.asc").exists() and leftovers(tmp_path) == []


SLOW_ENHANCE = """
import runpy, sys, time
from pathlib import Path

sys.path.insert(0, {repo!r})
import util.inference.raster_enhance as raster_enhance

rows = raster_enhance.enhanced_rows


def slow_rows(*args, **kwargs):  # a model that takes its time: the run is stopped while it writes
    for first, band in rows(*args, **kwargs):
        yield first, band
        Path({started!r}).touch()
        time.sleep(0.5)


raster_enhance.enhanced_rows = slow_rows
sys.argv = ["enhance.py", *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def test_sigterm_while_writing_removes_the_partial_output_as_ctrl_c_does(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    source = write_tif(tmp_path / "big.tif", dem(64, 64))
    started = tmp_path / "started"
    script = tmp_path / "slow_enhance.py"
    script.write_text(SLOW_ENHANCE.format(repo=str(REPO), started=str(started), script=str(REPO / "enhance.py")))
    argv = [sys.executable, str(script), str(source), "--model", str(DEM_X2), "--tile", "8", "--overlap", "0"]
    process = subprocess.Popen(argv + ["--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), process.communicate(timeout=60)[1]
    assert leftovers(tmp_path), "the partial output is being written"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and "Traceback" not in err, err
    assert leftovers(tmp_path) == [] and not (tmp_path / "big_x2.tif").exists()


def test_an_unwritable_out_is_one_line_before_any_work(tmp_path, capfd, monkeypatch):
    source = write_tif(tmp_path / "dem.tif", dem())
    (tmp_path / "a_file").write_text("not a folder")
    code, lines = run(capfd, source, "--model", DEM_X2, "--out", tmp_path / "a_file")
    assert_one_line_error(code, lines, "cannot write there", "give --out elsewhere")
    from util.io import files

    def refused(*args, **kwargs):  # what a folder without write permission gives a user who is not root
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", refused)
    code, lines = run(capfd, source, "--model", DEM_X2, "--out", tmp_path / "locked")
    assert_one_line_error(code, lines, "dem_x2.tif: cannot be written (Permission denied)", "--out elsewhere")


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--tile", "-8"), "--tile -8: give a tile side of at least 1"),
        (("--tile", "0"), "--tile 0: give a tile side of at least 1"),
        (("--overlap", "-2"), "--overlap -2: give 0 or more"),
        (("--tile", "8", "--overlap", "8"), "--overlap 8: must be below the tile"),
    ],
)
def test_raster_tiling_flags_are_checked_by_their_own_name(tmp_path, capfd, flags, said):
    source = write_tif(tmp_path / "dem.tif", dem())
    code, lines = run(capfd, source, "--model", DEM_X2, *flags)
    assert_one_line_error(code, lines, said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]


def test_out_through_a_folder_that_does_not_exist_makes_no_folder_and_sees_the_existing_file(tmp_path, capfd):
    source = write_tif(tmp_path / "dem.tif", dem())
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.tif").write_bytes(b"an earlier result")
    code, lines = run(capfd, source, "--model", DEM_X2, "--out", tmp_path / "a" / "sub" / ".." / "x.tif")
    assert_one_line_error(code, lines, "x.tif: exists; give --overwrite")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.tif"]
    assert (tmp_path / "a" / "x.tif").read_bytes() == b"an earlier result"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "a" / "p.png").write_bytes(b"an earlier photo")
    code, lines = run(capfd, tmp_path / "photo.png", "--out", tmp_path / "a" / "sub" / ".." / "p.png")
    assert_one_line_error(code, lines, "p.png: exists; give --overwrite")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["p.png", "x.tif"]


# ---- 4. More hostile outputs --------------------------------------------------------------------


def test_a_read_only_output_is_not_replaced_even_with_overwrite(tmp_path, capfd):
    source = write_tif(tmp_path / "dem.tif", dem())
    kept = tmp_path / "dem_x2.tif"
    kept.write_bytes(b"kept on purpose")
    kept.chmod(0o444)
    code, lines = run(capfd, source, "--model", DEM_X2, "--overwrite")
    assert_one_line_error(code, lines, "dem_x2.tif: exists read-only; make it writable")
    assert kept.read_bytes() == b"kept on purpose"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x_deblurred.png").write_bytes(b"kept too")
    (tmp_path / "x_deblurred.png").chmod(0o444)
    code, lines = run(capfd, tmp_path / "x.png", "--task", "deblur", "--overwrite")
    assert_one_line_error(code, lines, "x_deblurred.png: exists read-only")
    assert (tmp_path / "x_deblurred.png").read_bytes() == b"kept too"


def test_a_full_disk_is_one_line_naming_the_output_for_photos_and_rasters(tmp_path, capfd, monkeypatch):
    from util.io import files

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "x.png")
    write_tif(tmp_path / "dem.tif", dem())
    monkeypatch.setattr(files.tempfile, "mkstemp", full)
    code, lines = run(capfd, tmp_path / "x.png", "--task", "deblur")
    assert_one_line_error(code, lines, "x_deblurred.png: cannot be written (No space left on device)")
    code, lines = run(capfd, tmp_path / "dem.tif", "--model", DEM_X2)
    assert_one_line_error(code, lines, "dem_x2.tif: cannot be written (No space left on device)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif", "x.png"]


def test_an_output_name_taken_by_a_folder_is_refused_by_name(tmp_path, capfd):
    source = write_tif(tmp_path / "dem.tif", dem())
    (tmp_path / "dem_x2.tif").mkdir()
    code, lines = run(capfd, source, "--model", DEM_X2, "--overwrite")
    assert_one_line_error(code, lines, "dem_x2.tif: is a folder, not a file it could replace")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x_deblurred.png").mkdir()
    code, lines = run(capfd, tmp_path / "x.png", "--task", "deblur", "--overwrite")
    assert_one_line_error(code, lines, "x_deblurred.png: is a folder")
