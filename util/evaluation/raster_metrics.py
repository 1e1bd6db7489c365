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
  normalised by each grid's range (20 log10(range / RMSE), a secondary figure);
- the slope applies to elevations only (``not_elevation`` says why a grid is not one);
  grids of other quantities (temperature in K, precipitation ...) get the scores of a
  downscaling instead: spatial correlation, per-cell error maps over a stack of grids,
  the radially averaged power spectrum and the variance at wavelengths of 2 to 3 cells,
  latitude-weighted RMSE, and the conservation error (the output's block means
  against the LR input); ``upsample_bicubic_mean_preserving`` is the baseline that
  conserves the LR exactly.
"""

from __future__ import annotations

import numpy as np

METRICS = ("rmse", "mae", "bias", "slope_rmse", "psnr")


def block_mean(values: np.ndarray, scale: int, valid: np.ndarray | None = None, dtype=np.float32):
    """(..., H, W) -> (means (..., H/s, W/s) of ``dtype``, NaN where a block has no valid cell; valid blocks).

    ``valid``: bool like ``values`` (default: the finite cells). H and W must be multiples of ``scale``.
    The sums are float64 whatever ``dtype``; float64 keeps them unrounded for the conservation scores.
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
    return means.astype(dtype), counts > 0


def upsample_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """2-D float grid (h, w) without NaN -> (h * s, w * s) float32 by MATLAB's bicubic (util.data.resize)."""
    from util.data.resize import bicubic_upscale

    return bicubic_upscale(np.asarray(lr, np.float64), scale).astype(np.float32)


def upsample_spline(lr: np.ndarray, scale: int) -> np.ndarray:
    """2-D float grid (h, w) without NaN -> (h * s, w * s) float32 by cubic B-spline interpolation (order 3)."""
    from scipy import ndimage

    return ndimage.zoom(np.asarray(lr, np.float64), scale, order=3, mode="reflect", grid_mode=True).astype(np.float32)


def upsample_bicubic_mean_preserving(lr: np.ndarray, scale: int) -> np.ndarray:
    """2-D float grid (h, w) without NaN -> (h * s, w * s) float32: bicubic whose block means equal ``lr``.

    Each s x s block of the bicubic grid is shifted by one constant, the LR cell minus the
    block's mean: the shape within a block is bicubic's, the block's mean is the LR cell's
    (up to float32 rounding). The shift is constant per block, so the output has steps of
    the size of bicubic's conservation error at block edges.
    """
    lr = np.asarray(lr, np.float64)
    upsampled = upsample_bicubic(lr, scale).astype(np.float64)
    shift = lr - block_mean(upsampled, scale, dtype=np.float64)[0]
    return (upsampled + np.kron(shift, np.ones((scale, scale)))).astype(np.float32)


MEAN_PRESERVING = "mean-preserving bicubic"


def baselines(elevation: bool = True) -> dict:
    """name -> upsampler (lr, scale) of the classical methods a model is compared with.

    Bicubic and cubic spline; for a quantity other than elevation also the mean-preserving
    bicubic, which conserves the LR as a downscaling of a climate field should.
    """
    if elevation:
        return {"bicubic": upsample_bicubic, "cubic spline": upsample_spline}
    mean_preserving = {MEAN_PRESERVING: upsample_bicubic_mean_preserving}
    return {"bicubic": upsample_bicubic, **mean_preserving, "cubic spline": upsample_spline}


# ---- Which scores apply --------------------------------------------------------------

ELEVATION_QUANTITIES = ("elevation", "height", "altitude", "bathymetry", "topography")
# CF standard names of terrain, ice-surface and sea-floor heights: the slope of these is a ground slope.
# "elevation" and "height" are not CF's terrain names, but DEM files use them so.
ELEVATION_STANDARD_NAMES = (
    "elevation",
    "height",
    "altitude",
    "surface_altitude",
    "bedrock_altitude",
    "height_above_mean_sea_level",
    "height_above_reference_ellipsoid",
    "height_above_geopotential_datum",
    "sea_floor_depth_below_geoid",
    "sea_floor_depth_below_sea_surface",
    "sea_floor_depth_below_mean_sea_level",
    "sea_floor_depth_below_reference_ellipsoid",
)
LENGTH_UNITS = ("m", "metre", "metres", "meter", "meters", "km", "ft", "foot", "feet", "us_survey_foot")


def not_elevation(units: str, quantity: str = "", standard_name: str = "") -> str:
    """Why a grid is not an elevation, for a note ("" when it is one, and its slope is scored).

    In order: a ``quantity`` (a manifest's) of ELEVATION_QUANTITIES, else a CF ``standard_name``
    of ELEVATION_STANDARD_NAMES, else ``units`` of a length (m, km, ft ...) make an elevation.
    """
    if quantity:
        ok = quantity.strip().lower() in ELEVATION_QUANTITIES
        return "" if ok else f"its quantity is {quantity!r}, not an elevation"
    if standard_name:
        ok = standard_name.strip().lower() in ELEVATION_STANDARD_NAMES
        return "" if ok else f"its standard_name is {standard_name!r}, not an elevation"
    ok = units.strip().lower() in LENGTH_UNITS
    return "" if ok else f"its units are {units!r}, not a length, so it is not an elevation"


# ---- The scores of a downscaling -----------------------------------------------------


def correlation(predicted: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Pearson correlation of two grids over the ``valid`` cells (default: finite in both); NaN when one is flat."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    valid = np.isfinite(predicted) & np.isfinite(target) & (True if valid is None else np.asarray(valid, bool))
    a, b = predicted[valid] - predicted[valid].mean(), target[valid] - target[valid].mean()
    norm = np.sqrt(np.sum(a**2) * np.sum(b**2))
    return float(np.sum(a * b) / norm) if norm > 0 else float("nan")


def cell_error_maps(predicted: np.ndarray, targets: np.ndarray, valid: np.ndarray):
    """(N, H, W) grids of N patches or time steps -> (RMSE map, bias map), each float32 (H, W) in data units.

    Each cell's RMSE and mean error (predicted - target) over the grids where it is valid; NaN where it never is.
    """
    error = np.asarray(predicted, np.float64) - np.asarray(targets, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(error)
    counts = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse = np.sqrt(np.where(valid, error**2, 0).sum(axis=0) / counts)
        bias = np.where(valid, error, 0).sum(axis=0) / counts
    return rmse.astype(np.float32), bias.astype(np.float32)


def _power(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|k| in cycles per cell, power) of every frequency of a 2-D grid without NaN.

    The mean is removed and a 2-D Hann window applied (so that the jump between opposite
    edges does not leak into high wavenumbers); power is |FFT|^2 / cells^2 / mean(window^2),
    so that it sums to about the grid's variance (data units squared).
    """
    field = np.asarray(field, np.float64)
    height, width = field.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2((field - field.mean()) * window)) ** 2 / field.size**2 / np.mean(window**2)
    ky, kx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    return np.hypot(ky, kx), power


def radial_power_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D grid without NaN -> (wavenumbers in cycles per cell, mean power of each ring), both (n // 2,).

    Ring i (1 .. n // 2, n the shorter side) holds the frequencies with round(|k| n) = i, so
    wavenumber i / n; power as ``_power`` (mean removed, Hann window), averaged over the ring.
    The scores fill a grid's nodata first from the nearest valid cell (``util.io.rasters.fill_nodata``).
    """
    k, power = _power(field)
    n = min(np.shape(field))
    rings = np.rint(k * n).astype(int).ravel()
    keep = (rings >= 1) & (rings <= n // 2)
    sums = np.bincount(rings[keep], power.ravel()[keep], minlength=n // 2 + 1)[1:]
    counts = np.bincount(rings[keep], minlength=n // 2 + 1)[1:]
    return np.arange(1, n // 2 + 1) / n, sums / np.maximum(counts, 1)


def small_scale_variance(field: np.ndarray) -> float:
    """The variance of a 2-D grid without NaN at wavenumbers above 1/3 up to 1/2 cycle per cell (data units^2).

    The highest-wavenumber third of the spectrum, up to the Nyquist wavenumber: wavelengths of
    2 to 3 cells, where a smooth interpolation has least power. Power as ``_power``.
    """
    k, power = _power(field)
    return float(power[(k > 1 / 3) & (k <= 0.5)].sum())


def _latitude_weights(lats: np.ndarray, shape) -> np.ndarray:
    """cos(latitude) of each cell of a grid of ``shape`` (H, W) from its rows' centre latitudes (H,) in degrees."""
    return np.broadcast_to(np.cos(np.radians(np.asarray(lats, np.float64)))[:, None], shape)


def latitude_weighted_rmse(predicted: np.ndarray, target: np.ndarray, valid: np.ndarray, lats: np.ndarray) -> float:
    """RMSE over the valid cells of a geographic grid, each cell weighted by cos(latitude) (its area on the sphere).

    ``lats``: (H,) centre latitude of each row in degrees.
    """
    error = np.asarray(predicted, np.float64) - np.asarray(target, np.float64)
    valid = np.asarray(valid, bool) & np.isfinite(error)
    weights = _latitude_weights(lats, error.shape)[valid]
    return float(np.sqrt(np.sum(weights * error[valid] ** 2) / np.sum(weights)))


def _conservation_errors(predicted: np.ndarray, lr: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """1-D: block mean of the valid cells of ``predicted`` minus ``lr``, for each LR cell with a valid HR cell."""
    scale = np.shape(predicted)[-1] // np.shape(lr)[-1]
    means, has_valid = block_mean(predicted, scale, np.asarray(valid, bool), dtype=np.float64)
    error = means - np.asarray(lr, np.float64)
    return error[has_valid & np.isfinite(error)]


def conservation_rmse(predicted: np.ndarray, lr: np.ndarray, valid: np.ndarray | None = None) -> float:
    """RMSE in data units of the block means (over the valid cells) of an HR grid against its LR input.

    ``predicted`` (H, W), ``lr`` (H / s, W / s), ``valid`` bool (H, W) (default: all cells). 0 for an
    output that conserves the LR's block means, as the block-mean degradation measures them.
    """
    valid = np.ones(np.shape(predicted), bool) if valid is None else valid
    error = _conservation_errors(predicted, lr, valid)
    return float(np.sqrt(np.mean(error**2))) if error.size else float("nan")


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
    """Sums over grids of any sizes, added one at a time; ``result()`` gives the pooled metrics.

    ``elevation``: the scores of a DEM, slope RMSE among them; otherwise those of a downscaling
    of another quantity: no slope, and the correlation, conservation, small-scale power and
    (for grids whose latitudes are known) latitude-weighted RMSE.
    """

    def __init__(self, elevation: bool = True):
        self.elevation = elevation
        self.cells = self.slope_cells = self.conservation_cells = 0
        self.squares = self.absolute = self.signed = self.slope_squares = 0.0
        self.conservation_squares = self.lat_squares = self.lat_weights = 0.0
        self.small_scale = np.zeros(2)  # cell-weighted small-scale variance of (predicted, target)
        self.psnrs: list[float] = []
        self.correlations: list[float] = []

    def add(self, predicted, target, valid, cell, lr=None, lats=None):
        """One 2-D grid: ``predicted`` and ``target`` in data units, ``valid`` bool, ``cell`` (dy, dx) in metres.

        ``cell`` None (a grid whose cell size is unknown): no slope, which needs it. Not an
        elevation: ``lr`` (H / s, W / s), the LR input, for the conservation error; ``lats``
        (H,), each row's centre latitude in degrees, for the latitude-weighted RMSE (None: unknown).
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
        if self.elevation:
            self._add_slope(predicted, target, valid, cell)
        else:
            self._add_downscaling(predicted, target, valid, lr, lats)
        span = float(target[valid].max() - target[valid].min())
        mse = float(np.mean(error**2))
        if span > 0 and mse > 0:
            self.psnrs.append(10 * np.log10(span**2 / mse))

    def _add_slope(self, predicted, target, valid, cell):
        if cell is None or min(target.shape) < 3:
            return
        inner = _interior_valid(valid)
        if inner.any():
            fill = np.where(valid, target, 0.0)
            slope_error = horn_slope(np.where(valid, predicted, 0.0), *cell) - horn_slope(fill, *cell)
            self.slope_cells += int(inner.sum())
            self.slope_squares += float(np.sum(slope_error[inner] ** 2))

    def _add_downscaling(self, predicted, target, valid, lr, lats):
        self.correlations.append(correlation(predicted, target, valid))
        if lr is not None:
            conservation = _conservation_errors(predicted, lr, valid)
            self.conservation_cells += conservation.size
            self.conservation_squares += float(np.sum(conservation**2))
        if lats is not None:
            weights = _latitude_weights(lats, target.shape)[valid]
            self.lat_squares += float(np.sum(weights * (predicted - target)[valid] ** 2))
            self.lat_weights += float(np.sum(weights))
        from util.io.rasters import fill_nodata

        # nodata takes the nearest valid cell's value, in the truth and each output alike
        fields = (fill_nodata(np.where(valid, grid, np.nan)) for grid in (predicted, target))
        self.small_scale += int(valid.sum()) * np.array([small_scale_variance(f) for f in fields])

    def merge(self, other: RasterScore) -> None:
        """Add the sums of ``other``, a score of the same kind (elevation or not), to these."""
        for name, value in vars(other).items():
            if name != "elevation":
                setattr(self, name, getattr(self, name) + value)  # numbers add, lists join

    def result(self) -> dict:
        n = max(self.cells, 1)
        scores = {"rmse": float(np.sqrt(self.squares / n)), "mae": self.absolute / n, "bias": self.signed / n}
        if self.elevation:
            slope = np.sqrt(self.slope_squares / self.slope_cells) if self.slope_cells else np.nan
            scores["slope_rmse"] = float(slope)
        else:
            scores.update(self._downscaling_result())
        scores["psnr"] = float(np.mean(self.psnrs)) if self.psnrs else float("nan")
        scores["cells"] = self.cells
        return scores

    def _downscaling_result(self) -> dict:
        """The mean correlation of the grids; pooled conservation RMSE, small-scale power ratio, weighted RMSE."""
        correlations = [c for c in self.correlations if np.isfinite(c)]
        blocks, (small_predicted, small_target) = self.conservation_cells, self.small_scale
        scores = {
            "correlation": float(np.mean(correlations)) if correlations else float("nan"),
            "conservation_rmse": float(np.sqrt(self.conservation_squares / blocks)) if blocks else float("nan"),
            "small_scale_power_ratio": float(small_predicted / small_target) if small_target > 0 else float("nan"),
        }
        if self.lat_weights > 0:
            scores["lat_weighted_rmse"] = float(np.sqrt(self.lat_squares / self.lat_weights))
        return scores


def raster_scores(predicted, targets, valid, cells, lr=None, lats=None, elevation: bool = True) -> dict:
    """Pooled metrics of N grids: ``predicted``, ``targets`` (N, H, W), ``valid`` bool, ``cells`` (N, 2) metres.

    ``elevation`` False: the scores of a downscaling (``RasterScore``), with ``lr`` (N, H / s, W / s)
    the LR inputs and ``lats`` (N, H) each grid's row latitudes in degrees (None: unknown).
    """
    score = RasterScore(elevation)
    lrs = [None] * len(targets) if lr is None else lr
    latitudes = [None] * len(targets) if lats is None else lats
    for p, t, v, c, low, lat in zip(predicted, targets, valid, cells, lrs, latitudes, strict=True):
        score.add(p, t, v, (float(c[0]), float(c[1])), low, lat)
    return score.result()
