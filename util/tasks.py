"""Tasks: one name per kind of restoration, used by training, evaluation, enhancement and results.

    sr2, sr4, sr8      bicubic super-resolution x2 / x4 / x8
    noiseS             Gaussian denoising at sigma S on the 0-255 scale (noise25, noise64 ...)
    noise64blur        noise64, then a 5x5 Gaussian blur (the prototype's noise + blur)
    x4noise64          x4 downscaling, then noise64 (the prototype's)

The name is also the key of the degraded patches on disk (``train_sr4.npy``), of
evaluation files (``eval_Set5_sr4.json``) and of a saved model's ``SuiteInfo``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from util.files import UserError

# Tasks whose degraded patches download.py writes (download_module/pairs.py); the others are evaluated only.
STORED = ("sr2", "sr4", "sr8", "noise64", "noise64blur", "x4noise64")


@dataclass(frozen=True)
class Task:
    """``scale``: SR factor (1 for denoising); ``noise_sigma``: 0-255 scale; ``blur``: 5x5 Gaussian after the noise."""

    name: str
    scale: int = 1
    noise_sigma: float = 0.0
    blur: bool = False

    @property
    def is_bicubic_sr(self) -> bool:
        """A plain bicubic downscale, nothing else (what the sub-pixel shifts augmentation needs)."""
        return self.scale > 1 and not self.noise_sigma and not self.blur

    @property
    def baseline_name(self) -> str:
        return "bicubic" if self.scale > 1 else "noisy input"


def parse_task(name: str) -> Task:
    """``sr4`` -> Task(scale 4); ``noise25`` -> sigma 25; ``noise64blur``; ``x4noise64``. Else a UserError."""
    match = re.fullmatch(r"sr(\d+)|noise(\d+(?:\.\d+)?)(blur)?|x(\d+)noise(\d+(?:\.\d+)?)", str(name))
    if match:
        sr, sigma, blur, scale, sr_sigma = match.groups()
        if sr and int(sr) >= 2:
            return Task(name, scale=int(sr))
        if sigma and float(sigma) > 0 and (not blur or float(sigma) == 64):
            return Task(name, noise_sigma=float(sigma), blur=bool(blur))
        if scale and int(scale) >= 2 and float(sr_sigma) > 0:
            return Task(name, scale=int(scale), noise_sigma=float(sr_sigma))
    raise UserError(
        f"TASK={name!r} is unknown; use sr2, sr4, sr8 (super-resolution), noiseS (Gaussian denoising at sigma S "
        "on the 0-255 scale, e.g. noise25), noise64blur or x4noise64"
    )


def stored_task(name: str) -> Task:
    """A task that can be trained from download.py's pairs (see STORED)."""
    task = parse_task(name)
    if task.name not in STORED:
        raise UserError(
            f"TASK={name!r}: download.py writes no training pairs for it; train one of {', '.join(STORED)} "
            "(evaluate.py measures any noiseS)"
        )
    return task
