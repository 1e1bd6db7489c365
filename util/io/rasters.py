"""Rasters in physical units (DEMs, heat maps, any 2-D grid): reading, nodata, cell sizes, writing.

One reader for every format the suite takes, ``read_raster(path)`` -> ``Raster``:

- GeoTIFF / Cloud-Optimized GeoTIFF and ESRI ASCII grids (``.asc``) through rasterio
  (its wheels bundle GDAL): one band (``band`` picks one of several), nodata, a packed
  band's scale and offset (applied), CRS (EPSG or any WKT, e.g. a lunar or Mars
  geographic system) and affine transform; an ASCII grid's header and value count are
  checked first (``check_ascii_grid``: GDAL reads broken ones without a word);
- NumPy ``.npy`` (a 2-D array, no georeferencing) and ``.npz``: the first 2-D array, or
  ``variable``; the layouts of matplotlib's sample DEMs (``elevation`` with ``xmin``,
  ``xmax``, ``ymin``, ``ymax``, ``dx``, ``dy`` in degrees; ``topo`` with ``latitude``
  and ``longitude`` vectors) are georeferenced on WGS84;
- one variable of a CF NetCDF file through xarray (``_FillValue``, ``scale_factor`` and
  ``add_offset`` applied; the x and y axes found as CF says (``axis``, ``standard_name``,
  ``units``, then the names), in any order; regular 1-D coordinates give the transform,
  longitudes unwrapped across 0/360, lengths in km converted to metres, irregular ones
  refused; ``grid_mapping``'s ``crs_wkt`` / ``spatial_ref``, or latitude/longitude axes,
  the CRS).

``Raster.values`` is float32 (H, W), row 0 the northern (top) row, NaN where a cell is
nodata: equal to the file's nodata value, to ``nodata`` given by the user, masked, or not
finite. Nodata is never data: callers fill it (``fill_nodata``) only where a model needs
numbers, and mask it everywhere else.

Writing keeps the input's format and georeferencing (``write_raster``, and
``RasterWriter`` for outputs written a band of rows at a time): float32, the same CRS, the
transform's cell size divided by the scale, the input's nodata value (NaN where it had
none and a cell is nodata), a NetCDF input's global ``history``; given a
``util.io.provenance.Provenance``, the model that made it where the format has room for text
(GeoTIFF tags, NetCDF attributes, an ``.npz`` entry; an ESRI ASCII grid and a ``.npy`` have none).
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from util.io.files import UserError, atomic_path
from util.io.provenance import Provenance

RASTER_SUFFIXES = (".tif", ".tiff", ".asc", ".npy", ".npz", ".nc")
# Values that mark missing cells in real files that forget to declare them (the checks warn, never guess).
SENTINELS = (-9999.0, -32768.0, -32767.0, -99999.0, -3.4028234663852886e38)
WGS84 = (6378137.0, 1 / 298.257223563)  # semi-major axis (m), flattening


@dataclass
class Raster:
    """A 2-D grid in data units read from ``path`` (see the module doc).

    ``transform``: affine.Affine from (col, row) to CRS coordinates of the cell corners, or
    None; ``crs``: rasterio.crs.CRS or None; ``nodata``: the file's nodata value (None: it
    declares none); ``units``: of the values (``"m"`` unless the file says otherwise);
    ``degrees``: the cells are in degrees although the file has no CRS (an ASCII grid of
    geographic cells without a .prj); ``cell_unknown``: why the cell size in metres cannot be
    known ("" when it can): no coordinates at all, or NetCDF coordinates without a length or
    degree unit and no CRS; ``meta``: what a writer of the same format needs.
    """

    path: Path
    values: np.ndarray
    transform: object = None
    crs: object = None
    nodata: float | None = None
    units: str = "m"
    degrees: bool = False
    meta: dict = field(default_factory=dict)
    cell_unknown: str = ""

    @property
    def valid(self) -> np.ndarray:
        """bool (H, W): True where the cell holds data."""
        return np.isfinite(self.values)

    @property
    def suspected_nodata(self) -> float | None:
        """A sentinel such as -9999 found among the values of a file that declares no nodata, else None."""
        if self.nodata is not None:
            return None
        finite = self.values[np.isfinite(self.values)]
        low = float(finite.min()) if finite.size else 0.0
        return next((s for s in SENTINELS if low <= s and np.any(finite == np.float32(s))), None)

    def cell_size_m(self) -> tuple[float, float]:
        """(dy, dx): the height and width of a cell in metres.

        Projected grids: the transform's cell size times the CRS's linear unit. Geographic
        grids (a geographic CRS, or ``degrees``): degrees converted on the CRS's ellipsoid
        (WGS84 when it names none) at the raster's centre latitude, so cells are not square
        away from the equator. No transform: 1 x 1. Where ``cell_unknown`` says why, the
        result is not in metres: a caller that measures slopes asks the user instead.
        """
        if self.transform is None:
            return 1.0, 1.0
        t = self.transform
        dx, dy = math.hypot(t.a, t.d), math.hypot(t.b, t.e)
        if self.degrees or (self.crs is not None and self.crs.is_geographic):
            a, f = _ellipsoid(self.crs)
            height = self.values.shape[0]
            lat = math.radians(t.f + t.e * height / 2 + t.d * self.values.shape[1] / 2)
            e2 = f * (2 - f)
            w = 1 - e2 * math.sin(lat) ** 2
            meridian, normal = a * (1 - e2) / w**1.5, a / math.sqrt(w)
            return math.radians(dy) * meridian, math.radians(dx) * normal * math.cos(lat)
        factor = 1.0
        if self.crs is not None:
            try:
                factor = float(self.crs.linear_units_factor[1])
            except Exception:  # rasterio raises CRSError for a CRS without linear units
                factor = 1.0
        return dy * factor, dx * factor

    def region(self, row0: int, row1: int, col0: int, col1: int) -> Raster:
        """The cells [row0:row1, col0:col1], the transform moved to the part's top-left corner."""
        transform = self.transform
        if transform is not None:
            from affine import Affine

            transform = transform @ Affine.translation(col0, row0)
        return dataclasses.replace(self, values=self.values[row0:row1, col0:col1], transform=transform)


def _ellipsoid(crs) -> tuple[float, float]:
    """(semi-major axis in metres, flattening) of a CRS's WKT; WGS84 when there is none."""
    if crs is None:
        return WGS84
    match = re.search(r'(?:SPHEROID|ELLIPSOID)\["[^"]*",\s*([0-9.eE+-]+),\s*([0-9.eE+-]+)', crs.to_wkt())
    if not match:
        return WGS84
    axis, inverse = float(match.group(1)), float(match.group(2))
    return axis, (1 / inverse if inverse else 0.0)


# ---- 1. Reading -------------------------------------------------------------------


def read_raster(path, band: int | None = None, variable: str | None = None, nodata: float | None = None) -> Raster:
    """Read one band / variable of a raster file (see the module doc); a UserError names a bad file.

    ``nodata``: a value the user declares as nodata, for files that declare none (cells equal
    to the file's own nodata value are nodata as well).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such raster file")
    suffix = path.suffix.lower()
    if suffix in (".grib", ".grib2", ".grb", ".grb2"):
        raise UserError(f"{path}: a GRIB file is a stack of time steps; read it with util.io.stacks.read_stack")
    if suffix not in RASTER_SUFFIXES:
        raise UserError(f"{path}: not a raster file; give one of {', '.join(RASTER_SUFFIXES)}")
    if suffix in (".npy", ".npz"):
        raster = _read_numpy(path, variable)
    elif suffix == ".nc":
        raster = _read_netcdf(path, variable)
    else:
        if variable is not None:
            raise UserError(f"{path}: --variable applies to .npz and .nc files; drop it (use --band for GeoTIFFs)")
        raster = _read_gdal(path, band)
    if band is not None and suffix not in (".tif", ".tiff"):
        raise UserError(f"{path}: --band applies to multi-band GeoTIFFs; drop it (use --variable for .npz/.nc)")
    values = raster.values
    if nodata is not None:
        with np.errstate(over="ignore"):  # --nodata 1e40 is inf in float32, and matches only infinite cells
            values[values == np.float32(nodata)] = np.nan
        if raster.nodata is None:
            raster.nodata = float(nodata)
    values[~np.isfinite(values)] = np.nan
    return raster


def _read_gdal(path: Path, band: int | None) -> Raster:
    import warnings

    import rasterio

    if path.suffix.lower() == ".asc":
        check_ascii_grid(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(path)
        with src:
            if band is None and src.count > 1:
                raise UserError(f"{path}: {src.count} bands; give --band 1 to {src.count} (the band to use)")
            index = 1 if band is None else band
            if not 1 <= index <= src.count:
                raise UserError(f"{path}: --band {index}, but the file has {src.count} band(s); give 1 to {src.count}")
            with np.errstate(over="ignore"):  # a nodata value beyond the band's type (1e40 in float32) masks nothing
                data = src.read(index, masked=True)
                values = unpacked(path, data, src.scales[index - 1], src.offsets[index - 1])
            units = src.units[index - 1] if src.units and src.units[index - 1] else "m"
            transform = None if src.transform.is_identity else src.transform
            crs, nodata = src.crs, src.nodata
            driver = src.driver
    except rasterio.errors.RasterioError as err:
        raise UserError(
            f"{path}: not a readable raster ({gdal_detail(err)}); check the file or download it again"
        ) from None
    if nodata is not None and math.isfinite(nodata) and abs(nodata) > float(np.finfo(np.float32).max):
        nodata = None  # no float32 cell can hold it, nor can the float32 output declare it: NaN marks nodata there
    degrees = crs is None and transform is not None and _looks_geographic(transform, values.shape)
    raster = Raster(path, values, transform, crs, nodata, units, degrees, meta={"driver": driver})
    if transform is None:
        raster.cell_unknown = "the file has no georeferencing (no transform)"
    return raster


def unpacked(path: Path, data: np.ma.MaskedArray, scale: float, offset: float) -> np.ndarray:
    """float32 values in physical units: a band's stored numbers times its scale plus its offset, NaN where masked.

    GDAL keeps a packed band's scale and offset as metadata and returns the stored integers;
    the suite works in physical units, and writes float32 without scale or offset.
    """
    scale = 1.0 if scale is None else float(scale)
    offset = 0.0 if offset is None else float(offset)
    if not (math.isfinite(scale) and math.isfinite(offset)) or scale == 0:
        raise UserError(f"{path}: band scale {scale:g} / offset {offset:g}; give a file with a finite, non-zero scale")
    if (scale, offset) == (1.0, 0.0):
        return np.ma.filled(data.astype(np.float32), np.nan)
    with np.errstate(over="ignore"):
        values = np.ma.filled(data.astype(np.float64) * scale + offset, np.nan).astype(np.float32)
    if np.isinf(values).any():
        raise UserError(
            f"{path}: band scale {scale:g} / offset {offset:g} take values beyond float32; check its scale/offset"
        )
    return values


# ESRI ASCII grid header keys as GDAL's AAIGrid driver reads them (any order, any case).
ASCII_KEYS = ("ncols", "nrows", "xllcorner", "xllcenter", "yllcorner", "yllcenter", "cellsize", "dx", "dy")
ASCII_NODATA = "nodata_value"
_ASCII_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan", re.IGNORECASE)


def check_ascii_grid(path: Path) -> None:
    """A UserError naming the first fault of an ESRI ASCII grid's header or data, else nothing.

    GDAL's AAIGrid driver is lenient: it reads "nrows 4O" as 4 rows, "xllcorner abc" as 0,
    an empty cellsize as the first data value and an empty NODATA_value as 0 (every 0 m
    cell nodata), ignores values beyond the header's count and reads a word among the
    values as 0, all without an error. Every header line must hold one number here, the
    counts whole numbers above 0, the cell size above 0, and the data exactly nrows x ncols
    numbers. A .asc in another layout (GRASS ASCII: "north: ...") is left to GDAL.
    """
    header: dict[str, str] = {}
    count, bad = 0, None
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.decode("latin-1").strip()
            fields = line.split()
            if not fields:
                continue
            key = fields[0].lower()
            if count == 0 and not _ASCII_NUMBER.fullmatch(fields[0]):
                if not header and key not in ASCII_KEYS:
                    return
                if key not in ASCII_KEYS + (ASCII_NODATA,):
                    raise UserError(
                        f"{path}: line {number} {line[:40]!r} is not an ESRI ASCII header line; "
                        f"give {', '.join(ASCII_KEYS[:2])}, xllcorner, yllcorner, cellsize and NODATA_value"
                    )
                if len(fields) != 2 or not _ASCII_NUMBER.fullmatch(fields[1]):
                    raise UserError(f"{path}: header line {line[:40]!r} needs one number after {fields[0]}; fix it")
                header[key] = fields[1]
                continue
            count += len(fields)
            if bad is None and not all(_ASCII_NUMBER.fullmatch(v) for v in fields):
                bad = (number, next(v for v in fields if not _ASCII_NUMBER.fullmatch(v)))
    _check_ascii_header(path, header)
    if bad is not None:
        raise UserError(f"{path}: line {bad[0]} holds {bad[1][:20]!r}, not a number; fix or remove it")
    rows, cols = int(header["nrows"]), int(header["ncols"])
    if count != rows * cols:
        raise UserError(
            f"{path}: holds {count} values but its header says nrows {rows} x ncols {cols} = {rows * cols}; "
            f"{'the file is cut short: download it again' if count < rows * cols else 'fix nrows / ncols'}"
        )


def _check_ascii_header(path: Path, header: dict[str, str]) -> None:
    for key in ("ncols", "nrows"):
        if key not in header:
            raise UserError(f"{path}: its header has no {key} line; give one")
        if not header[key].isdigit() or int(header[key]) == 0:
            raise UserError(f"{path}: {key} {header[key]}: give a whole number above 0")
    for corner in ("xll", "yll"):
        if f"{corner}corner" not in header and f"{corner}center" not in header:
            raise UserError(f"{path}: its header has no {corner}corner (or {corner}center) line; give one")
    sizes = [k for k in ("cellsize", "dx", "dy") if k in header]
    if not sizes or sizes == ["dx"] or sizes == ["dy"]:
        raise UserError(f"{path}: its header has no cellsize line; give the cell size")
    for key in sizes:
        if not float(header[key]) > 0:
            raise UserError(f"{path}: {key} {header[key]}: give a cell size above 0")


def gdal_detail(err: Exception) -> str:
    """The first line of the innermost GDAL error behind ``err`` (the outer one says "See previous exception")."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _looks_geographic(transform, shape) -> bool:
    """A grid without CRS whose cells are below 1/100 and whose extent lies in longitude/latitude ranges."""
    height, width = shape
    west, north = transform.c, transform.f
    east, south = west + transform.a * width, north + transform.e * height
    small = 0 < abs(transform.a) < 0.01 and 0 < abs(transform.e) < 0.01
    return small and min(west, east) >= -180 and max(west, east) <= 360 and south >= -90 and north <= 90


def _read_numpy(path: Path, variable: str | None) -> Raster:
    try:
        if path.suffix.lower() == ".npy":
            if variable:
                raise UserError(f"{path}: --variable applies to .npz and .nc files; drop it")
            array = np.load(path, allow_pickle=False)
            return _numpy_raster(path, array, {})
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: not a readable NumPy file ({err}); check the file") from None
    grids = [name for name, a in arrays.items() if a.ndim == 2]
    if variable is None:
        if not grids:
            raise UserError(f"{path}: holds no 2-D array ({', '.join(arrays)}); give a file with one grid")
        variable = grids[0]
    elif variable not in grids:
        raise UserError(f"{path}: no 2-D array {variable!r}; give --variable one of {', '.join(grids)}")
    raster = _numpy_raster(path, arrays[variable], {"variable": variable})
    _georeference_npz(raster, arrays)
    return raster


def _numpy_raster(path: Path, array: np.ndarray, meta: dict) -> Raster:
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:2])
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise UserError(f"{path}: a {array.dtype} array of shape {array.shape}; give a 2-D numeric grid (H, W)")
    if np.iscomplexobj(array):
        raise UserError(f"{path}: a {array.dtype} (complex) array; give real values (np.save its .real or abs())")
    raster = Raster(path, array.astype(np.float32), meta=meta)
    raster.cell_unknown = f"a {path.suffix} array has no coordinates"
    return raster


def _georeference_npz(raster: Raster, arrays: dict) -> None:
    """matplotlib's sample DEM layouts: corner coordinates in degrees, or latitude/longitude vectors (WGS84).

    ``meta["npz"]`` records the layout, so that a written .npz carries its georeferencing the same way.
    """
    from affine import Affine
    from rasterio.crs import CRS

    height, width = raster.values.shape
    scalars = {k: float(v) for k, v in arrays.items() if v.ndim == 0 and np.issubdtype(v.dtype, np.number)}
    if {"xmin", "xmax", "ymin", "ymax"} <= set(scalars):
        west, east = sorted((scalars["xmin"], scalars["xmax"]))
        south, north = sorted((scalars["ymin"], scalars["ymax"]))  # jacksboro's ymin is its north edge
        raster.transform = Affine.translation(_longitude(west), north) @ Affine.scale(
            (east - west) / width, -(north - south) / height
        )
        raster.crs = CRS.from_epsg(4326)
        raster.cell_unknown = ""
        raster.meta["npz"] = {
            "layout": "corners",
            "ymin_north": scalars["ymin"] > scalars["ymax"],
            "lon360": west >= 180.0,
        }
        return
    lat = next((k for k in ("latitude", "lat") if k in arrays and arrays[k].shape == (height,)), None)
    lon = next((k for k in ("longitude", "lon") if k in arrays and arrays[k].shape == (width,)), None)
    if lat is not None and lon is not None:
        transform, north_up, west_first = _transform_from_centres(
            np.asarray(arrays[lat], np.float64), np.asarray(arrays[lon], np.float64)
        )
        if transform is not None:
            if not west_first:
                raster.values = raster.values[:, ::-1].copy()
            if not north_up:
                raster.values = raster.values[::-1].copy()
                raster.meta["south_up"] = True
            raster.transform = Affine.translation(_longitude(transform.c) - transform.c, 0) @ transform
            raster.crs = CRS.from_epsg(4326)
            raster.cell_unknown = ""
            raster.meta["npz"] = {"layout": "centres", "lat": lat, "lon": lon, "lon360": transform.c >= 180.0}


def _npz_coordinates(layout: dict, transform, shape: tuple[int, int], south_up: bool) -> dict:
    """The georeferencing arrays of an output .npz in the input's ``layout`` (``meta["npz"]``), in degrees."""
    height, width = shape
    t = transform
    west, north = t.c + (360.0 if layout["lon360"] else 0.0), t.f
    east, south = west + t.a * width, north + t.e * height
    if layout["layout"] == "corners":
        ymin, ymax = (north, south) if layout["ymin_north"] else (south, north)
        return {"xmin": west, "xmax": east, "ymin": ymin, "ymax": ymax, "dx": t.a, "dy": -t.e}
    lats = north + t.e * (np.arange(height) + 0.5)
    return {layout["lat"]: lats[::-1] if south_up else lats, layout["lon"]: west + t.a * (np.arange(width) + 0.5)}


def _longitude(west: float) -> float:
    """Longitudes of 180..360 (a 0..360 convention) -> -180..0."""
    return west - 360.0 if west >= 180.0 else west


def _transform_from_centres(ys: np.ndarray, xs: np.ndarray):
    """(transform of a north-up, west-first grid, whether ``ys`` run north to south, whether ``xs`` run west to east).

    From regular cell centres; (None, True, True) when either axis is not regular: each step
    within 5 % of the mean step, so that a Mercator-like axis (topobathy's latitudes vary by
    4 %) gets its mean step.
    """
    from affine import Affine

    if len(ys) < 2 or len(xs) < 2:
        return None, True, True
    dys, dxs = np.diff(ys), np.diff(xs)
    if not (_regular(dys) and _regular(dxs)):
        return None, True, True
    dx, dy = float(dxs.mean()), float(dys.mean())
    north = float(ys.max()) + abs(dy) / 2
    west = float(xs.min()) - abs(dx) / 2
    return Affine.translation(west, north) @ Affine.scale(abs(dx), -abs(dy)), dy < 0, dx > 0


def _regular(steps: np.ndarray) -> bool:
    mean = steps.mean()
    return mean != 0 and bool(np.all(np.abs(steps - mean) <= 0.05 * abs(mean)))


# CF conventions (section 4): how a coordinate says which axis it is, strongest evidence first.
CF_STANDARD_NAMES = {
    "X": ("longitude", "projection_x_coordinate", "grid_longitude", "projection_x_angular_coordinate"),
    "Y": ("latitude", "projection_y_coordinate", "grid_latitude", "projection_y_angular_coordinate"),
}
CF_UNITS = {
    "X": ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"),
    "Y": ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"),
}
AXIS_NAMES = {
    "X": ("x", "lon", "long", "longitude", "easting", "rlon", "xc"),
    "Y": ("y", "lat", "latitude", "northing", "rlat", "yc"),
}
# Coordinate units that give a cell size in metres without a CRS (udunits spellings).
LENGTH_UNITS = {"m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0, "km": 1000.0}
LENGTH_UNITS |= {"kilometer": 1000.0, "kilometers": 1000.0, "kilometre": 1000.0, "kilometres": 1000.0}


def open_netcdf(path: Path, decode_times: bool = True):
    """The xarray Dataset of a NetCDF file (``_FillValue``, ``missing_value`` and the packing applied, read
    lazily); a UserError names a file that netCDF4 cannot read."""
    import xarray as xr

    try:
        return xr.open_dataset(path, engine="netcdf4", mask_and_scale=True, decode_times=decode_times)
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"{path}: not a readable NetCDF file ({str(err).splitlines()[0]}); check the file") from None


def _read_netcdf(path: Path, variable: str | None) -> Raster:
    with open_netcdf(path) as dataset:
        grids = [name for name, v in dataset.data_vars.items() if sum(n > 1 for n in v.shape) >= 2]
        if variable is None:
            if len(grids) != 1:
                listed = ", ".join(grids) or "none"
                small = [f"{n} is {'x'.join(map(str, v.shape))}" for n, v in dataset.data_vars.items() if v.ndim >= 2]
                if not grids and small:
                    raise UserError(f"{path}: no grid of at least 2 x 2 cells ({', '.join(small)}); give a larger grid")
                raise UserError(f"{path}: {len(grids)} gridded variables ({listed}); give --variable NAME")
            variable = grids[0]
        if variable not in dataset.data_vars:
            raise UserError(f"{path}: no variable {variable!r}; give --variable one of {', '.join(grids)}")
        data = dataset[variable]
        extra = {d: n for d, n in zip(data.dims, data.shape, strict=True) if n > 1}
        if len(extra) < 2:
            shape = "x".join(map(str, data.shape))
            raise UserError(f"{path}: {variable} is {shape}; the suite reads grids of at least 2 x 2 cells")
        if len(extra) > 2:
            raise UserError(
                f"{path}: {variable} has dimensions {dict(zip(data.dims, data.shape, strict=True))}; only 2-D grids "
                "(other dimensions of size 1) and stacks along a time dimension are read: extract one slice, "
                "e.g. with ncks or xarray .isel"
            )
        check_numeric(path, variable, data.dtype)
        data = data.squeeze()
        y_dim, x_dim = netcdf_axes(path, dataset, variable, data.dims)
        data = data.transpose(y_dim, x_dim)  # CF allows any order; rows are y here
        values = np.asarray(data.values, dtype=np.float32)
        attrs, encoding = dict(data.attrs), dict(data.encoding)
        mask_outside_valid_range(values, attrs, encoding)
        grid = netcdf_grid(path, dataset, variable, y_dim, x_dim)
        history = dataset.attrs.get("history", "")
        history = history if isinstance(history, str) else ""
    raster = Raster(path, grid.orient(values), grid.transform, grid.crs, units=attrs.get("units") or "m")
    raster.nodata = scalar(encoding.get("_FillValue", encoding.get("missing_value")))
    raster.meta = {"variable": variable, "dims": (y_dim, x_dim), "attrs": plain_attrs(attrs), "history": history}
    if not grid.north_up:
        raster.meta["south_up"] = True
    raster.cell_unknown = grid.cell_unknown
    return raster


def check_numeric(path: Path, variable: str, dtype) -> None:
    """A UserError unless a variable holds real numbers."""
    real = np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)
    if not (real or np.issubdtype(dtype, np.bool_)):
        raise UserError(f"{path}: {variable} holds {dtype} values; give a variable of numbers")


@dataclass
class NetcdfGrid:
    """How the y and x dimensions of a NetCDF variable place its cells (``netcdf_grid``).

    ``transform`` (of the north-up, west-first grid) and ``crs`` as in Raster, None when unknown;
    ``north_up`` / ``west_first``: whether the file's rows run north to south and its columns west
    to east (``orient`` turns its (..., y, x) values so that they do); ``cell_unknown`` as in Raster;
    ``curvilinear``: the file holds 2-D latitude/longitude instead of 1-D coordinates.
    """

    y_dim: str
    x_dim: str
    transform: object = None
    crs: object = None
    north_up: bool = True
    west_first: bool = True
    cell_unknown: str = ""
    curvilinear: bool = False

    def orient(self, values: np.ndarray) -> np.ndarray:
        """Values (..., y, x) in the file's order -> rows north to south, columns west to east."""
        if not self.west_first:
            values = values[..., ::-1]
        if not self.north_up:
            values = values[..., ::-1, :]
        return np.ascontiguousarray(values)


def netcdf_grid(path: Path, dataset, variable: str, y_dim: str, x_dim: str) -> NetcdfGrid:
    """The georeferencing of ``variable``'s ``y_dim`` x ``x_dim`` cells by CF (see the module doc).

    Regular 1-D coordinates give the transform (longitudes unwrapped across 0/360, lengths in km
    converted to metres); irregular or unsorted ones are a UserError; missing ones leave the
    transform None and say why in ``cell_unknown``.
    """
    ys, xs = (_coordinate(path, dataset, dim) for dim in (y_dim, x_dim))
    crs = _netcdf_crs(dataset, dataset[variable].attrs, y_dim, x_dim)
    grid = NetcdfGrid(y_dim, x_dim, crs=crs)
    if ys is None or xs is None:
        grid.cell_unknown = f"{variable} has no 1-D coordinates along {y_dim if ys is None else x_dim}"
        if any(v.ndim == 2 and cf_axis(dataset, n) in ("X", "Y") for n, v in dataset.coords.items()):
            grid.curvilinear = True
            grid.cell_unknown += " (its 2-D latitude/longitude make a curvilinear grid, which no transform describes)"
        return grid
    lengths = [LENGTH_UNITS.get(_units(dataset, dim)) for dim in (y_dim, x_dim)]
    if crs is not None and crs.is_geographic:
        if np.abs(ys).max() > 90:
            raise UserError(f"{path}: latitudes {ys.min():g} to {ys.max():g} go beyond +-90; fix {y_dim}")
        xs = np.unwrap(xs, period=360.0)  # a grid across 0/360 (or 180/-180) reads as one run of longitudes
        if xs.max() > 360.0:
            xs = xs - 360.0  # 359.9 .. 360.1 -> -0.1 .. 0.1
    elif crs is None:
        if None in lengths:
            grid.cell_unknown = (
                f"its coordinates {y_dim}, {x_dim} have no length unit (units {_units(dataset, y_dim)!r}, "
                f"{_units(dataset, x_dim)!r}) and no CRS"
            )
        else:
            ys, xs = ys * lengths[0], xs * lengths[1]  # the writer labels coordinates in metres
    transform, north_up, west_first = _transform_from_centres(ys, xs)
    if transform is None:
        raise UserError(
            f"{path}: the coordinates {y_dim}, {x_dim} of {variable} are not evenly spaced; the suite reads "
            "regular grids: regrid it first (e.g. xarray .interp or cdo remapbil)"
        )
    grid.transform, grid.north_up, grid.west_first = transform, north_up, west_first
    return grid


def mask_outside_valid_range(values: np.ndarray, attrs: dict, encoding: dict) -> None:
    """NaN where a value lies outside the variable's ``valid_range`` / ``valid_min`` / ``valid_max`` (CF 2.5.1).

    xarray applies ``_FillValue`` and the packing but not these; they are in the stored (packed) units.
    """
    low, high = np.ravel(attrs["valid_range"])[:2] if "valid_range" in attrs else (None, None)
    low, high = attrs.get("valid_min", low), attrs.get("valid_max", high)
    scale, offset = float(encoding.get("scale_factor", 1.0)), float(encoding.get("add_offset", 0.0))
    with np.errstate(invalid="ignore"):
        if low is not None:
            values[values < np.float32(float(low) * scale + offset)] = np.nan
        if high is not None:
            values[values > np.float32(float(high) * scale + offset)] = np.nan


def _units(dataset, dim: str) -> str:
    """The lower-case ``units`` of the coordinate variable of ``dim``, "" for none."""
    coordinate = dataset.variables.get(dim)
    return str(coordinate.attrs.get("units", "")).strip().lower() if coordinate is not None else ""


def cf_axis(dataset, dim: str) -> str:
    """ "X", "Y", another CF axis ("T", "Z") or "" for a dimension: its coordinate's ``axis``, ``standard_name``,
    ``units``, then its name."""
    coordinate = dataset.variables.get(dim)
    attrs = coordinate.attrs if coordinate is not None else {}
    axis = str(attrs.get("axis", "")).strip().upper()
    if axis:
        return axis
    for key, table in (("standard_name", CF_STANDARD_NAMES), ("units", CF_UNITS)):
        value = str(attrs.get(key, "")).strip().lower()
        found = next((kind for kind, names in table.items() if value in names), None)
        if found:
            return found
    return next((kind for kind, names in AXIS_NAMES.items() if dim.lower() in names), "")


def netcdf_axes(path: Path, dataset, variable: str, dims) -> tuple[str, str]:
    """(y dimension, x dimension) of a 2-D variable by CF; the last two dimensions (CF's Y, X order) when unsaid."""
    kinds = {dim: cf_axis(dataset, dim) for dim in dims}
    ys = [d for d in dims if kinds[d] == "Y"]
    xs = [d for d in dims if kinds[d] == "X"]
    if len(ys) > 1 or len(xs) > 1 or any(kinds[d] not in ("X", "Y", "") for d in dims):
        said = ", ".join(f"{d}: {kinds[d] or '?'}" for d in dims)
        raise UserError(
            f"{path}: cannot tell the x and y axes of {variable} ({said}); give its coordinates CF axis attributes"
        )
    if ys and not xs:
        xs = [d for d in dims if d != ys[0]]
    if xs and not ys:
        ys = [d for d in dims if d != xs[0]]
    if not ys:
        return dims[-2], dims[-1]
    return ys[0], xs[0]


def _coordinate(path: Path, dataset, dim: str) -> np.ndarray | None:
    """The 1-D coordinate of ``dim`` as float64, None when it has none."""
    if dim not in dataset.coords or dataset[dim].ndim != 1:
        return None
    values = dataset[dim].values
    if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
        raise UserError(f"{path}: coordinate {dim} holds {values.dtype} values or gaps; give finite numbers")
    return np.asarray(values, np.float64)


def scalar(value) -> float | None:
    if value is None:
        return None
    value = np.asarray(value).ravel()
    return float(value[0]) if value.size else None


def plain_attrs(attrs: dict) -> dict:
    """Attributes worth copying to an output variable (not the packing ones the writer sets itself)."""
    skip = {"_FillValue", "missing_value", "scale_factor", "add_offset", "valid_range", "valid_min", "valid_max"}
    return {k: v for k, v in attrs.items() if k not in skip and isinstance(v, str | int | float)}


def _netcdf_crs(dataset, attrs: dict, y_dim: str, x_dim: str):
    """The CRS of ``grid_mapping`` (its WKT or EPSG code; ``latitude_longitude``: WGS84), else WGS84 for
    latitude/longitude axes, else None."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    mapping = attrs.get("grid_mapping")
    if mapping and mapping in dataset.variables:
        grid = dataset[mapping].attrs
        for key in ("crs_wkt", "spatial_ref"):
            if grid.get(key):
                try:
                    return CRS.from_wkt(grid[key])
                except CRSError:
                    pass
        if grid.get("epsg_code"):
            return CRS.from_string(str(grid["epsg_code"]))
        if grid.get("grid_mapping_name") == "latitude_longitude":
            return CRS.from_epsg(4326)

    def geographic(dim: str, kind: str) -> bool:
        coordinate = dataset.variables.get(dim)
        attrs = coordinate.attrs if coordinate is not None else {}
        standard = str(attrs.get("standard_name", "")).strip().lower()
        units = _units(dataset, dim)
        if units in CF_UNITS[kind] or standard == ("longitude" if kind == "X" else "latitude"):
            return True
        names = ("lon", "long", "longitude") if kind == "X" else ("lat", "latitude")
        return not standard and units in ("", "degree", "degrees") and dim.lower() in names

    return CRS.from_epsg(4326) if geographic(y_dim, "Y") and geographic(x_dim, "X") else None


# ---- 2. Nodata -----------------------------------------------------------------------


def fill_nodata(values: np.ndarray) -> np.ndarray:
    """float32 2-D with NaN -> each NaN cell takes the value of the nearest valid cell (a copy).

    Where a model or an interpolation needs numbers in every cell: nearest-cell values never
    pull the valid cells beside nodata towards a fill value such as -9999. All-NaN input is
    a ValueError (there is nothing to fill from).
    """
    from scipy import ndimage

    invalid = ~np.isfinite(values)
    if not invalid.any():
        return np.array(values, dtype=np.float32)
    if invalid.all():
        raise ValueError("fill_nodata: every cell is nodata")
    indices = ndimage.distance_transform_edt(invalid, return_distances=False, return_indices=True)
    return np.asarray(values, dtype=np.float32)[tuple(indices)]


def warn_suspected_nodata(raster: Raster) -> None:
    """One warning line when a file that declares no nodata holds a sentinel such as -9999."""
    value = raster.suspected_nodata
    if value is not None:
        count = int(np.count_nonzero(raster.values == np.float32(value)))
        print(
            f"warning: {raster.path}: declares no nodata but {count} cells hold {value:g}, which are read as heights; "
            f"give --nodata {value:.9g} if they are missing cells",
            file=sys.stderr,
        )


# ---- 3. Writing ------------------------------------------------------------------------


def output_nodata(raster: Raster) -> float:
    """The nodata value an output of ``raster`` carries: the input's, else NaN."""
    return float(raster.nodata) if raster.nodata is not None else float("nan")


def write_raster(path, values: np.ndarray, like: Raster, scale: int = 1, provenance: Provenance | None = None) -> Path:
    """Write float32 ``values`` (NaN = nodata) as ``path`` in the format of its suffix, georeferenced as ``like``.

    ``scale``: the cell size of ``like`` divided by it (an enhanced raster); ``provenance``: as RasterWriter.
    """
    height, width = values.shape
    with RasterWriter(path, like, height, width, scale, provenance) as writer:
        writer.write(values, 0)
    return Path(path)


class RasterWriter:
    """Writes a float32 raster of ``height`` x ``width`` a band of rows at a time, atomically.

    ``write(rows, first_row)`` takes float32 rows with NaN for nodata. The file appears
    under its name only when the ``with`` block ends without an exception. GeoTIFF
    (tiled, deflate-compressed, BigTIFF when needed) streams to disk; ``.asc`` is copied
    from such a GeoTIFF by GDAL's AAIGrid driver (it has no streaming writer); ``.npy`` is
    a memory map; ``.npz`` and ``.nc`` are written with the values of the input's variable
    name (``.npz``: with the input's corners or latitude/longitude vectors, in its row order;
    ``.nc``: a CF variable with ``_FillValue``, coordinates and the CRS as ``crs_wkt``, and the
    input's global ``history``).

    ``provenance`` (util.io.provenance, None: none) says the file is a model's output: GeoTIFF
    tags (``TIFFTAG_SOFTWARE``, ``TIFFTAG_IMAGEDESCRIPTION``, the domain ``PROVENANCE``), NetCDF
    global attributes (a line appended to ``history``, ``source``, ``comment``, ``provenance``),
    an ``.npz`` entry ``provenance``; an ESRI ASCII grid and a ``.npy`` have no place for it.
    """

    def __init__(
        self, path, like: Raster, height: int, width: int, scale: int = 1, provenance: Provenance | None = None
    ):
        self.path, self.like, self.provenance = Path(path), like, provenance
        self.shape = (height, width)
        self.nodata = output_nodata(like)
        self.transform = None
        if like.transform is not None:
            from affine import Affine

            self.transform = like.transform @ Affine.scale(1 / scale)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in RASTER_SUFFIXES:
            raise UserError(f"{self.path}: cannot write this format; give one of {', '.join(RASTER_SUFFIXES)}")

    def __enter__(self):
        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        try:
            self._open()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def _open(self):
        if self.suffix in (".tif", ".tiff", ".asc"):
            import warnings

            import rasterio

            if self.transform is None:  # a grid without georeferencing (.npy in) is written as it is
                warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)

            target = self.tmp if self.suffix != ".asc" else self.tmp.with_name(self.tmp.name + ".tif")
            self._gtiff = target
            height, width = self.shape
            self._dst = rasterio.open(
                target,
                "w",
                driver="GTiff",
                height=height,
                width=width,
                count=1,
                dtype="float32",
                crs=self.like.crs,
                transform=self.transform,
                nodata=self.nodata,
                tiled=True,
                blockxsize=256,
                blockysize=256,
                compress="deflate",
                predictor=3,
                BIGTIFF="IF_SAFER",
            )
            if self.like.units:
                self._dst.units = (self.like.units,)
            if self.provenance is not None and self.suffix != ".asc":  # an ASCII grid has no place for tags
                self._dst.update_tags(
                    TIFFTAG_SOFTWARE=self.provenance.software, TIFFTAG_IMAGEDESCRIPTION=self.provenance.summary()
                )
                self._dst.update_tags(ns="PROVENANCE", **self.provenance.fields())
        else:
            self._array = np.lib.format.open_memmap(
                self.tmp.with_name(self.tmp.name + ".npy") if self.suffix != ".npy" else self.tmp,
                mode="w+",
                dtype=np.float32,
                shape=self.shape,
            )

    def write(self, rows: np.ndarray, first_row: int) -> None:
        rows = np.asarray(rows, dtype=np.float32)
        if not math.isnan(self.nodata):
            rows = np.where(np.isfinite(rows), rows, np.float32(self.nodata))
        if hasattr(self, "_dst"):
            from rasterio.windows import Window

            self._dst.write(rows, 1, window=Window(0, first_row, rows.shape[1], rows.shape[0]))
        else:
            self._array[first_row : first_row + len(rows)] = rows

    def __exit__(self, kind, error, trace):
        try:
            if kind is None:
                self._finish()
        except BaseException:
            kind, error, trace = sys.exc_info()  # a failed finish must not rename the partial file into place
            raise
        finally:
            self._close()
            self._atomic.__exit__(kind, error, trace)
        return False

    def _close(self):
        if hasattr(self, "_dst") and not self._dst.closed:
            self._dst.close()
        if self.suffix == ".asc":
            self._gtiff.unlink(missing_ok=True)
        if hasattr(self, "_array"):
            del self._array
            if self.suffix != ".npy":
                self.tmp.with_name(self.tmp.name + ".npy").unlink(missing_ok=True)

    def _finish(self):
        if hasattr(self, "_dst"):
            self._dst.close()
            if self.suffix == ".asc":
                from rasterio.shutil import copy

                copy(self._gtiff, self.tmp, driver="AAIGrid")
                self.tmp.with_suffix(".prj").unlink(missing_ok=True)
                self.tmp.with_name(self.tmp.name + ".aux.xml").unlink(missing_ok=True)
                self._write_prj()
            return
        self._array.flush()
        if self.suffix == ".npz":
            south_up = self.like.meta.get("south_up", False)
            values = np.asarray(self._array)
            arrays = {self.like.meta.get("variable", "values"): values[::-1] if south_up else values}
            layout = self.like.meta.get("npz")
            if layout and self.transform is not None:
                arrays.update(_npz_coordinates(layout, self.transform, self.shape, south_up))
            if self.provenance is not None:  # a 0-d string, which the reader passes over; a grid of that name wins
                arrays.setdefault("provenance", np.array(self.provenance.to_json()))
            with open(self.tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        elif self.suffix == ".nc":
            self._write_netcdf()

    def _write_prj(self):
        """The CRS of an ASCII grid goes in a .prj beside it, as GDAL reads it (only when the input had one).

        The .prj is the grid's sidecar, replaced with it: a stale one left beside a grid without a
        CRS would give the new grid the old file's CRS.
        """
        prj = self.path.with_suffix(".prj")
        if self.like.crs is None:
            prj.unlink(missing_ok=True)
            return
        with atomic_path(prj) as tmp:
            tmp.write_text(self.like.crs.to_wkt())

    def _write_netcdf(self):
        import netCDF4

        like, (height, width) = self.like, self.shape
        y_dim, x_dim = like.meta.get("dims", ("y", "x"))
        variable = like.meta.get("variable", "values")
        south_up = like.meta.get("south_up", False)
        values = np.asarray(self._array)
        if south_up:
            values = values[::-1]
        fill = None if math.isnan(self.nodata) else np.float32(self.nodata)
        with netCDF4.Dataset(self.tmp, "w", format="NETCDF4") as nc:
            nc.setncatts({"Conventions": "CF-1.8", **netcdf_globals(like.meta.get("history", ""), self.provenance)})
            nc.createDimension(y_dim, height)
            nc.createDimension(x_dim, width)
            if self.transform is not None:
                t = self.transform
                ys = t.f + t.e * (np.arange(height) + 0.5)
                xs = t.c + t.a * (np.arange(width) + 0.5)
                geographic = like.crs is not None and like.crs.is_geographic
                for dim, coords, units in (
                    (y_dim, ys[::-1] if south_up else ys, "degrees_north" if geographic else "m"),
                    (x_dim, xs, "degrees_east" if geographic else "m"),
                ):
                    var = nc.createVariable(dim, "f8", (dim,))
                    var[:] = coords
                    var.units = units
            out = nc.createVariable(variable, "f4", (y_dim, x_dim), zlib=True, fill_value=fill)
            out.set_auto_maskandscale(False)
            for key, value in like.meta.get("attrs", {}).items():
                if key not in ("grid_mapping",):
                    out.setncattr(key, value)
            out.units = like.units
            if like.crs is not None:
                crs = nc.createVariable("crs", "i4")
                crs.crs_wkt = like.crs.to_wkt()
                crs.spatial_ref = like.crs.to_wkt()
                out.grid_mapping = "crs"
            out[:] = values if fill is not None else np.where(np.isfinite(values), values, np.float32(np.nan))


def netcdf_globals(history: str, provenance: Provenance | None) -> dict[str, str]:
    """Global attributes of an output NetCDF: the input's ``history``, and given ``provenance`` a line appended
    to it (CF: a timestamp first), ``source`` (the model), ``comment`` and ``provenance`` (the fields as JSON)."""
    lines = [history.rstrip("\n")] if history else []
    attrs = {}
    if provenance is not None:
        lines.append(provenance.history_line())
        attrs = {
            "source": f"{provenance.model_text}, {provenance.software}",
            "comment": provenance.summary(),
            "provenance": provenance.to_json(),
        }
    return ({"history": "\n".join(lines)} if lines else {}) | attrs
