"""Portable layers (BicubicUpsample without ResizeBicubic), export.py and running exported models."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from util.io.files import UserError
from util.models.export import (
    FORMATS,
    card_path,
    exported_format,
    load_exported,
    missing_modules,
    probe_input,
    tolerance,
)
from util.models.layers import BicubicPlusLuma, BicubicUpsample, keras
from util.models.loading import load_model

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "assets" / "models"
SHIPPED = sorted(p.stem for p in MODELS.glob("*.keras"))


def resize_bicubic(x, scale):
    """What BicubicUpsample computed before it was made portable: TensorFlow's ResizeBicubic."""
    import tensorflow as tf

    size = tf.shape(x)[1:3] * scale
    return tf.cast(tf.image.resize(x, size, method="bicubic"), x.dtype)


def space_to_depth(x, scale):
    import tensorflow as tf

    return tf.nn.space_to_depth(x, scale)


def colour_major(phases, channels):
    """``space_to_depth``'s channel order (phase * channels + colour) -> colour * phases + phase."""
    n, h, w, _ = phases.shape
    return np.asarray(phases).reshape(n, h, w, -1, channels).transpose(0, 1, 2, 4, 3).reshape(n, h, w, -1)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_bicubic_upsample_is_resize_bicubic(scale):
    rng = np.random.default_rng(scale)
    for h, w in [(1, 1), (1, 5), (2, 3), (7, 9), (33, 20)]:
        for channels in (1, 3):
            x = rng.random((2, h, w, channels), dtype=np.float32)
            new = np.asarray(BicubicUpsample(scale)(x))
            assert new.shape == (2, h * scale, w * scale, channels)
            np.testing.assert_allclose(new, resize_bicubic(x, scale).numpy(), rtol=0, atol=2e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_plus_luma_without_detail_is_resize_bicubic(scale):
    """The luma layer's own colour-major path (depthwise phases, one rearrangement) is bicubic too."""
    rng = np.random.default_rng(10 + scale)
    for h, w in [(1, 1), (2, 3), (7, 9), (33, 20)]:
        x = rng.random((2, h, w, 3), dtype=np.float32)
        detail = np.zeros((2, h, w, scale * scale), np.float32)
        new = np.asarray(BicubicPlusLuma(scale)([x, detail]))
        np.testing.assert_allclose(new, resize_bicubic(x, scale).numpy(), rtol=0, atol=2e-6)
        ramp = rng.random(detail.shape, dtype=np.float32)
        added = np.asarray(BicubicPlusLuma(scale)([x, ramp])) - new
        expected = np.asarray(keras.ops.depth_to_space(ramp, scale))
        for c in range(3):
            np.testing.assert_allclose(added[..., c], expected[..., 0], atol=2e-6)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_give_what_they_gave_with_resize_bicubic(name, monkeypatch):
    model, info = load_model(MODELS / f"{name}.keras")
    x = probe_input(info, size=40)
    new = np.asarray(model(x, training=False))
    # BicubicUpsample and BicubicPlusLuma take the phases of ResizeBicubic's output instead of their own.
    monkeypatch.setattr(
        BicubicUpsample, "phases", lambda self, x: space_to_depth(resize_bicubic(x, self.scale), self.scale)
    )
    monkeypatch.setattr(
        BicubicPlusLuma,
        "colour_phases",
        lambda self, x: colour_major(space_to_depth(resize_bicubic(x, self.scale), self.scale), x.shape[-1]),
    )
    old = np.asarray(model(x, training=False))
    if info["data_kind"] == "raster":
        assert np.abs(new - old).max() <= 1e-4 * np.abs(old).max()
    else:
        assert np.abs(new - old).max() <= 1 / 255


# ---- export.py -----------------------------------------------------------------


def export(args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "export.py"), *map(str, args)], capture_output=True, text=True)


def needs(fmt):
    missing = missing_modules(FORMATS[fmt])
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (requirements-export.txt)")


CASES = [(name, fmt) for name in SHIPPED for fmt in FORMATS]

# export.py's main for every shipped model and format in one child process: the outputs of each export
# between "== <model path> <format>" and "== rc <exit code>" lines (a child per export would import TensorFlow
# 36 times, a child per model 9 times: about 5 s each on 2 cores).
EXPORT_ALL = """
import sys
import export
from util.io.files import run_cli
for model, fmt, out in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    print("== %s %s" % (model, fmt), flush=True)
    code = run_cli(export.main, [model, "--format", fmt, "--out", out])
    print("== rc %d" % code, flush=True)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(name)`` -> ({format: (output path, exit code, what export.py printed)}, stderr): every
    shipped model exported to every installed format, by export.py's own main in one child process."""
    done = {}

    def export_all(name):
        if not done:
            folder = tmp_path_factory.mktemp("export")
            formats = [fmt for fmt in FORMATS if not missing_modules(FORMATS[fmt])]
            for n in SHIPPED:
                (folder / n).mkdir()
            outs = {
                (n, fmt): folder / n / (n + (FORMATS[fmt].suffix or "_saved_model")) for n in SHIPPED for fmt in formats
            }
            argv = [str(x) for (n, fmt), out in outs.items() for x in (MODELS / f"{n}.keras", fmt, out)]
            run = subprocess.run([sys.executable, "-c", EXPORT_ALL, *argv], capture_output=True, text=True, cwd=REPO)
            found = re.findall(r"^== ([^\n]+) (\w+)\n(.*?)^== rc (\d+)$", run.stdout, re.S | re.M)
            results = {n: {} for n in SHIPPED}
            for model, fmt, printed, code in found:
                n = Path(model).stem
                results[n][fmt] = (outs[n, fmt], int(code), printed)
            done.update({n: (results[n], run.stderr) for n in SHIPPED})
        return done[name]

    return export_all


@pytest.mark.parametrize("name,fmt", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_each_shipped_model_exports_and_matches_keras(name, fmt, exported):
    if missing_modules(FORMATS[fmt]):
        pytest.skip(f"{', '.join(missing_modules(FORMATS[fmt]))} not installed (requirements-export.txt)")
    results, stderr = exported(name)
    assert fmt in results, stderr[-3000:]
    out, code, printed = results[fmt]
    assert code == 0, stderr[-3000:]
    assert "differs from Keras by at most" in printed
    card = json.loads(card_path(out).read_text())
    model, info = load_model(MODELS / f"{name}.keras")
    assert {k: card[k] for k in info} == info and card["format"] == fmt
    # Another size than the check's, and a batch of two: the export keeps height, width and batch free.
    x = np.concatenate([probe_input(info, size=24)] * 2)
    got = load_exported(out).predict(x, batch_size=2)
    expected = np.asarray(model(x, training=False))
    assert np.abs(got - expected).max() <= tolerance(info)


@needs("onnx")
def test_exported_model_runs_like_a_keras_model(tmp_path):
    out = tmp_path / "denoise.onnx"
    assert export([MODELS / "denoise.keras", "--out", out]).returncode == 0
    exported = load_exported(out)
    model, info = load_model(MODELS / "denoise.keras")
    x = probe_input(info, size=32)
    np.testing.assert_allclose(exported.predict_on_batch(x), np.asarray(model(x)), atol=1e-5)
    np.testing.assert_allclose(exported(x, training=False), exported.predict(x), atol=0)


@needs("onnx")
def test_one_channel_onnx_output_keeps_its_rank_whatever_order_tf2onnx_optimises_in(tmp_path, monkeypatch):
    # tf2onnx's identity pass reaching the output before its reshape pass loses the output's Squeeze:
    # (1, N, H, W, 1) instead of (N, H, W, 1). Its node order decides that, and changes between runs.
    import tf2onnx.optimizer

    from util.models.export import export_model
    from util.models.layers import DepthToSpace, model_info, raster_model, suite_input

    passes = tf2onnx.optimizer._optimizers
    order = ["optimize_transpose", "fold_constants", "remove_identity", "reshape_optimizer"]
    monkeypatch.setattr(tf2onnx.optimizer, "_optimizers", OrderedDict((name, passes[name]) for name in order))
    inputs, x = suite_input("sr2", "lr", 1, "one channel", channels=1)
    network = keras.Model(inputs, DepthToSpace(2)(keras.layers.Conv2D(4, 3, padding="same")(x)))
    model = raster_model(network, value_scale=100.0)
    info = model_info(model)
    out = export_model(model, info, tmp_path / "raster.onnx", FORMATS["onnx"])
    x = np.concatenate([probe_input(info, size=16)] * 2)
    got = load_exported(out).predict_on_batch(x)
    expected = np.asarray(model(x))
    assert got.shape == expected.shape and np.abs(got - expected).max() <= tolerance(info)


# ---- bad input: one line on stderr, exit code 1 ---------------------------------


def test_exported_file_where_a_keras_model_is_expected(tmp_path):
    for name in ("sr4.onnx", "sr4.tflite", "sr4.xml"):
        (tmp_path / name).write_bytes(b"\0")
        with pytest.raises(UserError, match="exported for .*give the .keras file it was exported from"):
            load_model(tmp_path / name)
    saved = tmp_path / "sr4_saved_model"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\0")
    assert exported_format(saved) == "saved_model"
    run = export([tmp_path / "sr4.onnx", "--format", "saved_model", "--out", tmp_path / "x"])
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1
    assert "give the .keras file" in run.stderr


def test_missing_runtime_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    from util.models.export import require_runtime

    with pytest.raises(UserError, match=r"needs openvino .*requirements-export.txt"):
        require_runtime(FORMATS["openvino"])


def test_missing_runtime_from_the_command_line(tmp_path):
    # A runtime hidden from this run only: a module of that name that cannot be imported.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n == 'openvino' else _f(n, *a)\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": f"{hide}:{REPO}"}
    run = subprocess.run(
        [sys.executable, str(REPO / "export.py"), str(MODELS / "sr4.keras"), "--format", "openvino"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "pip install -r requirements-export.txt" in run.stderr


@keras.saving.register_keras_serializable(package="test_export")
class ResizeBicubicLayer(keras.layers.Layer):
    """A custom layer with an op LiteRT and OpenVINO lack (the old BicubicUpsample)."""

    def call(self, inputs):
        return resize_bicubic(inputs, 2)


@pytest.mark.parametrize("fmt", ["openvino", "litert"])
def test_a_model_with_a_non_portable_layer_is_one_line_error(fmt, tmp_path):
    if missing_modules(FORMATS[fmt]):
        pytest.skip(f"{', '.join(missing_modules(FORMATS[fmt]))} not installed (requirements-export.txt)")
    from util.models.export import check_exported, export_model, load_exported
    from util.models.layers import suite_input

    inputs, x = suite_input("sr2", "lr", 1, "test")
    model = keras.Model(inputs, ResizeBicubicLayer()(x))
    info = {**model.layers[1].info()}
    out = tmp_path / ("m" + FORMATS[fmt].suffix)
    with pytest.raises(UserError) as err:
        export_model(model, info, out, FORMATS[fmt])
        check_exported(model, info, load_exported(out))
    message = str(err.value)
    assert "\n" not in message and ("cannot be exported" in message or "cannot run it" in message)


def test_output_name_must_fit_the_format(tmp_path):
    run = export([MODELS / "sr4.keras", "--format", "litert", "--out", tmp_path / "sr4.onnx"])
    assert run.returncode == 1 and "litert files end in .tflite" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
