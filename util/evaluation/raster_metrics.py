"""Degradation, classical baselines and metrics of rasters in data units (DEMs first).

- ``block_mean``: the LR a coarser grid measures, the mean of the valid cells of each
  s x s block (the default LR of raster data sets);
- the two classical upsamplers every result is compared with: ``upsample_bicubic``
  (MATLAB's bicubic, Keys a = -0.5, as the photo path) and ``upsample_spline`` (cubic
  B-spline interpolation, order 3, as scipy.ndimage.zoom and scikit-image's resize);
  both put LR cell centres at the centres of their HR blocks (half-pixel alignment),
  which is where a block mean belongs;
- ``raster_scores``: over the valid cells only, RMSE, MAE and bias in the data's units,
  slope RMSE in degrees (Horn's method, 1981, with each grid's real cell size in
  metres: over the cells whose 3x3 neighbourhood is valid), and PSNR on heights
  normalised by each grid's range (20 log10(range / RMSE), a secondary figure).
"""

from __future__ import annotations

import numpy as np

METRICS = ("rmse", "mae", "bias", "slope_rmse", "psnr")


def block_mean(values: np.ndarray, scale: int, valid: np.ndarray | None = None):
    """(..., H, W) -> (means (..., H/s, W/s) float32, NaN where a block has no valid cell; valid blocks).

    ``valid``: bool like ``values`` (default: the finite cells). H and W must be multiples of ``scale``.
    """
    values = np.asarray(values)
    height, width = values.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"grid of {height}x{width} cells is not a multiple of the scale {scale}; crop it first")
    if valid is None:
        valid = np.isfinite(values)
    blocks = (*values.shape[:-2], height // scale, scale, width // scale, scale)
    sums = np.where(valid, values, 0).astype(np.float64).reshape(blocks).sum(axis=(-3, -1))
    counts = valid.reshape(blocks).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return means.astype(np.float32), counts > 0


def upsample_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """2-D float grid (h, w) without NaN -> (h * s, w * s) float32 by MATLAB's bicubic (util.data.resize)."""
    from util.data.resize import bicubic_upscale

    return bicubic_upscale(np.asarray(lr, np.float64), scale).astype(np.float32)


def upsample_spline(lr: np.ndarray, scale: int) -> np.ndarray:
    """2-D float grid (h, w) without NaN -> (h * s, w * s) float32 by cubic B-spline interpolation (order 3)."""
    from scipy import ndimage

    return ndimage.zoom(np.asarray(lr, np.float64), scale, order=3, mode="reflect", grid_mode=True).astype(np.float32)


def horn_slope(z: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Slope in degrees of the interior cells of a 2-D grid (H - 2, W - 2), Horn's 3x3 method.

    ``dy``, ``dx``: cell height and width in the units of ``z`` (metres for a DEM in metres).
    """
    z = np.asarray(z, np.float64)
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx)
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8 * dy)
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))


def _interior_valid(valid: np.ndarray) -> np.ndarray:
    """(H - 2, W - 2): True where the whole 3x3 neighbourhood of an interior cell is valid."""
    out = np.ones((valid.shape[0] - 2, valid.shape[1] - 2), bool)
    for dy in range(3):
        for dx in range(3):
            out &= valid[dy : dy + valid.shape[0] - 2, dx : dx + valid.shape[1] - 2]
    return out


class RasterScore:
    """Sums over grids of any sizes, added one at a time; ``result()`` gives the pooled metrics."""

    def __init__(self):
        self.cells = self.slope_cells = 0
        self.squares = self.absolute = self.signed = self.slope_squares = 0.0
        self.psnrs: list[float] = []

    def add(self, predicted: np.ndarray, target: np.ndarray, valid: np.ndarray, cell: tuple[float, float] | None):
        """One 2-D grid: ``predicted`` and ``target`` in data units, ``valid`` bool, ``cell`` (dy, dx) in metres.

        ``cell`` None (a grid whose cell size is unknown): no slope, which needs it.
        """
        predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
        valid = np.asarray(valid, bool) & np.isfinite(target)
        error = (predicted - target)[valid]
        if not error.size:
            return
        self.cells += error.size
        self.squares += float(np.sum(error**2))
        self.absolute += float(np.sum(np.abs(error)))
        self.signed += float(np.sum(error))
        if cell is not None and min(target.shape) >= 3:
            inner = _interior_valid(valid)
            if inner.any():
                fill = np.where(valid, target, 0.0)
                slope_error = horn_slope(np.where(valid, predicted, 0.0), *cell) - horn_slope(fill, *cell)
                self.slope_cells += int(inner.sum())
                self.slope_squares += float(np.sum(slope_error[inner] ** 2))
        span = float(target[valid].max() - target[valid].min())
        mse = float(np.mean(error**2))
        if span > 0 and mse > 0:
            self.psnrs.append(10 * np.log10(span**2 / mse))

    def result(self) -> dict:
        n = max(self.cells, 1)
        return {
            "rmse": float(np.sqrt(self.squares / n)),
            "mae": self.absolute / n,
            "bias": self.signed / n,
            "slope_rmse": float(np.sqrt(self.slope_squares / self.slope_cells)) if self.slope_cells else float("nan"),
            "psnr": float(np.mean(self.psnrs)) if self.psnrs else float("nan"),
            "cells": self.cells,
        }


def raster_scores(predicted, targets, valid, cells) -> dict:
    """Pooled metrics of N grids: ``predicted``, ``targets`` (N, H, W), ``valid`` bool, ``cells`` (N, 2) metres."""
    score = RasterScore()
    for p, t, v, c in zip(predicted, targets, valid, cells, strict=True):
        score.add(p, t, v, (float(c[0]), float(c[1])))
    return score.result()
