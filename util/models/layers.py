"""What every model of the suite carries, and loading a saved one.

A saved ``model.keras`` says what it expects in a ``SuiteInfo`` layer placed on its
input: the task (``sr2``, ``sr4``, ``noise64`` ...: ``util.data.tasks``), the scale, the input
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
so the normalisation travels inside the saved model. With ``conserve`` (CONSERVE, a super-resolution
model that takes the LR grid) ``ConserveBlockMean`` follows in data units: every s x s block of the
output then averages to its LR cell, and the SuiteInfo says ``conserve=True``.
A stack model with static predictors
(util.data.static) takes them after the values, normalised by ``StaticNormalize`` with the
statistics its SuiteInfo ``aux`` card records.
"""

from __future__ import annotations

import numpy as np

from util.data.tasks import parse_task
from util.io import kinds
from util.io.files import UserError, import_tensorflow_quietly

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
        patch=0,
        conserve=False,
        aux=None,
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
        self.patch = int(patch)
        self.conserve = bool(conserve)  # a saved config without the key: False
        self.aux = aux or None  # the static predictors' card (util.data.static.card), None without

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
            patch=self.patch,
            conserve=self.conserve,
            aux=self.aux,
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
            "patch": self.patch,
            "conserve": self.conserve,
            "aux": self.aux,
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
    MATLAB bicubic of ``util.data.resize`` (mirrored border) only within two pixels of the border.

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
        upsampled = keras.ops.depth_to_space(self.phases(x), self.scale)
        return keras.ops.cast(upsampled, inputs.dtype)

    def phases(self, x):
        """The ``scale**2`` sub-pixel phases of the float32 image ``x`` upsampled, ``depth_to_space``'s input."""
        weighted = keras.ops.conv(x, self._kernel, padding="same")
        return weighted / keras.ops.conv(keras.ops.ones_like(x[:1, :, :, :1]), self._ones_kernel, padding="same")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="suite")
class BicubicPlusLuma(BicubicUpsample):
    """``[image, detail]`` -> the image upsampled as by ``BicubicUpsample`` plus one channel of sub-pixel
    detail added to every colour channel (``detail``: ``scale**2`` phases at the input's resolution, as
    ``depth_to_space`` reads them).

    Adding the same value to R, G and B changes the luma by it and leaves the chroma bicubic (ESPCN's
    and FSRCNN's luma-only output). Everything happens at the input's resolution, colour by colour:
    a depthwise convolution gives each colour's ``scale**2`` phases, the detail is repeated once per
    colour (a concatenation) and added, and one rearrangement (``depth_to_space`` with the colour
    before the phase, ONNX's "CRD" order, as reshape and transpose) makes the output. The same numbers
    as upsampling both and adding at the output resolution, without a broadcast there (which OpenVINO
    runs in a reference kernel), a matrix product to spread the detail, or a dense convolution
    across colours.
    """

    def __init__(self, scale=2, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(scale, **kwargs)

    def build(self, input_shape):
        image_shape, detail_shape = input_shape
        super().build(image_shape)
        phases, channels = self.scale * self.scale, image_shape[-1]
        if detail_shape[-1] != phases:
            raise ValueError(f"BicubicPlusLuma x{self.scale} needs {phases} detail channels, got {detail_shape[-1]}")
        per_channel = self._kernel.reshape(5, 5, channels, phases, channels)
        # (5, 5, channels, phases): output channel c * phases + p of the depthwise convolution.
        self._depthwise = np.stack([per_channel[:, :, c, :, c] for c in range(channels)], axis=2)
        self._ones_by_colour = np.tile(self._depthwise[:, :, :1, :], (1, 1, 1, channels)).reshape(5, 5, 1, -1)

    def colour_phases(self, x):
        """The phases of the float32 image ``x`` upsampled, colour-major: channel ``c * scale**2 + p``."""
        weighted = keras.ops.depthwise_conv(x, self._depthwise, padding="same")
        return weighted / keras.ops.conv(keras.ops.ones_like(x[:1, :, :, :1]), self._ones_by_colour, padding="same")

    def call(self, inputs):
        image, detail = (keras.ops.cast(x, "float32") for x in inputs)
        channels, s = image.shape[-1], self.scale
        x = self.colour_phases(image) + keras.ops.concatenate([detail] * channels, axis=-1)
        _, height, width, _ = keras.ops.shape(x)
        x = keras.ops.reshape(x, (-1, height, width, channels, s, s))
        x = keras.ops.transpose(x, (0, 1, 4, 2, 5, 3))  # (n, row, row phase, column, column phase, colour)
        return keras.ops.reshape(x, (-1, height * s, width * s, channels))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(input_shape[0])


def _keys_cubic(distance: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (the one of ``util.data.resize`` and ``ResizeBicubic``)."""
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
class StaticNormalize(keras.layers.Layer):
    """Static predictors' channels -> ``(x - mean) / std`` per channel (util.data.static: the card's statistics)."""

    def __init__(self, mean=(0.0,), std=(1.0,), **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]

    def call(self, inputs):
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return (keras.ops.cast(inputs, "float32") - mean) / std

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


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


@keras.saving.register_keras_serializable(package="suite")
class ConserveBlockMean(keras.layers.Layer):
    """``[output, lr]`` -> ``output + nearest-upsampled(lr - block_mean(output))``, float32 in data units.

    ``output`` (N, H, W, C) and ``lr`` (N, H/s, W/s, C), ``s = scale``: every s x s block of the
    result averages to its LR cell exactly (up to float32 rounding), whatever the network made of
    it. This is the additive constraint layer of Harder et al. (2023), "Hard-constrained deep
    learning for climate downscaling" (JMLR), applied after the network in training and in use,
    so the loss sees the corrected output. Their multiplicative and softmax layers also keep the
    output positive (precipitation); a temperature needs no such thing. Each block is shifted by
    one constant, so the layer adds steps at block edges where the network did not conserve; the
    block mean counts all s x s cells (the model does not know which HR cells are nodata).

    Average pooling, a copy along channels and ``depth_to_space`` (nearest upsampling by the
    ops of ``DepthToSpace``): every runtime of ``export.py`` has them.
    """

    def __init__(self, scale=2, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        output, lr = (keras.ops.cast(x, "float32") for x in inputs)
        s = self.scale
        coarse = self._nearest(lr)
        # The same sum in the order that rounds least: the block means are taken of the deviations
        # from the LR cell (a few units), not of the values (hundreds of kelvin or metres).
        detail = output - coarse
        return coarse + (detail - self._nearest(keras.ops.average_pool(detail, s, strides=s, padding="valid")))

    def _nearest(self, x):
        """Nearest upsampling by ``scale``: ``depth_to_space`` reads channel (row phase * s + column phase) * C + c,
        so s*s copies of the channels put each cell's value in every one of its s x s cells."""
        return keras.ops.depth_to_space(keras.ops.tile(x, (1, 1, 1, self.scale**2)), self.scale)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


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


def model_info(model: keras.Model) -> dict:
    """The SuiteInfo of a model as a dict (task, scale, input_kind, size_multiple, architecture, data_kind ...).

    A raster model's own SuiteInfo comes before the one of the network it wraps.
    """
    for layer in model.layers:
        if isinstance(layer, SuiteInfo):
            return layer.info()
    raise UserError(f"model {model.name!r} has no SuiteInfo layer; it was not built by this suite")


def raster_model(
    network: keras.Model,
    value_scale: float,
    units: str = "m",
    patch: int = 0,
    conserve: bool = False,
    aux: dict | None = None,
) -> keras.Model:
    """A one-channel ``network`` (built by a model script with ``channels=1``) as a raster model in data units.

    ``patch``: the side in HR cells of the training patches, recorded so that inference gives the
    model tiles of that size (util.inference.raster_enhance.raster_tiling); 0: not recorded.
    ``conserve`` (CONSERVE): end with ``ConserveBlockMean``, so that the output's block means
    equal the LR input; a UserError for a network without an LR grid to conserve (``conservable``).
    ``aux``: the card of static predictors (util.data.static.card); the input then has their channels
    after the values, normalised by the card's statistics and given to the network beside the values.
    """
    inner = model_info(network)
    extra = 0 if not aux else len(aux["fields"]) * aux["scale"] ** 2
    if inner["channels"] != 1 + extra:
        raise ValueError(f"raster_model needs a network of {1 + extra} channels, got {inner['channels']}")
    if not value_scale > 0:
        raise UserError(f"value scale {value_scale}: the training rasters are flat (no height variation to learn)")
    if conserve:
        conservable(inner)
    inputs = keras.Input(shape=(None, None, 1 + extra))
    info = SuiteInfo(
        **{
            **inner,
            "data_kind": kinds.RASTER,
            "value_scale": value_scale,
            "units": units,
            "patch": patch,
            "conserve": conserve,
            "aux": aux,
        },
        name="suite_info_raster",
        dtype="float32",  # heights of 2000 m in bfloat16 would be rounded to 8 m steps before normalisation
    )
    given = info(inputs)
    lr = given[..., :1] if aux else given
    x, mean = RasterNormalize(value_scale)(lr)
    if aux:
        x = keras.layers.Concatenate(dtype="float32")([x, StaticNormalize(*_static_stats(aux))(given[..., 1:])])
    outputs = RasterDenormalize(value_scale)([network(x), mean])
    if conserve:
        outputs = ConserveBlockMean(inner["scale"])([outputs, lr])
    return keras.Model(inputs, outputs, name=network.name)


def conservable(info: dict) -> None:
    """A one-line UserError unless the network of ``info`` has LR block means to keep (CONSERVE).

    It needs a super-resolution task (denoising and deblurring keep the input's size: no block
    to average) and the LR grid itself as input: a network given the bicubic-upsampled grid
    never sees the LR cells, whose values its block means would have to equal.
    """
    if info["scale"] == 1:
        raise UserError(
            f"CONSERVE=True: task {info['task']} keeps the input's size, so there is no block mean to conserve; "
            "give a super-resolution task (sr2, sr4, sr8) or drop --conserve"
        )
    if info["input_kind"] != "lr":
        raise UserError(
            f"CONSERVE=True: {info['architecture'] or 'this model'} takes the grid bicubic-upsampled, not the LR "
            "cells whose means it would keep; use a model on the LR grid (edsr_lite.py) or drop --conserve"
        )


def _static_stats(aux: dict) -> tuple[list[float], list[float]]:
    """Per input channel (space-to-depth order: channel k of every phase) the card's mean and std."""
    phases = aux["scale"] ** 2
    return [f["mean"] for f in aux["fields"]] * phases, [f["std"] for f in aux["fields"]] * phases
