"""Image input: any PIL-readable file -> uint8 HWC RGB."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from util.files import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


class ImageError(UserError):
    """A file that is not a readable image."""


def list_images(folder) -> list[Path]:
    """All files below ``folder`` whose suffix looks like an image, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a folder of images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_uint8_rgb(img: Image.Image) -> np.ndarray:
    """Convert any PIL image to uint8 HWC RGB.

    Grayscale is replicated to three channels, alpha is dropped (composited over
    black is not wanted for training data: the colour values are kept), palette and
    CMYK go through PIL's converters, and 16-bit / 32-bit integer or float modes are
    scaled to 8 bit by their nominal range (16-bit: /257, float: [0, 1]).
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if (mode != "I" or arr.max() > 255) else 255.0
        arr = np.clip(np.floor(arr * (255.0 / peak) + 0.5), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.floor(arr * 255.0 + 0.5), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=-1)
    if mode == "1":
        img = img.convert("L")
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_image_rgb(path) -> np.ndarray:
    """Read an image file as uint8 HWC RGB, EXIF orientation applied.

    Raises ImageError naming the file when it is missing, not an image or corrupt.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_uint8_rgb(img)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file; check the path") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{path}: not a readable image ({err}); remove it or convert it to PNG") from None
