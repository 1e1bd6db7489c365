"""The standard benchmark protocols, shared by evaluate.py and benchmark.py.

Super-resolution ×s (the EDSR / RCAN / SwinIR tables):
  * the HR image is modcropped to a multiple of s and downscaled by MATLAB-compatible
    bicubic (``util.bicubic_downscale``); the method restores it to the HR size;
  * the output is rounded to uint8, then PSNR and SSIM are taken on the Y channel of
    BT.601 (16-235, not rounded) with ``s`` pixels of border cropped; SSIM with an
    11×11 Gaussian window, σ = 1.5, K = (0.01, 0.03). A greyscale file (Set14's
    bridge) is measured on its grey values, as the MATLAB scripts do (they convert
    only 3-channel images to Y); this is what reproduces the published bicubic rows.
Denoising σ (on the 0-255 scale):
  * Gaussian noise N(0, σ) is added to the float image with a generator seeded 0 for
    every image (the same noise whatever images are evaluated, in whatever order), then
    clipped to [0, 255] and rounded to uint8: the noisy input is an ordinary 8-bit
    image, as a user's photo would be;
  * PSNR on RGB, no border; SSIM with the same Gaussian window on each channel,
    averaged (BasicSR's ``calculate_ssim`` without ``test_y_channel``).
Both (``x4noise64``, as the suite's task of that name): the LR image gets the noise,
and is measured as super-resolution.

The baseline beside every model is bicubic upsampling (SR) or the noisy input itself
(denoising). Nothing here imports TensorFlow: a model enters as a function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from util.files import UserError
from util.images import list_images, load_image_rgb
from util.metrics import psnr, ssim
from util.resize import bicubic_downscale, bicubic_upscale, modcrop

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark"  # beside the repository
STANDARD_SETS = ("Set5", "Set14")

# Bicubic rows of the SR literature (the tables of EDSR, RCAN, SwinIR): (PSNR dB, SSIM).
PUBLISHED_BICUBIC = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


@dataclass(frozen=True)
class Protocol:
    """One benchmark protocol: super-resolution by ``scale``, or denoising at ``noise_sigma`` (0-255 scale)."""

    scale: int = 1
    noise_sigma: float = 0.0

    @property
    def name(self) -> str:
        """``x4``, ``noise25`` or ``x4noise64``: used in tables and file names."""
        scale = f"x{self.scale}" if self.scale > 1 else ""
        return scale + (f"noise{self.noise_sigma:g}" if self.noise_sigma else "")

    @property
    def baseline(self) -> str:
        return "bicubic" if self.scale > 1 else "noisy input"


def parse_protocol(task: str) -> Protocol:
    """``sr4`` / ``x4`` -> SR ×4; ``noise25`` -> denoising at σ = 25; ``x4noise64`` -> both.

    Raises UserError for anything else (``noise64blur`` has no protocol here).
    """
    match = re.fullmatch(r"(?:(?:sr|x)(\d+))?(?:noise(\d+(?:\.\d+)?))?", task)
    scale = int(match.group(1)) if match and match.group(1) else 1
    sigma = float(match.group(2)) if match and match.group(2) else 0.0
    if not match or (scale < 2 and not sigma) or (match.group(1) and scale < 2):
        raise UserError(
            f"task {task!r} has no benchmark protocol here; use --scale N (super-resolution), --task noiseS "
            "(Gaussian denoising at sigma S on the 0-255 scale) or --task xNnoiseS (both)"
        )
    return Protocol(scale=scale, noise_sigma=sigma)


# ---- 1. Data: HR image -> degraded input ---------------------------------------------


def load_reference(path) -> np.ndarray:
    """A benchmark image as uint8: HW for a greyscale file, HWC RGB otherwise."""
    rgb = load_image_rgb(path)
    with Image.open(path) as img:
        grey = img.mode in GREY_MODES
    return rgb[..., 0] if grey else rgb


def degrade(reference: np.ndarray, protocol: Protocol) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(target, degraded)``: the (modcropped) reference and the method's uint8 input."""
    target = modcrop(reference, protocol.scale)
    degraded = bicubic_downscale(target, protocol.scale) if protocol.scale > 1 else target
    if protocol.noise_sigma:
        noise = np.random.default_rng(0).normal(0.0, protocol.noise_sigma, degraded.shape)
        degraded = np.clip(np.floor(degraded + noise + 0.5), 0, 255).astype(np.uint8)
    return target, degraded


def baseline(degraded: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Bicubic upsampling (uint8, rounded) for SR; the noisy input itself for denoising."""
    return bicubic_upscale(degraded, protocol.scale) if protocol.scale > 1 else degraded


# ---- 2. Metrics ---------------------------------------------------------------------


def measure(output: np.ndarray, target: np.ndarray, protocol: Protocol) -> dict:
    """PSNR (dB) and SSIM of a uint8 output against its target, by the protocol (module doc)."""
    if output.dtype != np.uint8:
        raise ValueError(f"output of dtype {output.dtype}: round it to uint8 first")
    if protocol.scale > 1:
        border = protocol.scale
        return {
            "psnr": psnr(output, target, crop_border=border, y_channel=True),
            "ssim": ssim(output, target, crop_border=border, y_channel=True),
        }
    # y_channel=True on a single channel selects the Gaussian-window SSIM and leaves the values as they are.
    channels = [(output, target)] if output.ndim == 2 else [(output[..., c], target[..., c]) for c in range(3)]
    return {
        "psnr": psnr(output, target),
        "ssim": float(np.mean([ssim(out, ref, y_channel=True) for out, ref in channels])),
    }


# ---- 3. One folder of images -----------------------------------------------------------


def evaluate_folder(folder, protocol: Protocol, enhance: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Per-image and mean PSNR / SSIM of the baseline and of ``enhance`` on every image of ``folder``.

    ``enhance`` maps the degraded uint8 image (HW or HWC) to the uint8 output of the
    target's size (``None``: the baseline only). Returns a JSON-ready dict:
    ``{"dataset", "protocol", "images": [{"image", "baseline": {"psnr", "ssim"}, "model": ...}], "mean": ...}``.
    """
    folder = Path(folder)
    paths = list_images(folder)
    if not paths:
        raise UserError(
            f"{folder}: no images found; give a folder of benchmark images such as {BENCHMARK_DIR / 'Set5'}"
        )
    rows = []
    for path in paths:
        target, degraded = degrade(load_reference(path), protocol)
        row = {"image": path.stem, "baseline": measure(baseline(degraded, protocol), target, protocol)}
        if enhance is not None:
            row["model"] = measure(enhance(degraded), target, protocol)
        rows.append(row)
    methods = ["baseline"] + (["model"] if enhance is not None else [])
    mean = {m: {k: float(np.mean([row[m][k] for row in rows])) for k in ("psnr", "ssim")} for m in methods}
    return {"dataset": folder.name, "protocol": protocol.name, "images": rows, "mean": mean}


# ---- 4. Tables ------------------------------------------------------------------------


def markdown_table(result: dict, protocol: Protocol, model_label: str = "model") -> str:
    """Per-image rows and the mean of one ``evaluate_folder`` result, as a Markdown table."""
    methods = [("baseline", protocol.baseline)] + ([("model", model_label)] if "model" in result["mean"] else [])
    header = "| image | " + " | ".join(f"{label} PSNR | {label} SSIM" for _, label in methods) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(methods)]

    def cells(values: dict) -> str:
        return " | ".join(f"{values[m]['psnr']:.2f} | {values[m]['ssim']:.4f}" for m, _ in methods)

    lines += [f"| {row['image']} | {cells(row)} |" for row in result["images"]]
    lines.append(f"| **mean** | {cells(result['mean'])} |")
    return "\n".join(lines)


def protocol_note(protocol: Protocol) -> str:
    """One sentence that says how the numbers of a table were measured."""
    noise = (
        f" N(0, {protocol.noise_sigma:g}) added to the input in float (seed 0), clipped and rounded to uint8."
        if protocol.noise_sigma
        else ""
    )
    if protocol.scale > 1:
        return (
            f"PSNR (dB) / SSIM on Y of BT.601, {protocol.scale}-pixel border cropped, output rounded to uint8; "
            f"greyscale files on their grey values; LR by MATLAB bicubic.{noise}"
        )
    return f"PSNR (dB) / SSIM on RGB, no border, output rounded to uint8;{noise}"
