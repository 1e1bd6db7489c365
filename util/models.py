"""What every model of the suite carries, and loading a saved one.

A saved ``model.keras`` says what it expects in a ``SuiteInfo`` layer placed on its
input: the task (``sr2``, ``sr4``, ``noise64`` ...: ``util.tasks``), the scale, the input
kind and the size multiple. ``SuiteInfo`` is an identity op (free at run time); it is
a registered layer with ``get_config`` so that models load with ``safe_mode=True``.

Input kinds:
  * ``"upsampled"``: the model takes the LR image bicubic-upsampled to the output size
    (the prototypes: SRCNN-style pre-upsampling), or the noisy image for denoising;
  * ``"lr"``: the model takes the LR image itself and upsamples inside.
Images enter and leave every model as float32 NHWC RGB in [0, 1].

Rasters (DEMs and other grids in physical units; ``data_kind="raster"``): the model
takes and returns one channel in the data's units (metres). ``raster_model`` wraps a
one-channel network between ``RasterNormalize`` (subtract each input's mean, divide by
the data set's ``value_scale``, add 0.5: the range the networks are built for) and
``RasterDenormalize`` (the inverse), both in float32 whatever the training precision,
so the normalisation travels inside the saved model.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from util import kinds
from util.export import exported_format
from util.files import UserError, import_tensorflow_quietly
from util.resize import bicubic_upscale
from util.tasks import parse_task

import_tensorflow_quietly()
import keras  # noqa: E402  (after TensorFlow, imported quietly above)


@keras.saving.register_keras_serializable(package="suite")
class SuiteInfo(keras.layers.Layer):
    """Identity layer whose config records what the model expects (see module doc)."""

    def __init__(
        self,
        task="sr4",
        scale=4,
        input_kind="upsampled",
        size_multiple=1,
        architecture="",
        data_kind="photo",
        channels=3,
        value_scale=1.0,
        units="",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.task = task
        self.scale = int(scale)
        self.input_kind = input_kind
        self.size_multiple = int(size_multiple)
        self.architecture = architecture
        self.data_kind = data_kind
        self.channels = int(channels)
        self.value_scale = float(value_scale)
        self.units = units

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            task=self.task,
            scale=self.scale,
            input_kind=self.input_kind,
            size_multiple=self.size_multiple,
            architecture=self.architecture,
            data_kind=self.data_kind,
            channels=self.channels,
            value_scale=self.value_scale,
            units=self.units,
        )
        return config

    def info(self) -> dict:
        return {
            "task": self.task,
            "scale": self.scale,
            "input_kind": self.input_kind,
            "size_multiple": self.size_multiple,
            "architecture": self.architecture,
            "data_kind": self.data_kind,
            "channels": self.channels,
            "value_scale": self.value_scale,
            "units": self.units,
        }


@keras.saving.register_keras_serializable(package="suite")
class DepthToSpace(keras.layers.Layer):
    """Sub-pixel upsampling: (H, W, C*s*s) -> (H*s, W*s, C), as ``tf.nn.depth_to_space``."""

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        return keras.ops.depth_to_space(inputs, self.scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="suite")
class SpaceToDepth(keras.layers.Layer):
    """Pixel unshuffle: (H, W, C) -> (H/s, W/s, C*s*s), as ``tf.nn.space_to_depth`` (H, W multiples of s)."""

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        return keras.ops.space_to_depth(inputs, self.scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="suite")
class BicubicUpsample(keras.layers.Layer):
    """Bicubic upsampling by an integer factor inside a model, as ``tf.image.resize(..., "bicubic")``.

    Keys' cubic (a = -0.5) with half-pixel centres; at the border, taps that fall outside
    the image are dropped and the remaining weights renormalised to sum 1 (TensorFlow's
    ``ResizeBicubic``). Used as a skip path that the network corrects; it differs from the
    MATLAB bicubic of ``util.resize`` (mirrored border) only within two pixels of the border.

    Built from a fixed-weight convolution and ``depth_to_space``, not ``ResizeBicubic``,
    because ONNX, OpenVINO and LiteRT have no ``ResizeBicubic`` (``export.py``): each of the
    ``scale**2`` sub-pixel phases of the output is a 5x5 filter of the input (Keys' kernel
    spans 4 taps, which fall in a window of 5 for every phase). The zero-padded convolution
    divided by the same convolution of an all-ones image is exactly the renormalised border;
    the divisor has the shape of the dividend (a broadcast division is several times slower in
    TensorFlow). The weights are constants, not variables, so models saved before keep loading.
    """

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("BicubicUpsample needs a known number of channels")
        self._kernel = bicubic_phase_kernel(self.scale, channels)
        # One input channel of ones, the output channels of the kernel: the weight sum of each tap.
        self._ones_kernel = self._kernel.sum(axis=2, keepdims=True)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")  # ResizeBicubic computes in float32 too
        weighted = keras.ops.conv(x, self._kernel, padding="same")
        weight_sum = keras.ops.conv(keras.ops.ones_like(x[:1, :, :, :1]), self._ones_kernel, padding="same")
        upsampled = keras.ops.depth_to_space(weighted / weight_sum, self.scale)
        return keras.ops.cast(upsampled, inputs.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _keys_cubic(distance: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (the one of ``util.resize`` and ``ResizeBicubic``)."""
    d = np.abs(distance)
    near = 1.5 * d**3 - 2.5 * d**2 + 1.0
    far = -0.5 * d**3 + 2.5 * d**2 - 4.0 * d + 2.0
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def bicubic_phase_kernel(scale: int, channels: int) -> np.ndarray:
    """float32 (5, 5, channels, scale*scale*channels) kernel of ``BicubicUpsample``.

    Output pixel ``scale*i + p`` (half-pixel centres) lies at input coordinate
    ``i + (p + 0.5) / scale - 0.5``; its taps are inputs ``i-2 .. i+2``. The output
    channels are ordered ``(p_row*scale + p_col)*channels + c``, as ``depth_to_space``
    reads them; each channel is filtered on its own (zeros across channels).
    """
    phases = np.arange(scale)[:, None]
    offsets = np.arange(5)[None, :] - 2
    taps = _keys_cubic((phases + 0.5) / scale - 0.5 - offsets)  # (phase, tap)
    per_phase = np.einsum("pa,qb->abpq", taps, taps).reshape(5, 5, scale * scale)
    kernel = np.zeros((5, 5, channels, scale * scale, channels))
    for c in range(channels):
        kernel[:, :, c, :, c] = per_phase
    return kernel.reshape(5, 5, channels, scale * scale * channels).astype(np.float32)


@keras.saving.register_keras_serializable(package="suite")
class RasterNormalize(keras.layers.Layer):
    """Raster in data units -> ``[(x - mean) / value_scale + 0.5, mean]``, the mean of each input."""

    def __init__(self, value_scale=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.value_scale = float(value_scale)

    def call(self, inputs):
        mean = keras.ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        return [(inputs - mean) / self.value_scale + 0.5, mean]

    def compute_output_shape(self, input_shape):
        return [input_shape, (input_shape[0], 1, 1, 1)]

    def get_config(self):
        return {**super().get_config(), "value_scale": self.value_scale}


@keras.saving.register_keras_serializable(package="suite")
class RasterDenormalize(keras.layers.Layer):
    """``[y, mean]`` -> ``(y - 0.5) * value_scale + mean``: back to data units."""

    def __init__(self, value_scale=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.value_scale = float(value_scale)

    def call(self, inputs):
        y, mean = inputs
        return (keras.ops.cast(y, "float32") - 0.5) * self.value_scale + mean

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "value_scale": self.value_scale}


def suite_input(task: str, input_kind: str, size_multiple: int, architecture: str, channels: int = 3):
    """``keras.Input`` of any size followed by the SuiteInfo layer; returns ``(inputs, x)``."""
    inputs = keras.Input(shape=(None, None, channels))
    info = SuiteInfo(
        task=task,
        scale=parse_task(task).scale,
        input_kind=input_kind,
        size_multiple=size_multiple,
        architecture=architecture,
        channels=channels,
    )
    return inputs, info(inputs)


def raster_model(network: keras.Model, value_scale: float, units: str = "m") -> keras.Model:
    """A one-channel ``network`` (built by a model script with ``channels=1``) as a raster model in data units."""
    inner = model_info(network)
    if inner["channels"] != 1:
        raise ValueError(f"raster_model needs a one-channel network, got {inner['channels']} channels")
    if not value_scale > 0:
        raise UserError(f"value scale {value_scale}: the training rasters are flat (no height variation to learn)")
    inputs = keras.Input(shape=(None, None, 1))
    info = SuiteInfo(
        **{**inner, "data_kind": kinds.RASTER, "value_scale": value_scale, "units": units},
        name="suite_info_raster",
        dtype="float32",  # heights of 2000 m in bfloat16 would be rounded to 8 m steps before normalisation
    )
    x, mean = RasterNormalize(value_scale)(info(inputs))
    outputs = RasterDenormalize(value_scale)([network(x), mean])
    return keras.Model(inputs, outputs, name=network.name)


AVERAGE_MATCH = ("task", "scale", "input_kind", "data_kind", "channels", "units")  # members must agree on these


def average_models(models: list, names: list[str]) -> keras.Model:
    """One model whose output is the mean of the outputs of ``models`` (all trained for the same task and data).

    Averaging independently trained networks (an ensemble) lowers the error of each: their
    mistakes differ. The members run whole, each with its own normalisation, inside one
    ``.keras`` file whose SuiteInfo says what they share; ``names`` (file names) label the
    members in errors and in the architecture text.
    """
    if len(models) < 2:
        raise UserError("averaging needs at least two models; give --model A.keras,B.keras[,...]")
    infos = [model_info(m) for m in models]
    for name, info in zip(names[1:], infos[1:], strict=True):
        differ = [k for k in AVERAGE_MATCH if info[k] != infos[0][k]]
        if differ:
            first = ", ".join(f"{k}={infos[0][k]!r}" for k in differ)
            this = ", ".join(f"{k}={info[k]!r}" for k in differ)
            raise UserError(f"{name}: {this}, but {names[0]} has {first}; average models of the same task and data")
    size_multiple = int(np.lcm.reduce([i["size_multiple"] for i in infos]))
    architecture = f"average of {len(models)}: " + "; ".join(f"{i['architecture']}" for i in infos)
    inputs = keras.Input(shape=(None, None, infos[0]["channels"]))
    info = SuiteInfo(
        **{**infos[0], "size_multiple": size_multiple, "architecture": architecture},
        name="suite_info_average",
        dtype="float32",
    )
    x = info(inputs)
    # Re-wrapped under unique names: two loaded models may share one.
    outputs = [keras.Model(m.inputs[0], m.outputs[0], name=f"member_{k}")(x) for k, m in enumerate(models)]
    average = keras.layers.Average(dtype="float32", name="average")(outputs)
    return keras.Model(inputs, average, name="average")


def model_info(model: keras.Model) -> dict:
    """The SuiteInfo of a model as a dict (task, scale, input_kind, size_multiple, architecture, data_kind ...).

    A raster model's own SuiteInfo comes before the one of the network it wraps.
    """
    for layer in model.layers:
        if isinstance(layer, SuiteInfo):
            return layer.info()
    raise UserError(f"model {model.name!r} has no SuiteInfo layer; it was not built by this suite")


def check_info(info: dict, where: str) -> None:
    """A one-line UserError unless the SuiteInfo's scale and size multiple are usable (1 or more, as the task says).

    A hand-edited or foreign config with a scale of -4 would otherwise surface as "negative
    dimensions" deep inside the tiling; every script that loads a model shares this check.
    """
    scale, multiple, task = info["scale"], info["size_multiple"], info["task"]
    try:
        task_scale = parse_task(task).scale
    except UserError:
        task_scale = scale  # a task this version does not know: its scale is checked on its own
    if scale < 1 or scale != task_scale:
        raise UserError(
            f"{where}: its SuiteInfo says scale {scale} for task {task}, which needs scale {task_scale}; the file was "
            "edited or not saved by this suite: give the model.keras of a run (runs/<run>/model.keras)"
        )
    if multiple < 1:
        raise UserError(
            f"{where}: its SuiteInfo says size_multiple {multiple}; it must be 1 or more: give the model.keras of a run"
        )


def load_model(path) -> tuple[keras.Model, dict]:
    """Load a ``.keras`` file with ``safe_mode=True``; return the model and its checked info."""
    path = Path(path)
    exported = exported_format(path)
    if exported:
        raise UserError(f"{path}: a model exported for {exported}; give the .keras file it was exported from")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a model file; give the .keras file (e.g. runs/<run>/model.keras)")
    if not path.is_file():
        raise UserError(f"{path}: no such model file; train one first or give --model PATH")
    # Keras says "File not found" for a file that exists but is not a zip archive (text, zero bytes, HDF5).
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"{path}: not a .keras model (a .keras file is a zip archive; this is {path.stat().st_size} bytes of "
            "something else); give a model saved by the suite (runs/<run>/model.keras)"
        )
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for a bad archive
        detail = " ".join(str(err).split())  # Keras's messages span lines; the error is one
        if "safe_mode" in detail:
            raise UserError(
                f"{path}: the model contains a Lambda layer or other arbitrary Python code, which loading with "
                "safe_mode=True refuses; rebuild it with registered layers that have get_config() "
                "(util/models.py) and save it again, or give a model trained by the suite's scripts"
            ) from None
        raise UserError(f"{path}: not a loadable .keras model ({type(err).__name__}: {detail[:300]})") from None
    info = model_info(model)
    check_info(info, str(path))
    return model, info


def prepare_input(degraded: np.ndarray, info: dict, batch: bool = False) -> np.ndarray:
    """Degraded image(s) -> what the model takes: float32 in [0, 1].

    ``degraded`` is HWC (or NHWC with ``batch``), uint8, uint16 or float in [0, 1]:
    the LR image for SR tasks, the noisy image for denoising. Models whose
    ``input_kind`` is ``"upsampled"`` get it bicubic-upsampled by the task's scale
    first: uint8 stays uint8 and is rounded, as the stored training inputs are;
    other types are upsampled in float and clipped to [0, 1] (bicubic overshoots); a float
    input that is not upsampled is taken as it is.
    """
    upsampled = info["input_kind"] == "upsampled" and info["scale"] > 1
    if degraded.dtype == np.uint16:
        degraded = degraded.astype(np.float32) / 65535.0
    if upsampled:
        degraded = bicubic_upscale(degraded, info["scale"], batch=batch)
    if degraded.dtype == np.uint8:
        return degraded.astype(np.float32) / 255.0
    if upsampled:
        return np.clip(degraded, 0.0, 1.0).astype(np.float32)
    return degraded.astype(np.float32)  # a float image as it is (a noisy one may stray outside [0, 1])
