"""Rasters in physical units (DEMs, heat maps, any 2-D grid): reading, nodata, cell sizes, writing.

One reader for every format the suite takes, ``read_raster(path)`` -> ``Raster``:

- GeoTIFF / Cloud-Optimized GeoTIFF and ESRI ASCII grids (``.asc``) through rasterio
  (its wheels bundle GDAL): one band (``band`` picks one of several), nodata, CRS
  (EPSG or any WKT, e.g. a lunar or Mars geographic system) and affine transform;
- NumPy ``.npy`` (a 2-D array, no georeferencing) and ``.npz``: the first 2-D array, or
  ``variable``; the layouts of matplotlib's sample DEMs (``elevation`` with ``xmin``,
  ``xmax``, ``ymin``, ``ymax``, ``dx``, ``dy`` in degrees; ``topo`` with ``latitude``
  and ``longitude`` vectors) are georeferenced on WGS84;
- one variable of a CF NetCDF file through xarray (``_FillValue``, ``scale_factor`` and
  ``add_offset`` applied; regular 1-D coordinates give the transform; ``grid_mapping``'s
  ``crs_wkt`` / ``spatial_ref``, or latitude/longitude axes, the CRS).

``Raster.values`` is float32 (H, W), row 0 the northern (top) row, NaN where a cell is
nodata: equal to the file's nodata value, to ``nodata`` given by the user, masked, or not
finite. Nodata is never data: callers fill it (``fill_nodata``) only where a model needs
numbers, and mask it everywhere else.

Writing keeps the input's format and georeferencing (``write_raster``, and
``RasterWriter`` for outputs written a band of rows at a time): float32, the same CRS, the
transform's cell size divided by the scale, the input's nodata value (NaN where it had
none and a cell is nodata).
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from util.files import UserError, atomic_path

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
    geographic cells without a .prj); ``meta``: what a writer of the same format needs.
    """

    path: Path
    values: np.ndarray
    transform: object = None
    crs: object = None
    nodata: float | None = None
    units: str = "m"
    degrees: bool = False
    meta: dict = field(default_factory=dict)

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
        away from the equator. No transform: 1 x 1.
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
        values[values == np.float32(nodata)] = np.nan
        if raster.nodata is None:
            raster.nodata = float(nodata)
    values[~np.isfinite(values)] = np.nan
    return raster


def _read_gdal(path: Path, band: int | None) -> Raster:
    import warnings

    import rasterio

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
            data = src.read(index, masked=True)
            values = np.ma.filled(data.astype(np.float32), np.nan)
            units = src.units[index - 1] if src.units and src.units[index - 1] else "m"
            transform = None if src.transform.is_identity else src.transform
            crs, nodata = src.crs, src.nodata
            driver = src.driver
    except rasterio.errors.RasterioError as err:
        raise UserError(
            f"{path}: not a readable raster ({_gdal_detail(err)}); check the file or download it again"
        ) from None
    degrees = crs is None and transform is not None and _looks_geographic(transform, values.shape)
    return Raster(path, values, transform, crs, nodata, units, degrees, meta={"driver": driver})


def _gdal_detail(err: Exception) -> str:
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
    except (OSError, ValueError, EOFError) as err:
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
    return Raster(path, array.astype(np.float32), meta=meta)


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
        raster.meta["npz"] = {
            "layout": "corners",
            "ymin_north": scalars["ymin"] > scalars["ymax"],
            "lon360": west >= 180.0,
        }
        return
    lat = next((k for k in ("latitude", "lat") if k in arrays and arrays[k].shape == (height,)), None)
    lon = next((k for k in ("longitude", "lon") if k in arrays and arrays[k].shape == (width,)), None)
    if lat is not None and lon is not None:
        transform, north_up = _transform_from_centres(
            np.asarray(arrays[lat], np.float64), np.asarray(arrays[lon], np.float64)
        )
        if transform is not None:
            if not north_up:
                raster.values = raster.values[::-1].copy()
                raster.meta["south_up"] = True
            raster.transform = Affine.translation(_longitude(transform.c) - transform.c, 0) @ transform
            raster.crs = CRS.from_epsg(4326)
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
    """(transform of a north-up grid, whether ``ys`` already runs north to south) from regular cell centres.

    (None, True) when either axis is not regular: each step within 5 % of the mean step, so that a
    Mercator-like axis (topobathy's latitudes vary by 4 %) gets its mean step.
    """
    from affine import Affine

    if len(ys) < 2 or len(xs) < 2:
        return None, True
    dys, dxs = np.diff(ys), np.diff(xs)
    if not (_regular(dys) and _regular(dxs)):
        return None, True
    dx, dy = float(dxs.mean()), float(dys.mean())
    north_up = dy < 0
    north = float(ys.max()) + abs(dy) / 2
    west = float(xs.min()) - abs(dx) / 2
    return Affine.translation(west, north) @ Affine.scale(abs(dx), -abs(dy)), north_up


def _regular(steps: np.ndarray) -> bool:
    mean = steps.mean()
    return mean != 0 and bool(np.all(np.abs(steps - mean) <= 0.05 * abs(mean)))


def _read_netcdf(path: Path, variable: str | None) -> Raster:
    import xarray as xr

    try:
        dataset = xr.open_dataset(path, engine="netcdf4", mask_and_scale=True)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable NetCDF file ({str(err).splitlines()[0]}); check the file") from None
    with dataset:
        grids = [name for name, v in dataset.data_vars.items() if sum(n > 1 for n in v.shape) >= 2]
        if variable is None:
            if len(grids) != 1:
                listed = ", ".join(grids) or "none"
                raise UserError(f"{path}: {len(grids)} gridded variables ({listed}); give --variable NAME")
            variable = grids[0]
        if variable not in dataset.data_vars:
            raise UserError(f"{path}: no variable {variable!r}; give --variable one of {', '.join(grids)}")
        data = dataset[variable].squeeze(drop=False)
        extra = {d: n for d, n in zip(data.dims, data.shape, strict=True) if n > 1}
        if data.ndim < 2 or len(extra) > 2:
            raise UserError(
                f"{path}: {variable} has dimensions {dict(zip(data.dims, data.shape, strict=True))}; only 2-D grids "
                "(other dimensions of size 1) are read: extract one slice, e.g. with ncks or xarray .isel"
            )
        data = data.squeeze()
        y_dim, x_dim = data.dims[-2], data.dims[-1]
        values = np.asarray(data.values, dtype=np.float32)
        attrs, encoding = dict(data.attrs), dict(data.encoding)
        ys = np.asarray(dataset[y_dim].values, np.float64) if y_dim in dataset.coords else None
        xs = np.asarray(dataset[x_dim].values, np.float64) if x_dim in dataset.coords else None
        crs = _netcdf_crs(dataset, attrs, y_dim, x_dim)
    raster = Raster(path, values, units=attrs.get("units") or "m", crs=crs)
    raster.nodata = _scalar(encoding.get("_FillValue", encoding.get("missing_value")))
    raster.meta = {"variable": variable, "dims": (y_dim, x_dim), "attrs": _plain_attrs(attrs)}
    if ys is not None and xs is not None:
        transform, north_up = _transform_from_centres(ys, xs)
        if transform is not None:
            raster.transform = transform
            if not north_up:
                raster.values = raster.values[::-1].copy()
                raster.meta["south_up"] = True
    return raster


def _scalar(value) -> float | None:
    if value is None:
        return None
    value = np.asarray(value).ravel()
    return float(value[0]) if value.size else None


def _plain_attrs(attrs: dict) -> dict:
    """Attributes worth copying to an output variable (not the packing ones the writer sets itself)."""
    skip = {"_FillValue", "missing_value", "scale_factor", "add_offset", "valid_range", "valid_min", "valid_max"}
    return {k: v for k, v in attrs.items() if k not in skip and isinstance(v, str | int | float)}


def _netcdf_crs(dataset, attrs: dict, y_dim: str, x_dim: str):
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

    def axis_is(dim: str, names: tuple[str, ...], units: str) -> bool:
        declared = str(dataset[dim].attrs.get("units", "")) if dim in dataset.variables else ""
        return dim.lower() in names or declared.startswith(units)

    lat_like = axis_is(y_dim, ("lat", "latitude"), "degrees_north")
    lon_like = axis_is(x_dim, ("lon", "long", "longitude"), "degrees_east")
    return CRS.from_epsg(4326) if lat_like and lon_like else None


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


def write_raster(path, values: np.ndarray, like: Raster, scale: int = 1) -> Path:
    """Write float32 ``values`` (NaN = nodata) as ``path`` in the format of its suffix, georeferenced as ``like``.

    ``scale``: the cell size of ``like`` divided by it (an enhanced raster).
    """
    height, width = values.shape
    with RasterWriter(path, like, height, width, scale) as writer:
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
    ``.nc``: a CF variable with ``_FillValue``, coordinates and the CRS as ``crs_wkt``).
    """

    def __init__(self, path, like: Raster, height: int, width: int, scale: int = 1):
        self.path, self.like = Path(path), like
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
            nc.Conventions = "CF-1.8"
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
