"""Image files in and out: the one reader of the suite, and a PNG writer.

Two views of one decoding path (``_open``, EXIF orientation applied to the pixels):
  * ``load_image_rgb``: uint8 HWC RGB, for training and benchmark images;
  * ``read_photo``: a user's photo as it is stored, so that it comes back as it went
    in: grey stays grey, alpha is kept, 16-bit stays 16-bit, the ICC profile is kept.

Pillow reads 16-bit colour PNGs as 8 bit and cannot write them, so ``read_photo``
decodes 16-bit PNGs with TensorFlow's libpng (``tf.io.decode_png``; TensorFlow is
loaded anyway to run the model) and ``write_png`` writes them with a small streaming
writer, which also carries the ICC profile (``tf.io.encode_png`` cannot). Given a
``util.io.provenance.Provenance``, both write it in text chunks (``png_text``).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from util.io.files import UserError, import_tensorflow_quietly
from util.io.provenance import Provenance

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


class ImageError(UserError):
    """A file that is not a readable image."""


def list_images(folder) -> list[Path]:
    """All files below ``folder`` whose suffix looks like an image, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a folder of images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def round_to_dtype(values: np.ndarray, dtype=np.uint8, scale: float | None = None) -> np.ndarray:
    """Float values -> ``dtype`` (uint8 or uint16), rounded half up and clipped to its range.

    ``scale`` multiplies first: by default the dtype's peak (255, 65535), for values in
    [0, 1]; give 1.0 for values already on the integer scale.
    """
    peak = np.iinfo(dtype).max
    values = np.asarray(values)
    scaled = values.astype(np.float64 if values.dtype == np.float64 else np.float32, copy=False)
    scaled = scaled * (peak if scale is None else scale)
    return np.clip(np.floor(scaled + 0.5), 0, peak).astype(dtype)


# ---- 1. Training and benchmark images: uint8 RGB ----------------------------------


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
        return np.repeat(round_to_dtype(arr, np.uint8, scale=255.0 / peak)[..., None], 3, axis=-1)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return np.repeat(round_to_dtype(arr, np.uint8)[..., None], 3, axis=-1)
    if mode == "1":
        img = img.convert("L")
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_image_rgb(path) -> np.ndarray:
    """Read an image file as uint8 HWC RGB, EXIF orientation applied.

    Raises ImageError naming the file when it is missing, not an image or corrupt.
    """
    path = Path(path)
    try:
        with _open(path) as img:
            img.load()
            return _apply_orientation(to_uint8_rgb(img), img.getexif().get(ORIENTATION_TAG, 1))
    except (OSError, ValueError, SyntaxError, zlib.error) as err:
        raise ImageError(f"{path}: not a readable image ({err}); remove it or convert it to PNG") from None


ORIENTATION_TAG = 0x0112
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# zlib level of written PNGs: on a 13-megapixel output, level 3 took 6 s for a 16 MB file, 6 took 25 s
# for 14.5 MB (and a 3000x4000 photo upscaled x4 is 192 megapixels).
PNG_COMPRESS_LEVEL = 3


@dataclass
class Photo:
    """``pixels``: HW (grey) or HWC with C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA); uint8 or uint16."""

    pixels: np.ndarray
    icc_profile: bytes | None = None


# ---- 2. Reading a photo as it is stored ------------------------------------------


def check_photo(path) -> None:
    """Raise ImageError naming ``path`` unless its header is a readable image (cheap: no decoding)."""
    _open(path).close()


def read_photo(path) -> Photo:
    """Read an image file as it is stored, EXIF orientation applied.

    8-bit files give uint8; 16-bit PNGs and 16-bit grey TIFFs give uint16. Palette
    images become RGB (RGBA with transparency), 1-bit becomes grey, CMYK becomes RGB
    (its CMYK profile is dropped). Raises ImageError naming the file.
    """
    path = Path(path)
    try:
        with _open(path) as img:
            icc_profile = img.info.get("icc_profile") or None
            orientation = img.getexif().get(ORIENTATION_TAG, 1)
            if img.format == "PNG" and _png_bit_depth(path) == 16:
                pixels = _read_png16(path)
            else:
                if img.mode == "CMYK":
                    icc_profile = None
                pixels = _pil_pixels(img, path)
    except (OSError, ValueError, SyntaxError, zlib.error) as err:
        raise ImageError(f"{path}: not a readable image ({err}); re-save it as PNG or JPEG") from None
    return Photo(_apply_orientation(pixels, orientation), icc_profile)


def _open(path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: {err}; split it into smaller images") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{path}: not a readable image ({err}); give a PNG, JPEG, TIFF, BMP or WebP file") from None


def _png_bit_depth(path) -> int:
    with open(path, "rb") as f:
        header = f.read(25)  # signature (8), IHDR length and type (8), width, height, bit depth
    return header[24]


def _read_png16(path) -> np.ndarray:
    tf = import_tensorflow_quietly()
    try:
        pixels = tf.io.decode_png(Path(path).read_bytes(), channels=0, dtype=tf.uint16).numpy()
    except tf.errors.OpError as err:
        raise ImageError(f"{path}: not a readable PNG ({err.message}); re-save it") from None
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _pil_pixels(img: Image.Image, path) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        pixels = np.asarray(img)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ImageError(f"{path}: 32-bit integer pixels out of the 16-bit range; convert it to a 16-bit PNG")
        return pixels.astype(np.uint16)
    if mode == "F":
        raise ImageError(f"{path}: 32-bit float pixels are not supported; convert it to a 16-bit PNG")
    if mode in ("P", "PA"):
        mode = "RGBA" if mode == "PA" or "transparency" in img.info else "RGB"
    else:
        mode = {"1": "L", "La": "LA", "RGBa": "RGBA"}.get(mode, mode)
    if mode not in ("L", "LA", "RGB", "RGBA"):
        mode = "RGB"  # CMYK, YCbCr, LAB, HSV, RGBX
    return np.asarray(img.convert(mode) if mode != img.mode else img)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` upright, as PIL's ImageOps.exif_transpose does."""
    transpose = pixels.swapaxes(0, 1)
    upright = {  # the PIL transposition that ImageOps.exif_transpose applies for each tag value
        2: pixels[:, ::-1],  # FLIP_LEFT_RIGHT
        3: pixels[::-1, ::-1],  # ROTATE_180
        4: pixels[::-1],  # FLIP_TOP_BOTTOM
        5: transpose,  # TRANSPOSE
        6: transpose[:, ::-1],  # ROTATE_270 (90 degrees clockwise)
        7: transpose[::-1, ::-1],  # TRANSVERSE
        8: transpose[::-1],  # ROTATE_90 (90 degrees anticlockwise)
    }.get(orientation, pixels)
    return np.ascontiguousarray(upright)


# ---- 3. Writing ------------------------------------------------------------------


def write_png(path, pixels: np.ndarray, icc_profile: bytes | None = None, provenance: Provenance | None = None) -> None:
    """Write HW / HWC (C = 2, 3, 4) uint8 or uint16 pixels as a PNG of the same mode and depth.

    ``provenance``: written as text chunks (``png_text``); None writes none. Not atomic by
    itself: give it the temporary path of ``util.atomic_path``.
    """
    text = png_text_chunks(png_text(provenance)) if provenance is not None else []
    if pixels.dtype == np.uint16:
        _write_png16(path, pixels, icc_profile, text)
    elif pixels.dtype == np.uint8:
        info = PngInfo()
        for kind, data in text:
            info.add(kind, data)
        Image.fromarray(pixels).save(
            path, format="PNG", icc_profile=icc_profile, pnginfo=info, compress_level=PNG_COMPRESS_LEVEL
        )
    else:
        raise ValueError(f"pixels of dtype {pixels.dtype}: expected uint8 or uint16")


def png_text(provenance: Provenance) -> dict[str, str]:
    """The text of a PNG written by a model: PNG's own keywords (Software, Description, Creation Time), and
    ``provenance``, the record's fields as JSON (Pillow reads them all as ``Image.open(path).text``)."""
    return {
        "Software": provenance.software,
        "Description": provenance.summary(),
        "Creation Time": provenance.created,
        "provenance": provenance.to_json(),
    }


def png_text_chunks(text: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """``(chunk type, data)`` of each key and value: tEXt for Latin-1 text, else iTXt (UTF-8), as Pillow chooses."""
    chunks = []
    for key, value in text.items():
        keyword = key.encode("latin-1")
        try:
            chunks.append((b"tEXt", keyword + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:  # uncompressed, no language tag, no translated keyword
            chunks.append((b"iTXt", keyword + b"\0\0\0\0\0" + value.encode("utf-8")))
    return chunks


def _write_png16(path, pixels: np.ndarray, icc_profile: bytes | None, text=(), rows_per_chunk: int = 64) -> None:
    """16-bit PNG streamed in bands of rows, each row Sub-filtered (PNG filter type 1); ``text``: chunks of
    ``png_text_chunks``, written before the pixels."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]  # grey, grey + alpha, RGB, RGBA
    sample_bytes = 2 * channels

    def chunks():
        yield b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
        if icc_profile:
            yield b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)
        yield from text
        compressor = zlib.compressobj(PNG_COMPRESS_LEVEL)
        for start in range(0, height, rows_per_chunk):
            band = pixels[start : start + rows_per_chunk].astype(">u2").view(np.uint8).reshape(-1, width * sample_bytes)
            filtered = band.copy()
            filtered[:, sample_bytes:] -= band[:, :-sample_bytes]  # uint8 arithmetic wraps modulo 256, as PNG's
            rows = np.concatenate([np.ones((band.shape[0], 1), np.uint8), filtered], axis=1)
            if data := compressor.compress(rows.tobytes()):
                yield b"IDAT", data
        yield b"IDAT", compressor.flush()
        yield b"IEND", b""

    with open(path, "wb") as f:
        f.write(PNG_SIGNATURE)
        for kind, data in chunks():
            f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))
