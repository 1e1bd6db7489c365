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
    image, as a user's photo would be (``noisy="8bit"``). ``noisy="float"`` is the
    denoising papers' test (DnCNN, FFDNet, DRUNet, CBM3D): the same noise, the input
    left in float, neither clipped nor rounded (harder: clipping removes part of the
    noise where the image is near black or white); its noisy-input row is measured
    on those float values;
  * PSNR on RGB, no border; SSIM with the same Gaussian window on each channel,
    averaged (BasicSR's ``calculate_ssim`` without ``test_y_channel``).
Both (``x4noise64``, as the suite's task of that name): the LR image gets the noise,
and is measured as super-resolution.

The baseline beside every model is bicubic upsampling (SR) or the noisy input itself
(denoising). Nothing here imports TensorFlow: a model enters as a function.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from util.data.resize import bicubic_downscale, bicubic_upscale, modcrop
from util.data.tasks import NOISY_INPUTS, Task, parse_task
from util.evaluation.metrics import psnr, ssim
from util.io.files import UserError
from util.io.images import load_image_rgb, round_to_dtype

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "datasets" / "benchmark"  # written by download.py benchmarks
STANDARD_SETS = ("Set5", "Set14")
FETCH_HINT = "run `python3 download.py benchmarks` to fetch Set5, Set14, BSD100 and Urban100 into datasets/benchmark/"

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


def benchmark_task(name: str) -> Task:
    """The task of a benchmark protocol: SR, Gaussian denoising or both (``noise64blur`` has none here)."""
    task = parse_task(name)
    if task.blur:
        raise UserError(f"task {name!r} has no benchmark protocol here; use srN, noiseS or xNnoiseS")
    return task


def standard_sets(root: Path | None = None) -> list[Path]:
    """Set5 and Set14 under ``root`` (default BENCHMARK_DIR); a UserError that says how to fetch missing ones."""
    folders = [Path(root or BENCHMARK_DIR) / name for name in STANDARD_SETS]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise UserError(f"{', '.join(missing)}: no such folder; {FETCH_HINT}, or give --data FOLDER ...")
    return folders


# ---- 1. Data: HR image -> degraded input ---------------------------------------------


def load_reference(path) -> np.ndarray:
    """A benchmark image as uint8: HW for a greyscale file, HWC RGB otherwise."""
    rgb = load_image_rgb(path)
    with Image.open(path) as img:
        grey = img.mode in GREY_MODES
    return rgb[..., 0] if grey else rgb


NOISY_HELP = (
    "denoising: the noisy input clipped and rounded as an 8-bit image (default), or left in float "
    "as the denoising papers test (DnCNN, FFDNet, DRUNet, CBM3D)"
)


def check_noisy(noisy: str, task: Task) -> None:
    """A UserError for an unknown ``noisy`` or ``float`` with a task that adds no noise."""
    if noisy not in NOISY_INPUTS:
        raise UserError(f"--noisy {noisy!r} is unknown; use {' or '.join(NOISY_INPUTS)}")
    if noisy == "float" and (task.scale > 1 or not (task.noise_sigma or task.sigma_range)):
        raise UserError(
            f"--noisy float applies to the denoising tasks (noiseS, noise, defocus), not to {task.name}; leave it out"
        )


def degrade(reference: np.ndarray, task: Task, key: str = "", noisy: str = "8bit") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(target, degraded)``: the (modcropped) reference and the method's uint8 input.

    Tasks that draw per image (defocus, the blind ``noise``) draw from a generator seeded by
    ``key`` (the image's name), so that each image gets the same radius and sigma however it
    is evaluated. ``noisy="float"``: the degraded image is float64 on the 0-255 scale (module doc).
    """
    return degrade_known(reference, task, key, noisy)[:2]


def degrade_known(
    reference: np.ndarray, task: Task, key: str = "", noisy: str = "8bit"
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``degrade``, and what was drawn: ``{"sigma"}`` and, for defocus, ``{"radius"}`` (what peers are given)."""
    if task.radius_range or task.sigma_range:
        from util.data.degrade import degrade_image

        rng = np.random.default_rng([0, zlib.crc32(key.encode())])
        return (reference, *degrade_image(reference, task, rng, as_float=noisy == "float"))
    target = modcrop(reference, task.scale)
    degraded = bicubic_downscale(target, task.scale) if task.scale > 1 else target
    if task.noise_sigma:
        noise = np.random.default_rng(0).normal(0.0, task.noise_sigma, degraded.shape)
        degraded = degraded + noise
        degraded = degraded if noisy == "float" else round_to_dtype(degraded, np.uint8, scale=1.0)
    return target, degraded, {"sigma": task.noise_sigma}


def baseline(degraded: np.ndarray, task: Task) -> np.ndarray:
    """Bicubic upsampling (uint8, rounded) for SR; the noisy input itself for denoising.

    ``degraded``: one image (HW or HWC) or a batch of patches (NHWC).
    """
    return bicubic_upscale(degraded, task.scale, batch=degraded.ndim == 4) if task.scale > 1 else degraded


# ---- 2. Metrics ---------------------------------------------------------------------


def measure(output: np.ndarray, target: np.ndarray, task: Task) -> dict:
    """PSNR (dB) and SSIM of a uint8 output against its target, by the protocol (module doc).

    A float64 ``output`` is the papers' unrounded noisy input (``noisy="float"``), measured as it is.
    """
    if output.dtype != np.uint8 and output.dtype != np.float64:
        raise ValueError(f"output of dtype {output.dtype}: round it to uint8 first")
    sr = task.scale > 1
    border = task.scale if sr else 0
    return {
        "psnr": psnr(output, target, crop_border=border, y_channel=sr),
        "ssim": ssim(output, target, crop_border=border, y_channel=sr, gaussian_window=True),
    }


PROTOTYPE_PROTOCOL = "RGB PSNR/SSIM, data range 255, no border crop, scikit-image SSIM (the prototype's)"


def score_patches(outputs: np.ndarray, targets: np.ndarray) -> dict:
    """The prototype's protocol on uint8 NHWC patches: per-patch RGB PSNR / SSIM (7x7 uniform window), mean and std.

    Patches identical to their target (PSNR infinite) are left out of the PSNR mean.
    """
    psnrs = np.array([psnr(o, t) for o, t in zip(outputs, targets, strict=True)])
    ssims = np.array([ssim(o, t) for o, t in zip(outputs, targets, strict=True)])
    finite = psnrs[np.isfinite(psnrs)]
    return {
        "psnr": float(finite.mean()),
        "psnr_std": float(finite.std()),
        "ssim": float(ssims.mean()),
        "ssim_std": float(ssims.std()),
        "per_patch_psnr": [round(float(v), 4) for v in psnrs],
    }


# ---- 3. One folder of images -----------------------------------------------------------

SSIM_WINDOW = 11  # the Gaussian window's side: the least a measured image must keep


def reference_images(folder: Path) -> list[Path]:
    """The HR images of a benchmark folder, never its LR ones.

    Layouts: the images themselves (``datasets/benchmark/Set5/*.png``), or the EDSR /
    BasicSR archives' ``HR/`` beside ``LR_bicubic/X4/``: then ``HR/`` only. Anything below a
    folder whose name starts with ``LR`` is left out in every layout.
    """
    from util.io import kinds

    root = folder / "HR" if (folder / "HR").is_dir() else folder
    return [
        path
        for path in kinds.folder_files(root)[kinds.PHOTO]  # hidden files (macOS's ._x.png) left out
        if not any(part.upper().startswith("LR") for part in path.relative_to(root).parts[:-1])
    ]


def check_size(path: Path, reference: np.ndarray, task: Task) -> None:
    """A UserError naming ``path`` when it is too small for the protocol (modcrop, border crop, SSIM window)."""
    border = task.scale if task.scale > 1 else 0
    need = SSIM_WINDOW + 2 * border
    need = -(-need // task.scale) * task.scale  # and a whole LR pixel count
    height, width = reference.shape[:2]
    if min(height // task.scale * task.scale, width // task.scale * task.scale) - 2 * border < SSIM_WINDOW:
        raise UserError(
            f"{path}: {width}x{height} px is too small for the {task.name} protocol (at least {need} px a side); "
            "remove it from the folder"
        )


def evaluate_folder(
    folder, task: Task, enhance: Callable[[np.ndarray], np.ndarray] | None = None, noisy: str = "8bit"
) -> dict:
    """Per-image and mean PSNR / SSIM of the baseline and of ``enhance`` on every image of ``folder``.

    ``enhance`` maps the degraded uint8 image (HW or HWC; float64 on the 0-255 scale with
    ``noisy="float"``) to the uint8 output of the target's size (``None``: the baseline
    only). Returns a JSON-ready dict:
    ``{"dataset", "task", "images": [{"image", "baseline": {"psnr", "ssim"}, "model": ...}], "mean": ...}``.
    """
    folder = Path(folder)
    paths = reference_images(folder)
    if not paths:
        raise UserError(f"{folder}: no images found; give a folder of benchmark images ({FETCH_HINT})")
    rows = []
    for path in paths:
        reference = load_reference(path)
        check_size(path, reference, task)
        target, degraded = degrade(reference, task, path.stem, noisy)
        row = {"image": path.stem, "baseline": measure(baseline(degraded, task), target, task)}
        if enhance is not None:
            row["model"] = measure(enhance(degraded), target, task)
        rows.append(row)
    methods = ["baseline"] + (["model"] if enhance is not None else [])
    mean = {m: {k: float(np.mean([row[m][k] for row in rows])) for k in ("psnr", "ssim")} for m in methods}
    return {"dataset": folder.name, "task": task.name, "noisy": noisy, "images": rows, "mean": mean}


# ---- 4. Tables ------------------------------------------------------------------------


def markdown_table(result: dict, task: Task, model_label: str = "model") -> str:
    """Per-image rows and the mean of one ``evaluate_folder`` result, as a Markdown table."""
    methods = [("baseline", task.baseline_name)] + ([("model", model_label)] if "model" in result["mean"] else [])
    header = "| image | " + " | ".join(f"{label} PSNR | {label} SSIM" for _, label in methods) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(methods)]

    def cells(values: dict) -> str:
        return " | ".join(f"{values[m]['psnr']:.2f} | {values[m]['ssim']:.4f}" for m, _ in methods)

    lines += [f"| {row['image']} | {cells(row)} |" for row in result["images"]]
    lines.append(f"| **mean** | {cells(result['mean'])} |")
    return "\n".join(lines)


def protocol_note(task: Task, noisy: str = "8bit") -> str:
    """One sentence that says how the numbers of a table were measured."""
    stored = "clipped and rounded to uint8" if noisy == "8bit" else "left in float, neither clipped nor rounded"
    noise = f" N(0, {task.noise_sigma:g}) added to the input in float (seed 0), {stored}." if task.noise_sigma else ""
    if task.radius_range:
        low, high = task.radius_range
        radius = f"{low:g}" if low == high else f"drawn per image from {low:g}-{high:g}"
        return (
            f"PSNR (dB) / SSIM on RGB, no border, output rounded to uint8; disk PSF of radius {radius} px "
            f"(edges reflected), then N(0, sigma) with sigma drawn from {task.sigma_range[0]:g}-"
            f"{task.sigma_range[1]:g}, {stored} (seeded by the image's name)."
        )
    if task.sigma_range:
        low, high = task.sigma_range
        noise = f" N(0, sigma), sigma drawn per image from {low:g}-{high:g} (seeded by its name), {stored}."
    if task.scale > 1:
        return (
            f"PSNR (dB) / SSIM on Y of BT.601, {task.scale}-pixel border cropped, output rounded to uint8; "
            f"greyscale files on their grey values; LR by MATLAB bicubic.{noise}"
        )
    return f"PSNR (dB) / SSIM on RGB, no border, output rounded to uint8;{noise}"
