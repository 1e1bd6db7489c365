"""Classical peers of the denoising and deblurring models, for benchmark.py's restoration table.

Each peer maps ``(degraded uint8 HWC, known)`` to a uint8 image of the same size, where
``known`` is what the protocol drew for that image (``sigma``; ``radius`` for defocus):
the peers are given the true noise level and the true point-spread function, which the
suite's blind models are not. They come from the packages of the field, with their
documented settings:

- CBM3D: ``bm3d.bm3d_rgb`` (Dabov et al.; the reference implementation's Python package),
  given sigma;
- non-local means: ``skimage.restoration.denoise_nl_means``, 5x5 patches, 13x13 search, h =
  0.8 sigma, the sigma given (scikit-image's example settings);
- wavelet: ``skimage.restoration.denoise_wavelet``, BayesShrink, soft thresholds, in YCbCr,
  the sigma given;
- Wiener: ``skimage.restoration.wiener`` given the disk PSF, per channel, balance 0.01;
- Richardson-Lucy: ``skimage.restoration.richardson_lucy`` given the disk PSF, 30 iterations,
  per channel.

Both deconvolutions are tuned on Set5 under the ``defocus`` protocol (the benchmark scores
Set14): balance 0.1 / 0.03 / 0.01 / 0.003 / 0.001 gave 29.68 / 30.47 / 31.02 / 31.00 / 29.06 dB,
and 10 / 30 / 100 Richardson-Lucy iterations 30.56 / 31.00 / 28.74 dB.
"""

from __future__ import annotations

import numpy as np

WIENER_BALANCE = 0.01
RL_ITERATIONS = 30


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(values) * 255.0), 0, 255).astype(np.uint8)


def _rgb(image: np.ndarray) -> np.ndarray:
    return image[..., None].repeat(3, -1) if image.ndim == 2 else image


def cbm3d(image: np.ndarray, known: dict) -> np.ndarray:
    import bm3d

    out = bm3d.bm3d_rgb(_rgb(image) / 255.0, known["sigma"] / 255.0)
    return _to_uint8(out if image.ndim == 3 else out.mean(-1))


def nl_means(image: np.ndarray, known: dict) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    sigma = known["sigma"] / 255.0
    out = denoise_nl_means(
        image / 255.0,
        h=0.8 * sigma,
        sigma=sigma,
        patch_size=5,
        patch_distance=6,
        fast_mode=True,
        channel_axis=-1 if image.ndim == 3 else None,
    )
    return _to_uint8(out)


def wavelet(image: np.ndarray, known: dict) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    colour = image.ndim == 3
    out = denoise_wavelet(
        image / 255.0,
        sigma=known["sigma"] / 255.0,
        method="BayesShrink",
        mode="soft",
        rescale_sigma=True,
        channel_axis=-1 if colour else None,
        convert2ycbcr=colour,
    )
    return _to_uint8(out)


def _per_channel(image: np.ndarray, restore) -> np.ndarray:
    if image.ndim == 2:
        return _to_uint8(restore(image / 255.0))
    return _to_uint8(np.stack([restore(image[..., c] / 255.0) for c in range(image.shape[-1])], -1))


def _padded(restore, pad: int):
    """``restore`` on the image padded by reflection (the protocol's edges), cropped back."""

    def run(channel):
        return restore(np.pad(channel, pad, mode="reflect"))[pad:-pad, pad:-pad]

    return run


def wiener(image: np.ndarray, known: dict) -> np.ndarray:
    from skimage.restoration import wiener as skimage_wiener

    from util.data.degrade import disk_psf

    psf = disk_psf(known["radius"])
    return _per_channel(image, _padded(lambda c: skimage_wiener(c, psf, WIENER_BALANCE), 2 * psf.shape[0]))


def richardson_lucy(image: np.ndarray, known: dict) -> np.ndarray:
    from skimage.restoration import richardson_lucy as skimage_rl

    from util.data.degrade import disk_psf

    psf = disk_psf(known["radius"])
    return _per_channel(image, _padded(lambda c: skimage_rl(c, psf, num_iter=RL_ITERATIONS), 2 * psf.shape[0]))


DENOISERS = {
    "CBM3D (bm3d, sigma given)": cbm3d,
    "non-local means (sigma given)": nl_means,
    "wavelet (sigma given)": wavelet,
}
DEBLURRERS = {"Wiener (true PSF)": wiener, "Richardson-Lucy (true PSF)": richardson_lucy}
