"""MATLAB-compatible bicubic resizing (imresize with antialiasing)."""

from __future__ import annotations

import numpy as np

# Written by hand because no installed library does this correctly: PIL, OpenCV and
# tf.image differ from MATLAB's imresize (antialiasing kernel width, boundary
# mirroring, rounding), and every published SR table was made with MATLAB's.


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def _contributions(in_len: int, out_len: int, scale: float):
    """Weights (out_len, taps) and source indices (out_len, taps) of one axis, as MATLAB."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale  # widen the kernel so that downscaling low-passes first
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep].astype(np.int64)
    # Symmetric (mirror) boundary, as MATLAB: ... 2 1 | 1 2 ... n | n n-1 ...
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(indices - 1, mirror.size)]
    return weights, indices


def _resize_axis(arr: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    weights, indices = _contributions(arr.shape[axis], out_len, scale)
    arr = np.moveaxis(arr, axis, 0)
    if out_len * arr.shape[0] <= 1 << 20:
        # Small axes (patches): one dense matrix product through BLAS is fastest.
        dense = np.zeros((out_len, arr.shape[0]))
        np.add.at(dense, (np.arange(out_len)[:, None], indices), weights)
        out = np.tensordot(dense, arr, axes=(1, 0))
    else:
        # Large images: a few taps each, so memory stays at the size of the output.
        out = np.zeros((out_len,) + arr.shape[1:], dtype=np.float64)
        shape = (out_len,) + (1,) * (arr.ndim - 1)
        for tap in range(weights.shape[1]):
            out += weights[:, tap].reshape(shape) * arr[indices[:, tap]]
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, output_shape=None, batch: bool = False) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` with antialiasing.

    ``img`` is HW or HWC, or NHWC with ``batch=True`` (each image resized alike).
    A uint8 input gives a uint8 output rounded half away from zero and clipped,
    exactly as MATLAB; a float input gives a float64 output, neither rounded nor
    clipped. Give either ``scale`` (output = ceil(input * scale)) or
    ``output_shape`` (rows, cols).
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale or output_shape")
    row_axis = 1 if batch else 0
    in_h, in_w = img.shape[row_axis : row_axis + 2]
    if output_shape is None:
        out_h, out_w = int(np.ceil(in_h * scale)), int(np.ceil(in_w * scale))
        scale_h = scale_w = float(scale)
    else:
        out_h, out_w = int(output_shape[0]), int(output_shape[1])
        scale_h, scale_w = out_h / in_h, out_w / in_w
    out = img.astype(np.float64)
    # MATLAB resizes the axis with the smaller scale first (rows on a tie).
    order = [(row_axis, out_h, scale_h), (row_axis + 1, out_w, scale_w)]
    if scale_w < scale_h:
        order.reverse()
    for axis, length, axis_scale in order:
        out = _resize_axis(out, axis, length, axis_scale)
    if img.dtype == np.uint8:
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_downscale(hr: np.ndarray, factor: int, batch: bool = False) -> np.ndarray:
    """uint8 HWC (or NHWC with ``batch``) -> uint8 LR of size H/factor x W/factor.

    H and W must be multiples of ``factor`` (see ``modcrop``).
    """
    h, w = hr.shape[1:3] if batch else hr.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of the scale {factor}; modcrop it first")
    return imresize(hr, output_shape=(h // factor, w // factor), batch=batch)


def bicubic_upscale(lr: np.ndarray, factor: int, batch: bool = False) -> np.ndarray:
    """LR image (HWC, or NHWC with ``batch``) -> H*factor x W*factor by MATLAB bicubic.

    uint8 in, uint8 out; float in, float64 out.
    """
    h, w = lr.shape[1:3] if batch else lr.shape[:2]
    return imresize(lr, output_shape=(h * factor, w * factor), batch=batch)
