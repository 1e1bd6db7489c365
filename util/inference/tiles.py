"""Whole-image inference in overlapping, blended tiles; memory bounded by the tile size.

A model of the suite is applied to an image of any size tile by tile. Tiles are laid
out in the pixels of the degraded image (the LR image for SR, the noisy image for
denoising), overlap by ``overlap`` pixels and are blended with weights that fall off
linearly towards each tile edge shared with a neighbour, so no seam shows and the
result agrees with a whole-image pass away from the image border.

Memory: only one band of tiles (tile height x output width) is held in float32; the
finished rows are rounded into the output array (uint8 stays uint8: a 12-megapixel
photo upscaled x4 is 576 MB) as soon as no later tile touches them. "upsampled"
models get each tile bicubic-upsampled with a few LR pixels of context, which gives
exactly the pixels of the whole image's bicubic upsampling.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from util.data.resize import bicubic_upscale
from util.io.images import round_to_dtype
from util.models.loading import prepare_input

TILE_OUTPUT = 512  # default tile side in output pixels (a 512x512 model input for an "upsampled" model)
OVERLAP_FRACTION = 4  # default overlap: a quarter of the tile
BICUBIC_CONTEXT = 4  # LR pixels around a tile for bicubic upsampling (the x-scale kernel reaches 2)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_starts(length: int, tile: int, stride: int, step: int = 1) -> list[int]:
    """Starts of tiles of ``tile`` pixels that cover ``[0, length)``.

    Consecutive starts are at most ``stride`` apart (so neighbours overlap by at least
    ``tile - stride``), spread evenly, on multiples of ``step``; the last tile ends at
    ``length``. ``length``, ``tile`` and ``stride`` must be multiples of ``step``.
    """
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    return [(i * (length - tile) // (count - 1)) // step * step for i in range(count)]


def blend_weights(starts: list[int], tile: int, length: int) -> list[np.ndarray]:
    """1-D float32 weights of each tile along one axis; over the axis they sum to 1.

    Where two tiles overlap, each tile's weight is ~0 in the outer quarter of the
    overlap (pixels that lack context: the model saw its zero padding close by),
    ramps linearly across the middle half and is 1 beyond, so the two weights add up
    to 1 and every pixel is taken from a tile that had at least ``overlap / 4``
    pixels of real context around it. Along an image edge the weight is 1.
    """
    raw = []
    for i, start in enumerate(starts):
        depth = np.arange(tile) + 0.5  # distance of each pixel centre from the tile's first edge
        weight = np.ones(tile)
        if i > 0 and (overlap := starts[i - 1] + tile - start) > 0:
            weight = np.minimum(weight, _ramp(depth, overlap))
        if i + 1 < len(starts) and (overlap := start + tile - starts[i + 1]) > 0:
            weight = np.minimum(weight, _ramp(tile - depth, overlap))
        raw.append(weight)
    total = np.zeros(length)
    for start, weight in zip(starts, raw, strict=True):
        total[start : start + tile] += weight
    return [
        (weight / total[start : start + tile]).astype(np.float32) for start, weight in zip(starts, raw, strict=True)
    ]


def _ramp(depth: np.ndarray, overlap: int) -> np.ndarray:
    """Weight at ``depth`` pixels inside an overlap of ``overlap`` pixels: 0 -> 1 across its middle half."""
    # A floor far below 1/255 keeps the weight positive where a third tile overlaps.
    return np.clip((depth - overlap / 4) / (overlap / 2), 1e-6, 1.0)


def default_tile(info: dict) -> int:
    """Default tile side in pixels of the degraded image: a ~512-pixel output tile."""
    return max(1, TILE_OUTPUT // info["scale"])


def enhance_array(
    model,
    info: dict,
    image: np.ndarray,
    tile: int | None = None,
    overlap: int | None = None,
    progress=True,
    ensemble: bool = False,
):
    """Apply a suite model to a whole degraded image in overlapping, blended tiles.

    ``image``: the LR image (SR) or the noisy image (denoising), HW or HWC with 1
    (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels; uint8, uint16 or float
    in [0, 1] (a float image goes to the model unclipped: a noisy one may stray).
    Grey goes through the RGB model on replicated channels and comes back as the
    mean of the three output channels; alpha is upscaled by bicubic.
    ``tile`` and ``overlap``: in pixels of ``image``, rounded up so that every model
    input is a multiple of the model's ``size_multiple`` (default: a ~512-pixel output
    tile, overlapping by a quarter). An image no larger than one tile is one pass.
    ``ensemble``: the self-ensemble of EDSR+ / RCAN+: each tile goes through the
    model in all eight flips/rotations and the eight outputs, turned back, are
    averaged (8x the time; typically +0.1 dB or more on the SR benchmarks).
    Returns the same layout and dtype at ``info["scale"]`` times the size (uint8 and
    uint16 rounded, float32 clipped to [0, 1]).
    """
    scale = info["scale"]
    grey_2d = image.ndim == 2
    pixels = image[..., None] if grey_2d else image
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"image of shape {image.shape}: expected HW or HWC with 1 to 4 channels")
    if pixels.dtype not in (np.uint8, np.uint16) and not np.issubdtype(pixels.dtype, np.floating):
        raise ValueError(f"image of dtype {pixels.dtype}: expected uint8, uint16 or float in [0, 1]")

    # Tiles and pads are counted in steps of LR pixels that keep model inputs at a
    # multiple of size_multiple, and tiles start on that grid, so that pooling layers
    # see the same grid as in a whole-image pass.
    upsampled = info["input_kind"] == "upsampled" and scale > 1
    multiple = info["size_multiple"]
    step = multiple // math.gcd(multiple, scale) if upsampled else multiple
    tile = _round_up(tile or default_tile(info), step)
    overlap = _round_up(tile // OVERLAP_FRACTION if overlap is None else overlap, step)
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile {tile}) (both rounded up to multiples of {step})")

    height, width = pixels.shape[:2]
    padded_h, padded_w = _round_up(height, step), _round_up(width, step)
    if (padded_h, padded_w) != (height, width):
        pixels = np.pad(pixels, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="symmetric")
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    rows = tile_starts(padded_h, tile_h, tile - overlap, step)
    cols = tile_starts(padded_w, tile_w, tile - overlap, step)
    row_weights = blend_weights([r * scale for r in rows], tile_h * scale, padded_h * scale)
    col_weights = blend_weights([c * scale for c in cols], tile_w * scale, padded_w * scale)

    channels = pixels.shape[-1]
    out = np.empty((height * scale, width * scale, channels), dtype=_output_dtype(pixels.dtype))
    band = np.zeros((tile_h * scale, padded_w * scale, channels), dtype=np.float32)
    bar = tqdm(total=len(rows) * len(cols), unit="tile", desc="enhance", disable=not progress, leave=False)
    with bar:
        for r, top in enumerate(rows):
            for c, left in enumerate(cols):
                result = _enhance_tile(model, info, pixels, top, left, tile_h, tile_w, ensemble)
                result *= row_weights[r][:, None, None]
                result *= col_weights[c][None, :, None]
                band[:, left * scale : (left + tile_w) * scale] += result
                bar.update()
            # Rows above the next tile row are final: round them into the output.
            done = (rows[r + 1] - top) * scale if r + 1 < len(rows) else tile_h * scale
            finished = band[: max(0, min(done, height * scale - top * scale)), : width * scale]
            out[top * scale : top * scale + finished.shape[0]] = _to_dtype(finished, out.dtype)
            band[: band.shape[0] - done] = band[done:]
            band[band.shape[0] - done :] = 0.0
    return out[..., 0] if grey_2d else out


def enhance_to_uint8(model, info: dict, degraded: np.ndarray, **kwargs) -> np.ndarray:
    """``enhance_array`` for the benchmark protocols: a uint8 output from a uint8 input, or from the
    papers' noisy input (float64 on the 0-255 scale, neither clipped nor rounded), which the model
    gets as it is, on its [0, 1] scale."""
    if degraded.dtype == np.uint8:
        return enhance_array(model, info, degraded, **kwargs)
    out = enhance_array(model, info, (degraded / 255.0).astype(np.float32), **kwargs)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _enhance_tile(model, info, pixels, top, left, tile_h, tile_w, ensemble=False) -> np.ndarray:
    """One tile through the model: float32 (tile_h * scale, tile_w * scale, channels)."""
    scale = info["scale"]
    upsampled = info["input_kind"] == "upsampled" and scale > 1
    channels = pixels.shape[-1]
    colours = 1 if channels <= 2 else 3
    has_alpha = channels in (2, 4)
    context = BICUBIC_CONTEXT if scale > 1 and (upsampled or has_alpha) else 0
    y0, x0 = max(0, top - context), max(0, left - context)
    source = pixels[y0 : top + tile_h + context, x0 : left + tile_w + context]
    colour = source[..., :colours]
    if colours == 1:
        colour = np.repeat(colour, 3, axis=-1)
    # Crop of the tile (without context) in LR and in output pixels.
    lr_crop = np.s_[top - y0 : top - y0 + tile_h, left - x0 : left - x0 + tile_w]
    out_crop = np.s_[
        (top - y0) * scale : (top - y0 + tile_h) * scale, (left - x0) * scale : (left - x0 + tile_w) * scale
    ]
    # prepare_input clips an upsampled float input (bicubic overshoots) as uint8 clips.
    model_input = prepare_input(colour, info)[out_crop] if upsampled else prepare_input(colour[lr_crop], info)
    if ensemble:
        result = self_ensemble(model, model_input)
    else:
        result = np.asarray(model.predict_on_batch(model_input[None]), dtype=np.float32)[0]
    if result.shape != (tile_h * scale, tile_w * scale, 3):
        raise ValueError(
            f"model output {result.shape} for an input of {model_input.shape}: expected {tile_h * scale}x"
            f"{tile_w * scale}x3 for task {info['task']} (scale {scale}, input kind {info['input_kind']})"
        )
    np.clip(result, 0.0, 1.0, out=result)  # before grey's mean, so grey matches the rounded RGB channels
    if colours == 1:
        result = result.mean(axis=-1, keepdims=True)
    if has_alpha:
        alpha = source[..., -1:]
        peak = np.iinfo(alpha.dtype).max if alpha.dtype.kind == "u" else 1.0
        alpha = alpha.astype(np.float64) / peak
        alpha = bicubic_upscale(alpha, scale)[out_crop] if scale > 1 else alpha[lr_crop]
        result = np.concatenate([result, alpha.astype(np.float32)], axis=-1)
    return result


def self_ensemble(model, model_input: np.ndarray) -> np.ndarray:
    """Mean of the model's outputs over the eight flips/rotations of one HWC input, each turned back."""
    return batch_self_ensemble(model, model_input[np.newaxis])[0]


def batch_self_ensemble(model, inputs: np.ndarray) -> np.ndarray:
    """``self_ensemble`` of every image of an NHWC batch (all of one size).

    The four rotations of the images and of their mirror images run as one batch of
    2N per rotation (a rotation by 90 degrees swaps height and width).
    """
    n, total = len(inputs), None
    for k in range(4):
        batch = np.concatenate([np.rot90(inputs, k, axes=(1, 2)), np.rot90(inputs[:, :, ::-1], k, axes=(1, 2))])
        outputs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
        restored = np.rot90(outputs[:n], -k, axes=(1, 2)) + np.rot90(outputs[n:], -k, axes=(1, 2))[:, :, ::-1]
        total = restored if total is None else total + restored
    return total / 8.0


def predict_patches(model, info: dict, degraded: np.ndarray, batch: int = 32, ensemble: bool = False) -> np.ndarray:
    """Model outputs for uint8 NHWC degraded patches (all of one size), as uint8 (rounded, clipped).

    ``ensemble``: the batched self-ensemble of each patch, as ``enhance_array(..., ensemble=True)``.
    """
    outputs = []
    for start in range(0, len(degraded), batch):
        x = prepare_input(degraded[start : start + batch], info, batch=True)
        y = batch_self_ensemble(model, x) if ensemble else model(x, training=False)
        outputs.append(round_to_dtype(np.asarray(y, dtype=np.float32)))
    return np.concatenate(outputs)


def _output_dtype(dtype) -> np.dtype:
    return np.dtype(dtype) if dtype in (np.uint8, np.uint16) else np.dtype(np.float32)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float in [0, 1] -> dtype: integers rounded half up and clipped, floats clipped."""
    if dtype == np.float32:
        return np.clip(values, 0.0, 1.0)
    return round_to_dtype(values, dtype)
