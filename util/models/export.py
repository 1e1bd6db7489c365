"""Exporting a suite model to other runtimes (ONNX, OpenVINO, LiteRT, SavedModel) and running the result.

``export_model`` is Keras' ``Model.export`` with the input left free in size (NHWC float32,
any batch, height and width), written atomically; ``load_exported`` opens an exported file
in its runtime as an object with the calls of a Keras model that the tiling code uses
(``predict_on_batch``, ``predict``, ``__call__``), so it can stand in for one. The model
card (``model_card``) is the model's SuiteInfo as JSON, written beside the exported file
because the exported graph keeps no config.

Nothing here imports TensorFlow or a runtime at import time: ``util.models`` imports
``exported_format`` to refuse an exported file where a ``.keras`` is expected.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from util.io import kinds
from util.io.files import UserError, stderr_hidden, write_json_atomic


@dataclass(frozen=True)
class Format:
    name: str  # export.py --format
    keras_format: str  # Model.export(format=...)
    suffix: str  # "" for a folder
    modules: tuple[str, ...]  # Python modules exporting and running it needs
    packages: str  # what to install, as pip names it
    runtime: str  # in words


FORMATS = {
    f.name: f
    for f in (
        Format("onnx", "onnx", ".onnx", ("tf2onnx", "onnxruntime"), "tf2onnx onnxruntime", "ONNX Runtime"),
        Format("openvino", "openvino", ".xml", ("openvino",), "openvino", "OpenVINO"),
        Format("litert", "litert", ".tflite", ("ai_edge_litert",), "ai-edge-litert", "LiteRT"),
        Format("saved_model", "tf_saved_model", "", ("tensorflow",), "tensorflow", "TensorFlow"),
    )
}
INSTALL = "pip install -r requirements-export.txt (or make setup EXPORT=1)"
FLOAT32, BFLOAT16 = "float32", "bfloat16"  # what an exported model computes in (load_exported's precision)
OPENVINO_PRECISION = {FLOAT32: "f32", BFLOAT16: "bf16"}


def exported_format(path) -> str | None:
    """The format name of an exported model file or folder, or None (a ``.keras`` or anything else)."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    for f in FORMATS.values():
        if f.suffix and path.suffix.lower() == f.suffix:
            return f.name
    return None


def missing_modules(fmt: Format) -> list[str]:
    return [m for m in fmt.modules if importlib.util.find_spec(m) is None]


def require_runtime(fmt: Format) -> None:
    """Raise a UserError naming what to install when ``fmt``'s exporter or runtime is missing."""
    missing = missing_modules(fmt)
    if missing:
        raise UserError(f"--format {fmt.name} needs {', '.join(missing)} ({fmt.runtime}): {INSTALL}")


def default_output(model_path, fmt: Format) -> Path:
    """Beside the model, its stem with the format's suffix (a folder ``<stem>_saved_model`` for SavedModel)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + (fmt.suffix or "_saved_model"))


def card_path(exported) -> Path:
    """``sr4.onnx`` -> ``sr4.onnx.json``: one card per exported file, whatever its format."""
    exported = Path(exported)
    return exported.with_name(exported.name + ".json")


def model_card(info: dict, fmt: Format, source: str, max_difference: float, tolerance: float) -> dict:
    """What a user of the exported file needs: the SuiteInfo, what goes in and comes out, the check."""
    raster = info["data_kind"] == kinds.RASTER
    values = f"heights in {info['units'] or 'data units'}" if raster else "float32 RGB in [0, 1]"
    if info["input_kind"] == "upsampled" and info["scale"] > 1:
        given = f"the low-resolution image bicubic-upsampled x{info['scale']} (MATLAB imresize)"
    elif info["scale"] > 1:
        given = "the low-resolution image"
    else:
        given = "the degraded (noisy or blurred) image"
    out_scale = info["scale"] if info["input_kind"] == "lr" else 1
    return {
        **info,
        "format": fmt.name,
        "runtime": fmt.runtime,
        "source": source,
        "input": {
            "layout": "NHWC",
            "dtype": "float32",
            "channels": info["channels"],
            "values": values,
            "what": given,
            "height_width_multiple_of": info["size_multiple"],
        },
        "output": {"layout": "NHWC", "dtype": "float32", "values": values, "size": f"input size x {out_scale}"},
        "check": {"max_abs_difference_vs_keras": max_difference, "tolerance": tolerance},
    }


def export_model(model, info: dict, path, fmt: Format) -> Path:
    """Write ``model`` in ``fmt`` to ``path`` (atomically: files appear complete or not at all)."""
    import tensorflow as tf

    require_runtime(fmt)
    path = Path(path)
    signature = [tf.TensorSpec((None, None, None, info["channels"]), tf.float32, name="image")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        target = Path(tmp) / path.name
        root_level = logging.getLogger().level  # OpenVINO's converter leaves the root logger at ERROR
        try:
            model.export(str(target), format=fmt.keras_format, input_signature=signature, verbose=False)
        except Exception as err:  # converters raise many types; the first line names the op
            detail = " ".join(str(err).split())[:300]
            raise UserError(
                f"{model.name}: cannot be exported to {fmt.name} ({type(err).__name__}: {detail}); "
                "a custom layer must be built from ops the runtime has (see BicubicUpsample in util/models/)"
            ) from None
        finally:
            logging.getLogger().setLevel(root_level)
        if fmt.name == "onnx":
            restore_output_squeeze(target)
        # OpenVINO's weights (.bin) go in before the .xml that names them.
        for part in sorted(Path(tmp).iterdir(), key=lambda p: p.suffix == ".xml"):
            final = path.with_name(part.name)
            if part.is_dir():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(part, final)
    return path


def restore_output_squeeze(path, rank: int = 4) -> bool:
    """Give a one-channel ONNX output back the Squeeze that tf2onnx can lose; True when it was lost.

    tf2onnx turns the last NCHW -> NHWC transpose of a one-channel output (the raster models)
    into a Reshape to ``(1, N, H, W, 1)`` followed by a Squeeze of the leading 1 (its
    ReshapeOptimizer). When its IdentityOptimizer has already made that Reshape the graph output,
    the Squeeze is never wired to it and the output keeps the extra leading dimension. Which of
    the two passes reaches the Reshape first depends on the order tf2onnx visits nodes in, which
    changes from run to run, so the same model exports right most times and wrong some.
    ``rank``: that of the model's output (NHWC).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    output = graph.output[0]
    producer = next((node for node in graph.node if output.name in node.output), None)
    if producer is None or producer.op_type != "Reshape":
        return False
    shape = next((numpy_helper.to_array(t) for t in graph.initializer if t.name == producer.input[1]), None)
    extra = 0 if shape is None else len(shape) - rank
    if extra <= 0 or np.any(shape[:extra] != 1):
        return False
    reshaped = f"{output.name}_before_squeeze"
    producer.output[0] = reshaped
    axes = numpy_helper.from_array(np.arange(extra, dtype=np.int64), name=f"{reshaped}_axes")
    graph.initializer.append(axes)
    graph.node.append(helper.make_node("Squeeze", [reshaped, axes.name], [output.name]))
    dims = output.type.tensor_type.shape.dim
    while len(dims) > rank:  # the declared shape may have taken the Reshape's
        del dims[0]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return True


# ---- Running an exported model -----------------------------------------------


class ExportedModel:
    """An exported model in its runtime, called like a Keras model on float32 NHWC arrays."""

    def __init__(self, path, fmt: str, precision: str = FLOAT32):
        self.path = Path(path)
        self.format = fmt
        self.name = self.path.name
        self.precision = precision
        self._run = _open_openvino(self.path, precision) if fmt == "openvino" else _OPENERS[fmt](self.path)

    def predict_on_batch(self, x) -> np.ndarray:
        return np.asarray(self._run(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)

    def predict(self, x, batch_size: int = 32, verbose=0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return np.concatenate([self.predict_on_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    def __call__(self, x, training=False) -> np.ndarray:
        return self.predict_on_batch(np.asarray(x))


def load_exported(path, precision: str = FLOAT32) -> ExportedModel:
    """Open an exported file (``.onnx``, OpenVINO ``.xml``, ``.tflite``, a SavedModel folder) in its runtime.

    ``precision``: ``"float32"``, or ``"bfloat16"`` (OpenVINO only: its weights and activations in
    bfloat16 on a CPU with bfloat16 units, about twice as fast; docs/runtimes.md measures the loss).
    """
    path = Path(path)
    fmt = exported_format(path)
    if fmt is None or not path.exists():
        kinds = ", ".join(f.suffix or "a SavedModel folder" for f in FORMATS.values())
        raise UserError(f"{path}: not an exported model ({kinds}); export one with export.py MODEL.keras")
    if precision != FLOAT32 and fmt != "openvino":
        raise UserError(f"{path}: {precision} runs in OpenVINO only; give a .xml or float32")
    require_runtime(FORMATS[fmt])
    return ExportedModel(path, fmt, precision)


def bfloat16_units() -> bool:
    """Whether OpenVINO finds bfloat16 units on this CPU (AVX-512 BF16 or AMX); without them it emulates
    bfloat16, slower than float32."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _open_onnx(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Threads that spin while waiting for work took cores from the one doing it: 10-40 % slower on 2 cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _per_shape(build, keep: int = 4):
    """A run function that builds one runner per input shape with ``build(shape)``, the ``keep`` latest kept.

    Tiles are all of one shape (two with the self-ensemble's rotations of a non-square tile), and
    OpenVINO and LiteRT run a model compiled for a fixed shape faster than one left free
    (docs/runtimes.md).
    """
    runners = OrderedDict()

    def run(x):
        if x.shape not in runners:
            runners[x.shape] = build(x.shape)
            while len(runners) > keep:
                runners.popitem(last=False)
        runners.move_to_end(x.shape)
        return runners[x.shape](x)

    return run


def cpu_threads() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _open_openvino(path, precision: str = FLOAT32):
    import openvino

    core = openvino.Core()
    model = core.read_model(str(path))
    # On CPUs with bfloat16 units OpenVINO computes in bfloat16 unless told otherwise (1e-2 off): always told.
    config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision]}

    def build(shape):
        model.reshape({model.inputs[0]: list(shape)})
        compiled = core.compile_model(model, "CPU", config)
        return lambda x: compiled(x)[0]

    return _per_shape(build)


def _open_litert(path):
    from ai_edge_litert.interpreter import Interpreter

    def build(shape):
        # LiteRT runs one thread unless told; the exported file is for any size, planned here for this one.
        interpreter = Interpreter(model_path=str(path), num_threads=cpu_threads())
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, shape)
        with stderr_hidden():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." at each allocation
            interpreter.allocate_tensors()
        output = interpreter.get_output_details()[0]["index"]

        def run(x):
            interpreter.set_tensor(index, x)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        return run

    return _per_shape(build)


def _open_saved_model(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held: its variables die with it
    return lambda x: loaded.serve(tf.constant(x)).numpy()


_OPENERS = {"onnx": _open_onnx, "openvino": _open_openvino, "litert": _open_litert, "saved_model": _open_saved_model}


# ---- The check against Keras ---------------------------------------------------


def tolerance(info: dict) -> float:
    """Largest difference from Keras accepted: 1/255 for images in [0, 1], 1e-4 of the height scale for rasters."""
    return 1e-4 * info["value_scale"] if info["data_kind"] == kinds.RASTER else 1.0 / 255.0


def probe_input(info: dict, size: int = 48) -> np.ndarray:
    """A smooth image with texture, (1, H, W, channels) float32, in the model's input units.

    H and W differ and are multiples of the model's size multiple, so a mix-up of axes shows.
    """
    m = info["size_multiple"]
    h, w = -(-size // m) * m, -(-(size + 8) // m) * m
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    channels = [
        0.5 + 0.3 * np.sin(xx / (5 + c) + c) * np.cos(yy / 7) + 0.1 * rng.standard_normal((h, w))
        for c in range(info["channels"])
    ]
    image = np.clip(np.stack(channels, -1), 0, 1)
    if info["data_kind"] == kinds.RASTER:
        image = 1000.0 + (image - 0.5) * info["value_scale"]  # heights around 1000 in the data's units
    return image[None].astype(np.float32)


def check_exported(model, info: dict, exported: ExportedModel) -> float:
    """Max absolute difference between the exported model and Keras on ``probe_input``."""
    x = probe_input(info)
    expected = np.asarray(model(x, training=False), dtype=np.float32)
    try:
        got = exported.predict_on_batch(x)
    except Exception as err:  # each runtime raises its own types
        detail = " ".join(str(err).split())[:300]
        raise UserError(
            f"{exported.path}: written, but {FORMATS[exported.format].runtime} cannot run it "
            f"({type(err).__name__}: {detail}); a layer uses an op the runtime lacks"
        ) from None
    if got.shape != expected.shape:
        raise UserError(f"{exported.path}: output shape {got.shape}, Keras gives {expected.shape}; the export is wrong")
    return float(np.abs(got - expected).max())


def write_card(path, card: dict) -> Path:
    out = card_path(path)
    write_json_atomic(out, card)
    return out
