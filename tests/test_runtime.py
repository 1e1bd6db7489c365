"""util/inference/runtimes.py and enhance.py --runtime: the same outputs through ONNX Runtime, OpenVINO or LiteRT."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from tiny_models import lr_model, save

import enhance
from util.benchmarks import runtimes as runtimes_benchmark
from util.inference import runtimes
from util.io.files import UserError
from util.models.export import FORMATS, missing_modules
from util.models.layers import keras

REPO = Path(__file__).resolve().parents[1]
NODATA = -9999.0


def needs(runtime):
    missing = missing_modules(FORMATS[runtime])
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (requirements-export.txt)")


def run(*argv):
    enhance.main([str(a) for a in argv] + ["--quiet"])


def photo(path, height=20, width=28, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path)
    return path


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


@pytest.fixture(scope="module")
def dem_model(tmp_path_factory):
    """The untrained raster EDSR x2 in metres, saved: (.keras path, its tolerance in metres)."""
    import edsr_lite
    from util.models.export import tolerance
    from util.models.layers import model_info, raster_model

    model = raster_model(edsr_lite.build_model("sr2", channels=1), value_scale=100.0)
    path = tmp_path_factory.mktemp("models") / "dem_x2.keras"
    keras.saving.save_model(model, path)
    return path, tolerance(model_info(model))


def write_dem(path: Path) -> Path:
    """A float32 GeoTIFF DEM (UTM, 10 m cells) of hills around 2000 m with a hole of nodata."""
    rows, cols = np.mgrid[0:24, 0:30]
    heights = (2000 + 40 * np.sin(cols / 6) + 25 * np.cos(rows / 5) + 2 * rows).astype(np.float32)
    heights[5:8, 10:14] = NODATA
    profile = dict(driver="GTiff", count=1, height=24, width=30, dtype="float32", nodata=NODATA)
    transform = Affine(10.0, 0.0, 480000.0, 0.0, -10.0, 4430000.0)
    with rasterio.open(path, "w", crs=CRS.from_epsg(32613), transform=transform, **profile) as dst:
        dst.write(heights[None])
    return path


# ---- the same output as Keras, end to end ----------------------------------------------


@needs("onnx")
def test_onnx_runtime_enhances_a_photo_as_keras_does(tmp_path):
    model = save(lr_model(), tmp_path / "models")
    source = photo(tmp_path / "p.png")
    cache = tmp_path / "cache"
    run(source, "--model", model, "--out", tmp_path / "keras.png", "--runtime", "keras")
    run(source, "--model", model, "--out", tmp_path / "onnx.png", "--runtime", "onnx", "--runtime-cache", cache)
    assert np.abs(pixels(tmp_path / "onnx.png") - pixels(tmp_path / "keras.png")).max() <= 1  # 1/255
    assert [p.suffix for p in runtimes.cached_entries(cache, model)] == [".onnx"]


@needs("onnx")
def test_onnx_runtime_enhances_a_geotiff_as_keras_does(tmp_path, dem_model):
    model, limit = dem_model
    source = write_dem(tmp_path / "dem.tif")
    for runtime in ("keras", "onnx"):
        run(source, "--model", model, "--out", tmp_path / f"{runtime}.tif", "--runtime", runtime)
    with rasterio.open(tmp_path / "keras.tif") as ref, rasterio.open(tmp_path / "onnx.tif") as got:
        expected, values = ref.read(1, masked=True), got.read(1, masked=True)
        assert got.crs == ref.crs and got.transform == ref.transform and got.nodata == ref.nodata
    assert (values.mask == expected.mask).all() and values.mask.any()  # nodata stays nodata
    assert np.abs(values - expected).max() <= limit


@pytest.mark.parametrize("runtime", ["openvino", "litert"])
def test_openvino_and_litert_enhance_a_photo_as_keras_does(tmp_path, runtime):
    if missing_modules(FORMATS[runtime]):
        pytest.skip(f"{', '.join(missing_modules(FORMATS[runtime]))} not installed (requirements-export.txt)")
    model = save(lr_model(), tmp_path / "models")
    source = photo(tmp_path / "p.png")
    run(source, "--model", model, "--out", tmp_path / "keras.png", "--runtime", "keras")
    run(source, "--model", model, "--out", tmp_path / "other.png", "--runtime", runtime, "--ensemble")
    run(source, "--model", model, "--out", tmp_path / "keras_ensemble.png", "--runtime", "keras", "--ensemble")
    assert np.abs(pixels(tmp_path / "other.png") - pixels(tmp_path / "keras_ensemble.png")).max() <= 1


def bfloat16_units() -> bool:
    from util.models.export import bfloat16_units

    return bfloat16_units()


PRECISIONS = ("float32", "bfloat16")


@needs("openvino")
def test_openvino_in_bfloat16_is_close_to_keras_when_asked_for(tmp_path):
    if not bfloat16_units():
        pytest.skip("this CPU has no bfloat16 units (OpenVINO would emulate them)")
    model = save(lr_model(), tmp_path / "models")
    source = photo(tmp_path / "p.png", 64, 80)
    for runtime in ("keras", "openvino"):  # openvino: float32, the default, within 1/255 of Keras
        run(source, "--model", model, "--out", tmp_path / f"{runtime}.png", "--runtime", runtime)
    bfloat16 = ["--runtime", "openvino", "--precision", "bfloat16"]
    run(source, "--model", model, "--out", tmp_path / "bfloat16.png", *bfloat16)
    assert np.abs(pixels(tmp_path / "openvino.png") - pixels(tmp_path / "keras.png")).max() <= 1
    difference = np.abs(pixels(tmp_path / "bfloat16.png") - pixels(tmp_path / "keras.png"))
    assert difference.max() <= 4 and difference.mean() < 0.5
    x = np.random.default_rng(1).random((1, 32, 32, 3), dtype=np.float32)
    cache = runtimes.cache_folder()
    computed = [runtimes.open_model(model, "openvino", cache, precision=p)[0].predict_on_batch(x) for p in PRECISIONS]
    assert 1e-4 < np.abs(computed[1] - computed[0]).max() < 0.05  # bfloat16 in effect: it rounds, a little


def test_bfloat16_where_it_does_not_run_as_measured_is_one_line(tmp_path, dem_model):
    photo_info, raster_info = {"data_kind": "photo"}, {"data_kind": "raster"}
    runtimes.check_precision("float32", "openvino", photo_info)
    with pytest.raises(UserError, match=r"OpenVINO only, not onnx: give --runtime openvino"):
        runtimes.check_precision("bfloat16", "onnx", photo_info)
    with pytest.raises(UserError, match=r"rasters run in float32"):
        runtimes.check_precision("bfloat16", "openvino", raster_info)
    with pytest.raises(UserError, match="OpenVINO only, not keras") as err:
        run(write_dem(tmp_path / "dem.tif"), "--model", dem_model[0], "--runtime", "keras", "--precision", "bfloat16")
    assert "\n" not in str(err.value) and not list(tmp_path.glob("dem_x*"))


# ---- the cache -----------------------------------------------------------------------


@needs("onnx")
def test_a_changed_keras_file_is_converted_again_and_its_old_entry_removed(tmp_path):
    model = save(lr_model(seed=0), tmp_path / "models")
    source = photo(tmp_path / "p.png")
    cache = tmp_path / "cache"
    args = ["--model", model, "--runtime", "onnx", "--runtime-cache", cache, "--overwrite"]
    run(source, *args, "--out", tmp_path / "first.png")
    (first,) = runtimes.cached_entries(cache, model)
    run(source, *args, "--out", tmp_path / "again.png")
    assert runtimes.cached_entries(cache, model) == [first]  # taken from the cache
    save(lr_model(seed=1), tmp_path / "models")  # the same path, other weights
    run(source, *args, "--out", tmp_path / "changed.png")
    (second,) = runtimes.cached_entries(cache, model)
    assert second != first and not first.exists() and not Path(f"{first}.json").exists()
    run(source, "--model", model, "--runtime", "keras", "--out", tmp_path / "keras.png")
    assert np.abs(pixels(tmp_path / "changed.png") - pixels(tmp_path / "keras.png")).max() <= 1
    assert np.abs(pixels(tmp_path / "changed.png") - pixels(tmp_path / "first.png")).max() > 1
    assert not [p for p in second.parent.iterdir() if p.name.startswith(".")]  # no temporary left


@needs("onnx")
def test_a_cache_that_cannot_be_written_is_one_line(tmp_path):
    model = save(lr_model(), tmp_path / "models")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=r"cannot keep the converted model there .*--runtime-cache") as err:
        run(photo(tmp_path / "p.png"), "--model", model, "--runtime", "onnx", "--runtime-cache", tmp_path / "file")
    assert "\n" not in str(err.value)


# ---- bad input: one line ----------------------------------------------------------------


def test_a_runtime_not_installed_says_what_to_install(tmp_path, monkeypatch):
    hidden = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else hidden(n, *a))
    with pytest.raises(UserError) as err:
        run(photo(tmp_path / "p.png"), "--runtime", "onnx")  # said before any model is loaded
    message = str(err.value)
    assert "\n" not in message and "onnxruntime" in message
    assert "make setup EXPORT=1" in message and "pip install -r requirements-export.txt" in message


def test_a_runtime_not_installed_from_the_command_line(tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n == 'openvino' else _f(n, *a)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{hide}:{REPO}"}
    result = subprocess.run(
        [sys.executable, str(REPO / "enhance.py"), str(photo(tmp_path / "p.png")), "--runtime", "openvino"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "requirements-export.txt" in result.stderr and "--runtime keras" in result.stderr


@needs("onnx")
def test_a_model_of_the_other_kind_is_refused_before_it_is_converted(tmp_path, dem_model):
    photo_model, cache = save(lr_model(), tmp_path / "models"), tmp_path / "cache"
    with pytest.raises(UserError, match="a photo model"):
        run(write_dem(tmp_path / "dem.tif"), "--model", photo_model, "--runtime", "onnx", "--runtime-cache", cache)
    with pytest.raises(UserError, match="a raster model"):
        run(photo(tmp_path / "p.png"), "--model", dem_model[0], "--runtime", "onnx", "--runtime-cache", cache)
    assert not cache.exists()


@keras.saving.register_keras_serializable(package="test_runtime")
class ResizeBicubicLayer(keras.layers.Layer):
    """A custom layer made of an op that OpenVINO and LiteRT lack (TensorFlow's ResizeBicubic)."""

    def call(self, inputs):
        import tensorflow as tf

        return tf.image.resize(inputs, tf.shape(inputs)[1:3] * 2, method="bicubic")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])


def custom_layer_model(folder: Path) -> Path:
    from util.models.layers import suite_input

    inputs, x = suite_input("sr2", "lr", 1, "resize bicubic")
    return save(keras.Model(inputs, ResizeBicubicLayer()(x)), folder)


def test_a_model_that_cannot_be_converted_is_one_line_or_runs_in_keras_with_auto(tmp_path, capfd):
    runtime = next((r for r in ("litert", "openvino") if not missing_modules(FORMATS[r])), None)
    if runtime is None:
        pytest.skip("ai-edge-litert and openvino not installed (requirements-export.txt)")
    model = custom_layer_model(tmp_path / "models")
    source = photo(tmp_path / "p.png")
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as err:
        run(source, "--model", model, "--runtime", runtime, "--runtime-cache", cache)
    message = str(err.value)
    assert "\n" not in message and str(model) in message and "--runtime keras" in message
    assert runtimes.cached_entries(cache, model) == []  # nothing half-written enters the cache
    if runtimes.resolve("auto") in ("litert", "openvino"):
        capfd.readouterr()
        run(source, "--model", model, "--runtime-cache", cache, "--out", tmp_path / "auto.png")
        assert "runs in Keras" in capfd.readouterr().err and (tmp_path / "auto.png").is_file()


def test_auto_takes_the_first_installed_runtime_of_the_measured_order(monkeypatch):
    monkeypatch.setattr(runtimes, "installed", lambda name: name == "keras")
    assert runtimes.resolve("auto") == "keras"
    monkeypatch.setattr(runtimes, "installed", lambda name: True)
    assert runtimes.resolve("auto") == runtimes.PREFERENCE[0]
    assert runtimes.PREFERENCE[-1] == "keras"  # always installed: auto always finds one


# ---- benchmark.py runtimes --------------------------------------------------------------


def test_benchmark_runtimes_gives_a_row_per_runtime(tmp_path, small_sets, capsys):
    import benchmark

    model = save(lr_model(), tmp_path / "models")
    names = [r for r in runtimes.RUNTIMES if runtimes.installed(r)]
    args = [model, "--runtimes", ",".join(names), "--data", small_sets / "Tiny5", "--repeats", "1", "--skip-memory"]
    benchmark.main(["runtimes", *map(str, args), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    rows = json.loads((tmp_path / "out" / "benchmark_runtimes.json").read_text())["rows"]
    assert [row["runtime"] for row in rows if row["precision"] == "float32"] == names
    bfloat16 = [row for row in rows if row["precision"] == "bfloat16"]
    assert [row["runtime"] for row in bfloat16] == (["openvino"] if "openvino" in names and bfloat16_units() else [])
    keras_row = rows[0]
    for row in rows:
        close = row["precision"] == "float32"  # bfloat16 keeps 8 bits of each value
        assert row["ms_per_mp"] > 0 and row["max_diff_vs_keras"] <= (1 / 255 if close else 0.05)
        assert abs(row["psnr"] - keras_row["psnr"]) < (0.01 if close else 0.2) and row["dataset"] == "Tiny5"
    assert f"| {model} | sr4 | keras |" in printed.out
    if not runtimes_benchmark.opencv_reads_tensorflow():
        assert "OpenCV rows left out: pip install" in printed.err
    else:
        assert "put ESPCN_x4.pb, FSRCNN_x4.pb" in printed.err


def test_benchmark_runtimes_measures_opencv_espcn_on_the_same_input(tmp_path, small_sets, capsys):
    if not runtimes_benchmark.opencv_reads_tensorflow():
        pytest.skip("opencv-contrib-python-headless<5 not installed (OpenCV 5 reads no TensorFlow .pb)")
    import benchmark
    from studies import opencv_espcn

    model = save(lr_model(), tmp_path / "models")
    opencv_espcn.main(["--out", str(tmp_path / "opencv"), "--minutes", "0.01", "--scales", "4"])  # a few steps
    args = [model, "--runtimes", "keras", "--data", small_sets / "Tiny5", "--opencv-models", tmp_path / "opencv"]
    benchmark.main(["runtimes", *map(str, args), "--repeats", "1", "--out", str(tmp_path / "out")])
    rows = json.loads((tmp_path / "out" / "benchmark_runtimes.json").read_text())["rows"]
    espcn = [row for row in rows if row["runtime"] == "opencv"]
    assert len(espcn) == 1 and espcn[0]["task"] == "sr4" and espcn[0]["ms_per_mp"] > 0
    assert np.isfinite(espcn[0]["psnr"]) and espcn[0]["peak_rss_mb"] > 0
    assert "FSRCNN x4 left out: no" in capsys.readouterr().err
