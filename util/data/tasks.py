"""Tasks: one name per kind of restoration, used by training, evaluation, enhancement and results.

    sr2, sr4, sr8      bicubic super-resolution x2 / x4 / x8
    noiseS             Gaussian denoising at sigma S on the 0-255 scale (noise15, noise25, noise50, noise64 ...)
    noise              blind Gaussian denoising: sigma drawn per patch from 0-55, one model for every sigma
    defocusR           out-of-focus blur by a disk PSF of radius R pixels, plus weak noise (sigma 1-2)
    defocus            the same with the radius drawn per patch from 1-4 (blind deblurring)
    noise64blur        noise64, then a 5x5 Gaussian blur (the prototype's noise + blur)
    x4noise64          x4 downscaling, then noise64 (the prototype's)

``noiseS``, ``noise``, ``defocusR`` and ``defocus`` are *synthetic*: training degrades the HR
patches afresh for every batch inside tf.data (util.data.degrade), so 100 patches give endless
noise samples; their test and validation pairs are degraded once with a fixed seed.

The name is also the key of the degraded patches on disk (``train_sr4.npy``), of
evaluation files (``eval_Set5_sr4.json``) and of a saved model's ``SuiteInfo``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from util.io.files import UserError

# Tasks whose degraded patches download.py writes (download_module/pairs.py); the others are evaluated only.
STORED = ("sr2", "sr4", "sr8", "noise64", "noise64blur", "x4noise64")
BLIND_SIGMA = (0.0, 55.0)  # the blind denoiser's sigma range, 0-255 scale
DEFOCUS_RADII = (1.0, 4.0)  # the blind deblurrer's PSF radii, pixels
DEFOCUS_NOISE = (1.0, 2.0)  # the weak noise of every defocus task, sigma on the 0-255 scale
MAX_DEFOCUS_RADIUS = 16  # a PSF of 33x33 pixels: a quarter of a 128-pixel patch
# The shipped models enhance.py picks by purpose (enhance.py --task denoise | deblur).
PURPOSES = {"denoise": "noise", "deblur": "defocus"}


NOISY_INPUTS = ("8bit", "float")  # the noisy input as an 8-bit image, or in float as the denoising papers


@dataclass(frozen=True)
class Task:
    """``scale``: SR factor (1 for denoising); ``noise_sigma``: 0-255 scale; ``blur``: 5x5 Gaussian after the noise.

    ``sigma_range``: the noise sigma is drawn per patch from it (blind; ``noise_sigma`` is then 0);
    ``radius_range``: the defocus PSF radius in pixels, drawn per patch from it (a fixed radius is (R, R)).
    """

    name: str
    scale: int = 1
    noise_sigma: float = 0.0
    blur: bool = False
    sigma_range: tuple[float, float] | None = None
    radius_range: tuple[float, float] | None = None

    @property
    def synthetic(self) -> bool:
        """Degraded from the HR patches inside tf.data (util.data.degrade), not read from download.py's files."""
        gaussian_only = self.scale == 1 and not self.blur and self.name not in STORED
        return gaussian_only or self.radius_range is not None

    @property
    def blind(self) -> bool:
        if self.radius_range is not None:
            return self.radius_range[0] != self.radius_range[1]
        return self.sigma_range is not None

    @property
    def is_bicubic_sr(self) -> bool:
        """A plain bicubic downscale, nothing else (what the sub-pixel shifts augmentation needs)."""
        return self.scale > 1 and not self.noise_sigma and not self.blur

    @property
    def baseline_name(self) -> str:
        if self.scale > 1:
            return "bicubic"
        return "blurred input" if self.radius_range else "noisy input"


def parse_task(name: str) -> Task:
    """``sr4`` -> Task(scale 4); ``noise25`` -> sigma 25; ``noise64blur``; ``x4noise64``. Else a UserError."""
    name = str(name)
    if name == "noise":
        return Task(name, sigma_range=BLIND_SIGMA)
    if name == "defocus":
        return Task(name, sigma_range=DEFOCUS_NOISE, radius_range=DEFOCUS_RADII)
    if match := re.fullmatch(r"defocus(-?\d+(?:\.\d+)?)", name):
        radius = float(match.group(1))
        if not 0 < radius <= MAX_DEFOCUS_RADIUS:
            raise UserError(
                f"TASK={name!r}: a defocus radius must be above 0 and at most {MAX_DEFOCUS_RADIUS} pixels "
                f"(a PSF that fits a quarter of a 128-pixel patch); e.g. defocus2, or defocus for radii 1-4"
            )
        return Task(name, sigma_range=DEFOCUS_NOISE, radius_range=(radius, radius))
    match = re.fullmatch(r"sr(\d+)|noise(-?\d+(?:\.\d+)?)(blur)?|x(\d+)noise(\d+(?:\.\d+)?)", name)
    if match:
        sr, sigma, blur, scale, sr_sigma = match.groups()
        if sr and int(sr) >= 2:
            return Task(name, scale=int(sr))
        if sigma and not blur and not 0 < float(sigma) <= 255:
            where = "adds no noise (nothing to remove)" if float(sigma) == 0 else "is outside 0-255"
            raise UserError(
                f"TASK={name!r}: sigma {float(sigma):g} {where}; give a sigma above 0 up to 255, e.g. noise25, "
                "or noise (blind, sigma 0-55)"
            )
        if sigma and float(sigma) > 0 and (not blur or float(sigma) == 64):
            return Task(name, noise_sigma=float(sigma), blur=bool(blur))
        if scale and int(scale) >= 2 and float(sr_sigma) > 0:
            return Task(name, scale=int(scale), noise_sigma=float(sr_sigma))
    raise UserError(
        f"TASK={name!r} is unknown; use sr2, sr4, sr8 (super-resolution), noiseS (Gaussian denoising at sigma S "
        "on the 0-255 scale, e.g. noise25), noise (blind denoising), defocusR or defocus (deblurring), "
        "noise64blur or x4noise64"
    )


def task_family(task: Task) -> str:
    """What a model restores: super-resolution, denoising or deblurring (a model serves its family only)."""
    if task.scale > 1:
        return "super-resolution"
    return "deblurring" if task.radius_range or task.blur else "denoising"


def stored_task(name: str) -> Task:
    """A task that can be trained: from download.py's pairs (see STORED) or synthetic (degraded in tf.data)."""
    task = parse_task(name)
    if task.name not in STORED and not task.synthetic:
        raise UserError(
            f"TASK={name!r}: download.py writes no training pairs for it; train one of {', '.join(STORED)}, "
            "noiseS, noise, defocusR or defocus"
        )
    return task
