"""Quality metrics (PSNR / SSIM) whose protocol is explicit in their arguments."""

from __future__ import annotations

import numpy as np

# Every choice that changes the number is an argument (as BasicSR's calculate_psnr/ssim):
#  * the prototype's protocol: psnr(a, b), ssim(a, b): RGB, data range 255, no border crop,
#    scikit-image's default SSIM (7x7 uniform window, averaged over channels);
#  * the SR literature's (EDSR / RCAN / SwinIR tables): crop_border=scale, y_channel=True
#    (the BT.601 luma Y in [16, 235], not rounded), gaussian_window=True (11x11, sigma 1.5,
#    K = (0.01, 0.03), population covariances, as Wang et al.'s MATLAB ssim.m);
#  * denoising (CBSD68 tables): RGB, no border, gaussian_window=True, averaged over channels.
# util.evaluation.protocols.measure picks them for a task.


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """HWC RGB with values in [0, 255] -> float64 HW luma of BT.601 in [16, 235]."""
    img = img.astype(np.float64)
    return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def _prepare(img1, img2, crop_border: int, y_channel: bool):
    if img1.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img1.shape} vs {img2.shape}")
    a, b = img1.astype(np.float64), img2.astype(np.float64)
    if y_channel and a.ndim == 3 and a.shape[-1] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of two images with values in [0, 255] (data range 255).

    ``y_channel`` compares BT.601 luma instead of RGB; ``crop_border`` pixels are
    removed on each side first. Identical images give ``inf``.
    """
    a, b = _prepare(img1, img2, crop_border, y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim(
    img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, y_channel: bool = False, gaussian_window: bool = False
) -> float:
    """SSIM of two images with values in [0, 255], averaged over channels.

    ``gaussian_window``: an 11x11 Gaussian window, sigma 1.5, population covariances (Wang et
    al.'s ssim.m, the SR and denoising literature); otherwise scikit-image's default 7x7
    uniform window (the prototype's protocol). ``y_channel`` and ``crop_border`` as for ``psnr``.
    """
    from skimage.metrics import structural_similarity

    a, b = _prepare(img1, img2, crop_border, y_channel)
    channel_axis = -1 if a.ndim == 3 else None
    if gaussian_window:
        return float(
            structural_similarity(
                a,
                b,
                data_range=255.0,
                channel_axis=channel_axis,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )
    return float(structural_similarity(a, b, data_range=255.0, channel_axis=channel_axis))
