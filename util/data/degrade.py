"""Synthetic degradations of the noise and defocus tasks (util.data.tasks), in NumPy and in tf.data.

The same operations twice: NumPy for the fixed-seed test and validation pairs and the
benchmark protocol, TensorFlow for training, where every batch gets fresh noise (and, for
the blind tasks, a fresh sigma and PSF radius per patch). Both work in float on the 0-255
scale and end as an 8-bit image would: clipped to [0, 255] and rounded, so that the model
trains on what it is given at test time and by enhance.py.

Defocus is the convolution with a disk point-spread function (MATLAB's ``fspecial('disk', r)``:
the area of each pixel inside a circle of radius r, normalised to sum 1), edges reflected,
then Gaussian noise of sigma 1-2. Blind defocus draws r uniformly from util.data.tasks.DEFOCUS_RADII;
tf.data picks among PSFs tabulated every 0.25 px (RADIUS_STEP), the NumPy side uses r exactly.
"""

from __future__ import annotations

import math

import numpy as np

from util.data.tasks import Task

RADIUS_STEP = 0.25  # the blind defocus PSFs tabulated for tf.data, every RADIUS_STEP pixels
_SUPERSAMPLE = 16  # sub-pixels per pixel side when measuring a pixel's area inside the disk


def disk_psf(radius: float, size: int | None = None) -> np.ndarray:
    """(size, size) float64 disk PSF of ``radius`` pixels, summing to 1 (size: odd, default 2*ceil(r)+1)."""
    if radius <= 0:
        raise ValueError(f"defocus radius {radius:g}: give a radius above 0 pixels")
    half = math.ceil(radius) if size is None else size // 2
    ticks = (np.arange(-half * _SUPERSAMPLE, (half + 1) * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    yy, xx = np.meshgrid(ticks, ticks, indexing="ij")
    inside = (yy**2 + xx**2 <= radius**2).astype(np.float64)
    n = 2 * half + 1
    psf = inside.reshape(n, _SUPERSAMPLE, n, _SUPERSAMPLE).mean(axis=(1, 3))
    return psf / psf.sum()


def psf_bank(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """(radii, PSFs (K, n, n) float32) that tf.data draws from for ``task``, all padded to one size."""
    low, high = task.radius_range
    radii = np.array([low]) if low == high else np.arange(low, high + RADIUS_STEP / 2, RADIUS_STEP)
    size = 2 * math.ceil(high) + 1
    return radii, np.stack([disk_psf(r, size) for r in radii]).astype(np.float32)


def defocus_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """An HWC (or HW) image in float, blurred by the disk PSF of ``radius``, edges reflected."""
    from scipy import ndimage

    psf = disk_psf(radius)
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        return ndimage.convolve(image, psf, mode="reflect")
    return np.stack([ndimage.convolve(image[..., c], psf, mode="reflect") for c in range(image.shape[-1])], -1)


def degrade_image(
    image: np.ndarray, task: Task, rng: np.random.Generator, as_float: bool = False
) -> tuple[np.ndarray, dict]:
    """One uint8 image (HW or HWC) degraded for a synthetic ``task``: (uint8 image, {"sigma", "radius"}).

    The radius (defocus) and sigma are drawn from ``rng`` when the task gives a range, then the noise.
    ``as_float``: return the float64 image on the 0-255 scale as it is, neither clipped nor
    rounded (the denoising papers' test input), instead of an 8-bit image.
    """
    out = np.asarray(image, np.float64)
    drawn = {}
    if task.radius_range:
        drawn["radius"] = float(rng.uniform(*task.radius_range))
        out = defocus_blur(out, drawn["radius"])
    sigma = float(rng.uniform(*task.sigma_range)) if task.sigma_range else task.noise_sigma
    drawn["sigma"] = sigma
    if sigma:
        out = out + rng.normal(0.0, sigma, out.shape)
    if as_float:
        return out, drawn
    return np.clip(np.round(out), 0, 255).astype(np.uint8), drawn


def degrade_patches(hr: np.ndarray, task: Task, seed: int, first: int = 0) -> np.ndarray:
    """uint8 NHWC patches degraded for ``task``, reproducibly: patch i of the split (``first`` + its
    index here) draws from ``default_rng([seed, i])``, whatever else is degraded with it."""
    out = np.empty_like(hr)
    for i, patch in enumerate(hr):
        out[i] = degrade_image(patch, task, np.random.default_rng([seed, first + i]))[0]
    return out


def tf_degrade(task: Task, as_float: bool = False, with_sigma: bool = False):
    """A tf.data map ``(hr uint8 HWC) -> (degraded float32 in [0, 1], hr float32 in [0, 1])`` for ``task``.

    Fresh randomness on every call: the sigma (blind: uniform in the task's range), the PSF
    (blind defocus: one of psf_bank's), the noise. Clipped to [0, 1] and rounded to 1/255 as an
    8-bit image, or left as it is with ``as_float`` (the denoising papers' input).
    ``with_sigma``: also return the sigma drawn, on the 0-255 scale.
    """
    import tensorflow as tf

    bank = None
    if task.radius_range:
        _, psfs = psf_bank(task)
        bank = tf.constant(psfs[..., None, None])  # (K, n, n, 1, 1)
        pad = psfs.shape[1] // 2
    low, high = task.sigma_range or (task.noise_sigma, task.noise_sigma)

    def degrade(hr):
        clean = tf.cast(hr, tf.float32)
        x = clean
        if bank is not None:
            channels = tf.shape(x)[-1]
            psf = bank[tf.random.uniform([], 0, bank.shape[0], dtype=tf.int32)]
            kernel = tf.tile(psf, [1, 1, channels, 1])
            padded = tf.pad(x[None], [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
            x = tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")[0]
        sigma = tf.random.uniform([], low, high) if high > low else tf.constant(low, tf.float32)
        x = x + tf.random.normal(tf.shape(x)) * sigma
        if not as_float:
            x = tf.clip_by_value(tf.round(x), 0.0, 255.0)
        if with_sigma:
            return x / 255.0, clean / 255.0, sigma
        return x / 255.0, clean / 255.0

    return degrade
