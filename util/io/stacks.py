"""Stacks: a grid in data units at several time steps (climate model output, monthly analyses, forecasts).

``read_stack(path)`` -> ``Stack``: float32 values (T, H, W), NaN for nodata (land in a sea
temperature), rows north to south and columns west to east as ``util.io.rasters.Raster``, the
time coordinate (cftime objects in the file's calendar, with its CF units), the CRS and transform,
and the variable's and the file's attributes. ``open_stack`` reads the same without the values,
and ``iter_steps(stack)`` then reads one step at a time (memory independent of T);
``stack.step(i)`` is one step as a ``Raster``, so every 2-D tool of the suite works on it.

Formats:

- a CF NetCDF variable with a time dimension (xarray and cftime): (time, y, x), or (time, level,
  y, x) with ``level`` the *value* of the level coordinate (850 for 850 hPa; the index where the
  level dimension has no coordinate); dimensions of size 1 are dropped; the y and x axes, their
  order, 0-360 longitudes, descending latitudes, packing (``scale_factor``, ``add_offset``),
  ``_FillValue`` / ``missing_value`` and ``valid_range`` as ``read_raster`` reads one grid (the
  same helpers); times decoded by cftime in any CF calendar (``360_day``, ``noleap`` ...), as
  xarray's ``use_cftime=True`` does, and the numbers kept with their units;
- GRIB 1 and 2 through rasterio's GDAL GRIB driver: one band per message, the variable by
  ``GRIB_ELEMENT`` (``TMP``), its level by ``GRIB_SHORT_NAME`` (``85000-ISBL``), the step's time by
  ``GRIB_VALID_TIME`` (seconds since 1970, UTC, sorted), units by ``GRIB_UNIT`` in the file's own
  units (``GRIB_NORMALIZE_UNITS=NO``: kelvin stays kelvin). GDAL and not cfgrib because rasterio's
  wheels already bundle it: cfgrib needs the ecCodes C library, which pip cannot install. GDAL
  reads a message on another grid into the first one's shape without an error, only a warning,
  which is caught when that step is read (a UserError: steps of different shapes);
- a multi-band GeoTIFF, one band per step: times from each band's ``NETCDF_DIM_time`` (what
  ``gdal_translate`` writes from a NetCDF file, with ``time#units`` and ``time#calendar``),
  ``GRIB_VALID_TIME``, or an ISO date in a ``TIME`` / ``DATE`` / ``valid_time`` tag or in the band's
  description; without them ``times`` is None.

``is_stack(path, variable)`` decides which files are stacks: a NetCDF variable (or, without
``variable``, any gridded variable) with a time dimension beyond y and x, of one step or more;
every GRIB file (its output is NetCDF, which keeps the valid times); a GeoTIFF of two or more
bands that each carry a time as above. A multi-band GeoTIFF without times is a stack only when
asked (``read_stack`` on it, ``enhance.py --steps``); otherwise ``--band`` picks one band.

``steps`` selects steps by dates ``"A:B"`` (``YYYY-MM[-DD[Thh:mm]]`` in the file's calendar, B
excluded, either end left out; ``steps_by_date``) or by indices: a Python slice or ``"A:B"``
(0-based, B excluded, either end may be left out, negative counts from the end; ``"A"`` is one
step).

``StackWriter`` writes a CF NetCDF step by step, atomically: the time coordinate with its units,
calendar and bounds, 1-D y/x (latitude/longitude) coordinates at the new spacing with their
bounds (``<dim>_bnds``), the variable's units, standard_name, long_name, cell_methods and
grid_mapping (its variable copied), ``_FillValue``, and the input's global attributes with a
provenance line appended to ``history`` (util.io.provenance, as RasterWriter).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from util.io.files import UserError, atomic_path
from util.io.provenance import Provenance
from util.io.rasters import (
    LENGTH_UNITS,
    NetcdfGrid,
    Raster,
    cf_axis,
    check_numeric,
    gdal_detail,
    mask_outside_valid_range,
    netcdf_axes,
    netcdf_globals,
    netcdf_grid,
    open_netcdf,
    plain_attrs,
    unpacked,
)

NETCDF_SUFFIXES = (".nc",)
GRIB_SUFFIXES = (".grib", ".grib2", ".grb", ".grb2")
TIFF_SUFFIXES = (".tif", ".tiff")
STACK_SUFFIXES = NETCDF_SUFFIXES + GRIB_SUFFIXES + TIFF_SUFFIXES
TIME_NAMES = ("time", "t", "valid_time", "times")
TIME_TAGS = ("TIME", "DATE", "time", "date", "valid_time", "VALID_TIME")
EPOCH = "seconds since 1970-01-01 00:00:00"
CHUNK = 256  # cells of a side of the written variable's chunks
GDAL_TAGS = ("AREA_OR_POINT", "NETCDF_DIM_EXTRA", "NC_GLOBAL#Conventions")  # GDAL's own, not the data's
GRIB_UNITS = {"C": "degC", "-": "1", "%": "%"}  # GRIB_UNIT spellings that mean something else to udunits


@dataclass
class Stack:
    """A grid at T time steps (see the module doc).

    ``values``: float32 (T, H, W), NaN = nodata, rows north to south, columns west to east;
    None for a stack opened without its values (``open_stack``: ``step`` and ``iter_steps`` read
    from the file). ``times``: cftime objects (T,) in ``calendar``, or None when the file has no
    time coordinate; ``time_units``: CF units of the numbers (``"hours since 1970-01-01"``) or None;
    ``transform``, ``crs``: as Raster; ``units`` of the values; ``name``: the variable;
    ``attrs``: the variable's attributes worth keeping; ``globals``: the file's global attributes;
    ``lats`` / ``lons``: 1-D cell centres (north to south, west to east) of a geographic grid,
    else None; ``meta``: what the writer and the step reader need.
    """

    values: np.ndarray | None
    times: np.ndarray | None = None
    calendar: str = "standard"
    time_units: str | None = None
    transform: object = None
    crs: object = None
    units: str = ""
    name: str = "values"
    attrs: dict = field(default_factory=dict)
    globals: dict = field(default_factory=dict)
    lats: np.ndarray | None = None
    lons: np.ndarray | None = None
    path: Path | None = None
    nodata: float | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.meta["steps"]) if self.values is None else len(self.values)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W)."""
        return (len(self), *self.meta["grid_shape"])

    def step(self, i: int) -> Raster:
        """Step ``i`` (0 to len - 1 of the selected steps) as a Raster, read from the file if not loaded."""
        if self.values is not None:
            return self._raster(self.values[i], i)
        with _step_reader(self) as read:
            return self._raster(read(i), i)

    def _raster(self, values: np.ndarray, i: int) -> Raster:
        meta = {
            "variable": self.name,
            "dims": self.meta.get("dims", ("y", "x")),
            "attrs": dict(self.attrs),
            "history": str(self.globals.get("history", "")),
            "south_up": self.meta.get("south_up", False),
            "time": None if self.times is None else self.times[i],
        }
        raster = Raster(self.path, values, self.transform, self.crs, self.nodata, self.units or "m", meta=meta)
        if self.transform is None:
            raster.cell_unknown = self.meta.get("cell_unknown") or "the stack has no georeferencing"
        return raster


# ---- 1. Which files are stacks -----------------------------------------------------------------------------------


def is_stack(path, variable: str | None = None) -> bool:
    """True when ``path`` is a stack by the rule of the module doc (reads headers only, never raises)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in GRIB_SUFFIXES:
        return True
    try:
        if suffix in NETCDF_SUFFIXES:
            with open_netcdf(path, decode_times=False) as dataset:
                names = [variable] if variable else list(dataset.data_vars)
                return any(name in dataset.data_vars and _time_dim(dataset, dataset[name]) for name in names)
        if suffix in TIFF_SUFFIXES:
            return _tiff_has_times(path)
    except (UserError, OSError, ValueError, RuntimeError):
        return False
    return False


def _time_dim(dataset, data) -> str | None:
    """The time dimension of a variable with two more dimensions of more than one cell (y and x), else None."""
    if data.ndim < 3:
        return None
    for dim in data.dims:
        if sum(n > 1 for d, n in zip(data.dims, data.shape, strict=True) if d != dim) < 2:
            continue  # a time series at one point, or along one line
        variable = dataset.variables.get(dim)
        attrs = variable.attrs if variable is not None else {}
        units = str(attrs.get("units", ""))
        if (
            cf_axis(dataset, dim) == "T"
            or str(attrs.get("standard_name", "")).lower() == "time"
            or re.match(r"^\s*\w+\s+since\s+\S", units)
            or dim.lower() in TIME_NAMES
        ):
            return dim
    return None


def _tiff_has_times(path: Path) -> bool:
    with _open_gdal(path) as src:
        return src.count >= 2 and _tiff_times(src) is not None


@contextlib.contextmanager
def _open_gdal(path: Path):
    """rasterio's dataset of a GRIB file or GeoTIFF: GRIB values in their stored units, a TIFF without
    georeferencing opened without rasterio's warning (the stack then says its cells are unknown)."""
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(path) as src:
            yield src


# ---- 2. Reading ----------------------------------------------------------------------------------------------------


def read_stack(path, variable: str | None = None, level=None, steps=None, nodata: float | None = None) -> Stack:
    """The stack of ``path`` with its values (T, H, W) float32 (see the module doc); a UserError names a bad file.

    ``variable``: a NetCDF variable or a GRIB element; ``level``: the level of a 4-D variable (a NetCDF
    coordinate value, a GRIB level as in ``GRIB_SHORT_NAME``); ``steps``: a slice or ``"A:B"`` of step
    indices; ``nodata``: a value to read as nodata besides the file's own.
    """
    stack = open_stack(path, variable, level, steps, nodata)
    values = np.empty(stack.shape, dtype=np.float32)
    with _step_reader(stack) as read:
        for i in range(len(stack)):
            values[i] = read(i)
    if not np.isfinite(values).any():
        raise UserError(f"{stack.path}: every cell of every selected step is nodata; give other --steps or a file")
    stack.values = values
    return stack


def iter_steps(stack: Stack) -> Iterator[Raster]:
    """Each step of ``stack`` as a Raster, in order, read one at a time from its file (or its values)."""
    if stack.values is not None:
        for i in range(len(stack)):
            yield stack.step(i)
        return
    with _step_reader(stack) as read:
        for i in range(len(stack)):
            yield stack._raster(read(i), i)


def open_stack(path, variable: str | None = None, level=None, steps=None, nodata: float | None = None) -> Stack:
    """The stack of ``path`` without its values (``values`` None): coordinates, attributes, the steps chosen."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such stack file")
    suffix = path.suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        stack = _open_netcdf_stack(path, variable, level, steps)
    elif suffix in GRIB_SUFFIXES or suffix in TIFF_SUFFIXES:
        stack = _open_gdal_stack(path, variable, level, steps)
    else:
        raise UserError(f"{path}: not a stack file; give one of {', '.join(STACK_SUFFIXES)}")
    stack.path = path
    if nodata is not None:
        stack.meta["user_nodata"] = float(nodata)
        stack.nodata = float(nodata) if stack.nodata is None else stack.nodata
    if stack.crs is not None and stack.crs.is_geographic and stack.transform is not None:
        t, (height, width) = stack.transform, stack.meta["grid_shape"]
        stack.lats = t.f + t.e * (np.arange(height) + 0.5)
        stack.lons = t.c + t.a * (np.arange(width) + 0.5)
    return stack


def parse_steps(steps, count: int, path) -> np.ndarray:
    """The step indices that ``steps`` (None: all, a slice, an int, ``"A:B"`` or ``"A"``) selects of ``count``."""
    if steps is None:
        return np.arange(count)
    if isinstance(steps, str):
        match = re.fullmatch(r"\s*(-?\d*)\s*(:?)\s*(-?\d*)\s*", steps)
        if not match or (not match.group(2) and not match.group(1)):
            raise UserError(f"--steps {steps}: give step indices A:B (0-based, B excluded), e.g. 0:12 or 100:")
        start = int(match.group(1)) if match.group(1) else None
        stop = int(match.group(3)) if match.group(3) else None
        steps = slice(start, stop) if match.group(2) else start
    if isinstance(steps, int | np.integer):
        if not -count <= steps < count:
            raise UserError(f"{path}: --steps {steps} is outside its {_count(count)}; give 0 to {count - 1}")
        return np.array([steps % count])
    for end in (steps.start, steps.stop):
        if end is not None and not -count <= end <= count:
            raise UserError(f"{path}: --steps {_said(steps)} is outside its {_count(count)}; give A:B within 0:{count}")
    chosen = np.arange(count)[steps]
    if not len(chosen):
        raise UserError(f"{path}: --steps {_said(steps)} selects none of its {_count(count)}; give A:B with A < B")
    return chosen


DATE = r"\d{4}-\d{2}(?:-\d{2}(?:[T ]\d{2}(?::\d{2})?)?)?"  # YYYY-MM[-DD[Thh[:mm]]]


def steps_by_date(steps, all_times, path):
    """``steps`` as given, or for dates ``"A:B"`` (``DATE``, either end left out) the slice of the steps whose
    times lie in [A, B), in the file's own calendar; ``all_times()``: the times of every step, or None when
    the file has no CF time axis."""
    if not isinstance(steps, str) or not re.search(r"\d{4}-\d{2}", steps):
        return steps
    match = re.fullmatch(rf"\s*({DATE})?\s*:\s*({DATE})?\s*", steps)
    if not match:
        raise UserError(
            f"--steps {steps}: give dates A:B as YYYY-MM[-DD[Thh:mm]] (B excluded; e.g. 2052-01:2100-01) "
            "or step indices A:B"
        )
    times = all_times()
    if times is None or not len(times):
        raise UserError(f"{path}: --steps {steps}: its time axis has no CF units to match dates; give step indices")
    keys = [(t.year, t.month, t.day, t.hour, t.minute) for t in times]

    def key(text: str) -> tuple:
        parts = [int(part) for part in re.split(r"[-T: ]", text)]
        return tuple(parts + [1, 0, 0][len(parts) - 2 :])

    start, stop = (bisect_left(keys, key(end)) if end else None for end in match.groups())
    if len(range(len(keys))[slice(start, stop)]) == 0:
        first, last = (str(t)[:16] for t in (times[0], times[-1]))
        raise UserError(f"{path}: --steps {steps} selects none of its {_count(len(keys))} ({first} to {last})")
    return slice(start, stop)


def _count(count: int) -> str:
    return f"{count} step{'' if count == 1 else 's'}"


def _said(steps: slice) -> str:
    return f"{'' if steps.start is None else steps.start}:{'' if steps.stop is None else steps.stop}"


# ---- 2a. NetCDF -----------------------------------------------------------------------------------------------------


def _open_netcdf_stack(path: Path, variable: str | None, level, steps) -> Stack:
    with open_netcdf(path, decode_times=False) as dataset:
        variable = _stack_variable(path, dataset, variable)
        data = dataset[variable]
        check_numeric(path, variable, data.dtype)
        time_dim = _time_dim(dataset, data)
        rest = [d for d, n in zip(data.dims, data.shape, strict=True) if d != time_dim and n > 1]
        level_dim = _level_dim(path, dataset, variable, rest)
        level_index, level_meta = _netcdf_level(path, dataset, variable, level_dim, level)
        y_dim, x_dim = netcdf_axes(path, dataset, variable, [d for d in rest if d != level_dim])
        grid = netcdf_grid(path, dataset, variable, y_dim, x_dim)
        if grid.curvilinear:
            raise UserError(
                f"{path}: {variable} has 2-D latitude/longitude (a curvilinear grid); the suite enhances regular "
                "grids: regrid it first (e.g. cdo remapbil or xESMF)"
            )
        steps = steps_by_date(steps, lambda: _all_netcdf_times(dataset, time_dim), path)
        chosen = parse_steps(steps, dataset.sizes[time_dim], path)
        stack = Stack(None, name=variable, crs=grid.crs, transform=grid.transform)
        _netcdf_times(path, dataset, time_dim, chosen, stack)
        _netcdf_attributes(dataset, data, stack)
        stack.meta |= {
            "format": "netcdf",
            "steps": chosen,
            "grid_shape": (dataset.sizes[y_dim], dataset.sizes[x_dim]),
            "dims": (y_dim, x_dim),
            "time_dim": time_dim,
            "level_dim": level_dim,
            "level_index": level_index,
            "level": level_meta,
            "grid": grid,
            "south_up": not grid.north_up,
            "cell_unknown": grid.cell_unknown,
            "coordinate_attrs": {d: _coordinate_attrs(dataset, d) for d in (y_dim, x_dim)},
        }
    return stack


def _stack_variable(path: Path, dataset, variable: str | None) -> str:
    """The variable to read: ``variable``, else the one variable with a time dimension beyond y and x."""
    timed = [name for name, data in dataset.data_vars.items() if _time_dim(dataset, data)]
    if variable is None:
        if len(timed) != 1:
            listed = ", ".join(timed) or "none"
            raise UserError(f"{path}: {len(timed)} variables with a time axis ({listed}); give --variable NAME")
        return timed[0]
    if variable not in dataset.data_vars:
        raise UserError(f"{path}: no variable {variable!r}; give --variable one of {', '.join(timed) or 'none'}")
    if variable not in timed:
        raise UserError(f"{path}: {variable} has no time axis beyond y and x; read it as a raster (no --steps)")
    return variable


def _level_dim(path: Path, dataset, variable: str, dims: list[str]) -> str | None:
    """The level dimension among the non-time dimensions of size > 1 (CF axis Z, else the first of three)."""
    if len(dims) == 2:
        return None
    if len(dims) != 3:
        raise UserError(
            f"{path}: {variable} has {len(dims)} dimensions of more than one step besides time ({', '.join(dims)}); "
            "give a variable of (time, y, x) or (time, level, y, x)"
        )
    kinds = {d: cf_axis(dataset, d) for d in dims}
    others = [d for d in dims if kinds[d] not in ("X", "Y")]
    return others[0] if len(others) == 1 else dims[0]  # CF's order is (T, Z, Y, X)


def _netcdf_level(path: Path, dataset, variable: str, level_dim: str | None, level):
    """(index along ``level_dim``, {name, value, attrs} of the level chosen) for ``level``; (None, None) in 3-D."""
    if level_dim is None:
        if level is not None:
            raise UserError(f"{path}: {variable} has no level dimension; drop --level {level}")
        return None, None
    has_coordinate = level_dim in dataset.variables and dataset[level_dim].ndim == 1
    values = np.asarray(dataset[level_dim].values) if has_coordinate else np.arange(dataset.sizes[level_dim])
    listed = ", ".join(f"{v:g}" for v in values[:12]) + (" ..." if len(values) > 12 else "")
    if level is None:
        raise UserError(f"{path}: {variable} has {len(values)} levels along {level_dim} ({listed}); give --level")
    try:
        index = int(np.flatnonzero(np.isclose(values.astype(np.float64), float(level), rtol=1e-9, atol=1e-9))[0])
    except (IndexError, ValueError):
        raise UserError(f"{path}: --level {level} is not a level of {level_dim}; give one of {listed}") from None
    attrs = plain_attrs(dict(dataset[level_dim].attrs)) if has_coordinate else {}
    return index, {"name": level_dim, "value": float(values[index]), "attrs": attrs} if has_coordinate else None


def _cf_time_coding(coordinate) -> tuple[str, str] | None:
    """``(units, calendar)`` of a CF time coordinate (``<unit> since <date>``), or None when it has none."""
    units = coordinate.attrs.get("units")
    if not units or " since " not in str(units):
        return None
    return str(units), str(coordinate.attrs.get("calendar", "standard"))


def _all_netcdf_times(dataset, time_dim: str):
    """The times of every step of a CF time coordinate (cftime), or None without one that decodes."""
    import cftime

    coding = _cf_time_coding(dataset[time_dim]) if time_dim in dataset.variables else None
    if coding is None:
        return None
    try:
        return cftime.num2date(np.asarray(dataset[time_dim].values), *coding, only_use_cftime_datetimes=True)
    except (ValueError, TypeError):
        return None  # said when the chosen steps' times are decoded (_netcdf_times)


def _netcdf_times(path: Path, dataset, time_dim: str, chosen: np.ndarray, stack: Stack) -> None:
    """Set ``stack``'s times, calendar, units and (in meta) time bounds from the time coordinate."""
    import cftime

    if time_dim not in dataset.variables:
        return
    coordinate = dataset[time_dim]
    numbers = np.asarray(coordinate.values)
    if len(numbers) > 1 and not np.all(np.diff(numbers.astype(np.float64)) > 0):
        bad = int(np.flatnonzero(np.diff(numbers.astype(np.float64)) <= 0)[0]) + 1
        raise UserError(
            f"{path}: {time_dim} is not increasing ({time_dim}[{bad}] = {numbers[bad]} after {numbers[bad - 1]}); "
            f"sort it first (xarray .sortby('{time_dim}'), cdo sorttimestamp)"
        )
    stack.meta["time_attrs"] = plain_attrs({k: v for k, v in coordinate.attrs.items() if k != "bounds"})
    coding = _cf_time_coding(coordinate)
    if coding is None:
        return
    units, calendar = coding
    try:
        times = cftime.num2date(numbers[chosen], units, calendar, only_use_cftime_datetimes=True)
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: cannot decode {time_dim} ({err}); give CF time units and calendar") from None
    stack.times, stack.time_units, stack.calendar = np.asarray(times), str(units), calendar
    bounds = coordinate.attrs.get("bounds")
    if bounds in dataset.variables and dataset[bounds].shape == (len(numbers), 2):
        stack.meta["time_bounds"] = cftime.num2date(
            np.asarray(dataset[bounds].values)[chosen], units, calendar, only_use_cftime_datetimes=True
        )


def _netcdf_attributes(dataset, data, stack: Stack) -> None:
    """The variable's attributes, units, nodata and grid mapping, and the file's global attributes."""
    attrs, encoding = dict(data.attrs), dict(data.encoding)
    stack.attrs = plain_attrs(attrs)
    stack.units = str(attrs.get("units", ""))
    fill = encoding.get("_FillValue", encoding.get("missing_value"))
    stack.nodata = None if fill is None else float(np.ravel(fill)[0])
    stack.globals = {k: v for k, v in dataset.attrs.items() if isinstance(v, str | int | float)}
    stack.meta["packing"] = (attrs, encoding)
    mapping = attrs.get("grid_mapping")
    if mapping and mapping in dataset.variables:
        stack.meta["grid_mapping"] = (mapping, plain_attrs(dict(dataset[mapping].attrs)))


def _coordinate_attrs(dataset, dim: str) -> dict:
    """The attributes of ``dim``'s coordinate to write again; not its units when they are a length (read as
    metres) and never its bounds (written anew)."""
    variable = dataset.variables.get(dim)
    if variable is None:
        return {}
    attrs = plain_attrs({k: v for k, v in variable.attrs.items() if k != "bounds"})
    if str(attrs.get("units", "")).strip().lower() in LENGTH_UNITS:
        del attrs["units"]
    return attrs


def _read_netcdf_step(dataset, stack: Stack, i: int) -> np.ndarray:
    meta = stack.meta
    index = {meta["time_dim"]: int(meta["steps"][i])}
    if meta["level_dim"] is not None:
        index[meta["level_dim"]] = meta["level_index"]
    data = dataset[stack.name].isel(index).squeeze(drop=True).transpose(*meta["dims"])
    values = np.asarray(data.values, dtype=np.float32)
    mask_outside_valid_range(values, *meta["packing"])
    grid: NetcdfGrid = meta["grid"]
    return grid.orient(values)


# ---- 2b. GRIB and multi-band GeoTIFF (GDAL) -------------------------------------------------------------------------


def _open_gdal_stack(path: Path, variable: str | None, level, steps) -> Stack:
    import rasterio

    try:
        with _open_gdal(path) as src:
            grib = path.suffix.lower() in GRIB_SUFFIXES
            bands, times = _grib_bands(path, src, variable, level) if grib else _tiff_bands(path, src, variable, level)
            stack = Stack(None, crs=src.crs, transform=None if src.transform.is_identity else src.transform)
            tags = src.tags(bands[0])
            stack.name = tags.get("GRIB_ELEMENT") if grib else tags.get("NETCDF_VARNAME")
            stack.name = stack.name or "values"
            stack.units = _gdal_units(src, bands[0], tags)
            stack.nodata = src.nodata
            stack.globals = {k: v for k, v in src.tags().items() if k not in GDAL_TAGS and "#" not in k}
            stack.meta["grid_shape"] = src.shape
            geographic = stack.crs is not None and stack.crs.is_geographic
            stack.meta["dims"] = ("lat", "lon") if geographic else ("y", "x")
    except rasterio.errors.RasterioError as err:
        raise UserError(
            f"{path}: not a readable stack ({gdal_detail(err)}); check the file or download it again"
        ) from None
    chosen = parse_steps(steps_by_date(steps, lambda: None if times is None else times[0], path), len(bands), path)
    stack.meta |= {"format": "gdal", "steps": chosen, "bands": [bands[i] for i in chosen]}
    if times is not None:
        stack.times, stack.time_units, stack.calendar = times[0][chosen], times[1], times[2]
    stack.attrs = {"units": stack.units} if stack.units else {}
    if stack.transform is None:
        stack.meta["cell_unknown"] = f"{path.name} has no georeferencing (no transform)"
    return stack


def _grib_bands(path: Path, src, variable: str | None, level):
    """(band numbers of ``variable`` at ``level`` sorted by valid time, (times, units, calendar))."""
    tags = [src.tags(b) for b in range(1, src.count + 1)]
    elements = [t.get("GRIB_ELEMENT", "?") for t in tags]
    names = list(dict.fromkeys(elements))
    if variable is None and len(names) > 1:
        counted = ", ".join(f"{n} ({elements.count(n)} messages)" for n in names)
        raise UserError(f"{path}: holds several variables: {counted}; give --variable one of them")
    variable = variable or names[0]
    if variable not in names:
        raise UserError(
            f"{path}: no variable {variable!r} among its GRIB elements; give --variable one of {', '.join(names)}"
        )
    bands = [b for b, element in enumerate(elements, 1) if element == variable]
    levels = list(dict.fromkeys(tags[b - 1].get("GRIB_SHORT_NAME", "") for b in bands))
    if len(levels) > 1 or level is not None:
        match = [lv for lv in levels if _level_text(level) in (lv, lv.split("-")[0])]
        if not match:
            raise UserError(f"{path}: {variable} is at levels {', '.join(levels)}; give --level one of them")
        bands = [b for b in bands if tags[b - 1].get("GRIB_SHORT_NAME", "") == match[0]]
    seconds = [_epoch_seconds(tags[b - 1].get("GRIB_VALID_TIME", "")) for b in bands]
    if None in seconds:
        return bands, None
    order = np.argsort(seconds, kind="stable")
    bands, seconds = [bands[i] for i in order], np.asarray(seconds, dtype=np.int64)[order]
    if len(seconds) > 1 and np.any(np.diff(seconds) == 0):
        raise UserError(
            f"{path}: two messages of {variable} are valid at the same time (two forecasts or members); "
            "split the file so that each time appears once (e.g. wgrib2 -match or grib_copy)"
        )
    return bands, _epoch_times(seconds)


def _level_text(level) -> str:
    """``--level`` as GRIB_SHORT_NAME writes it: ``85000`` for 85000 or 85000.0, else the text given."""
    try:
        return f"{float(level):.15g}"
    except (TypeError, ValueError):
        return str(level)


def _epoch_seconds(text: str) -> int | None:
    match = re.match(r"\s*(-?\d+)", text)
    return int(match.group(1)) if match else None


def _epoch_times(seconds: np.ndarray):
    import cftime

    times = cftime.num2date(seconds, EPOCH, "standard", only_use_cftime_datetimes=True)
    return np.asarray(times), EPOCH, "standard"


def _tiff_bands(path: Path, src, variable: str | None, level):
    if variable is not None or level is not None:
        raise UserError(f"{path}: --variable and --level apply to NetCDF and GRIB files; drop them")
    return list(range(1, src.count + 1)), _tiff_times(src)


def _tiff_times(src):
    """(times, units, calendar) of a GeoTIFF's bands from their tags or descriptions (module doc), else None."""
    import cftime

    tags = [src.tags(b) for b in range(1, src.count + 1)]
    dataset = src.tags()
    if all("NETCDF_DIM_time" in t for t in tags) and dataset.get("time#units"):
        units, calendar = dataset["time#units"], dataset.get("time#calendar", "standard")
        numbers = np.asarray([float(t["NETCDF_DIM_time"]) for t in tags])
        return np.asarray(cftime.num2date(numbers, units, calendar, only_use_cftime_datetimes=True)), units, calendar
    seconds = [_epoch_seconds(t.get("GRIB_VALID_TIME", "")) for t in tags]
    if None not in seconds:
        return _epoch_times(np.asarray(seconds, dtype=np.int64))
    texts = [next((t[k] for k in TIME_TAGS if t.get(k)), src.descriptions[b] or "") for b, t in enumerate(tags)]
    try:
        dates = [cftime.datetime.strptime(text.strip()[:19].replace("T", " "), _iso_format(text)) for text in texts]
    except (ValueError, TypeError):
        return None
    numbers = cftime.date2num(dates, EPOCH, "standard")
    return _epoch_times(np.asarray(numbers, dtype=np.int64))


def _iso_format(text: str) -> str:
    """The strptime format of an ISO 8601 date or date-time (``2020-01-31``, ``2020-01-31T06:00:00``)."""
    text = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?Z?", text):
        raise ValueError(text)
    return {10: "%Y-%m-%d", 16: "%Y-%m-%d %H:%M"}.get(len(text.rstrip("Z")), "%Y-%m-%d %H:%M:%S")


def _gdal_units(src, band: int, tags: dict) -> str:
    unit = tags.get("GRIB_UNIT", "").strip().strip("[]")
    if unit:
        return GRIB_UNITS.get(unit, unit)
    return src.units[band - 1] if src.units and src.units[band - 1] else ""


def _read_gdal_step(src, stack: Stack, i: int) -> np.ndarray:
    band = stack.meta["bands"][i]
    with _gdal_warnings() as warnings, np.errstate(over="ignore"):
        data = src.read(band, masked=True)
    mismatch = [w for w in warnings if "of GRIB dataset is" in w]
    if mismatch:
        detail = mismatch[0].split(":", 1)[-1].split(".")[0].strip()
        raise UserError(
            f"{stack.path}: time steps of different shapes ({detail}); split the file by grid (e.g. wgrib2 -grid)"
        )
    return unpacked(stack.path, data, src.scales[band - 1], src.offsets[band - 1])


@contextlib.contextmanager
def _gdal_warnings():
    """Collect the warnings GDAL logs through rasterio (``rasterio._err``) while the block runs."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            found.append(record.getMessage())

    logger, handler = logging.getLogger("rasterio._err"), Collect(level=logging.WARNING)
    # Its own level, so that a library raising the root logger's (OpenVINO's converter sets ERROR) hides nothing.
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ---- 2c. Reading one step at a time ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _step_reader(stack: Stack):
    """Yield ``read(i)``: step ``i`` of ``stack`` as float32 (H, W), north-up, NaN = nodata; the file open once."""
    user_nodata = stack.meta.get("user_nodata")

    def finish(values: np.ndarray) -> np.ndarray:
        if user_nodata is not None:
            with np.errstate(over="ignore"):
                values[values == np.float32(user_nodata)] = np.nan
        values[~np.isfinite(values)] = np.nan
        return values

    if stack.meta["format"] == "netcdf":
        with open_netcdf(stack.path, decode_times=False) as dataset:
            yield lambda i: finish(_read_netcdf_step(dataset, stack, i))
        return
    with _open_gdal(stack.path) as src:
        yield lambda i: finish(_read_gdal_step(src, stack, i))


# ---- 3. Writing -------------------------------------------------------------------------------------------------


def write_stack(path, stack: Stack, scale: int = 1, provenance: Provenance | None = None) -> Path:
    """Write ``stack``'s values (T, H, W), float32 with NaN = nodata, as a CF NetCDF file (StackWriter)."""
    if stack.values is None:
        raise ValueError("write_stack: the stack has no values (open_stack); read_stack it, or use StackWriter")
    count, height, width = stack.values.shape
    with StackWriter(path, stack, height, width, scale, provenance) as writer:
        for i in range(count):
            writer.write(stack.values[i], i)
    return Path(path)


class StackWriter:
    """Writes a CF NetCDF stack of ``len(like)`` steps of ``height`` x ``width`` cells, step by step, atomically.

    ``like``: the input stack (times, attributes, georeferencing; its values are not used);
    ``scale``: its cell size divided by it (an enhanced stack). ``write(rows, step, first_row=0)``
    takes float32 rows of one step with NaN for nodata, north to south (written in the input's
    row order). The file appears under its name only when the ``with`` block ends without an
    exception; otherwise the temporary file is removed. ``provenance``: as RasterWriter.
    """

    def __init__(self, path, like: Stack, height: int, width: int, scale: int = 1, provenance=None):
        self.path, self.like, self.provenance = Path(path), like, provenance
        self.shape = (len(like), height, width)
        self.scale = scale
        if self.path.suffix.lower() not in NETCDF_SUFFIXES:
            raise UserError(f"{self.path}: a stack is written as NetCDF; give a .nc name")
        self.fill = float(like.nodata) if like.nodata is not None and math.isfinite(like.nodata) else math.nan

    def __enter__(self):
        self._atomic = atomic_path(self.path)
        self.tmp = self._atomic.__enter__()
        try:
            self._open()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _open(self):
        import netCDF4

        like = self.like
        self._nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        self._nc.set_auto_maskandscale(False)
        kept = {k: v for k, v in like.globals.items() if k not in ("history", "Conventions", "source", "comment")}
        history = str(like.globals.get("history", ""))
        self._nc.setncatts({**kept, "Conventions": "CF-1.8", **netcdf_globals(history, self.provenance)})
        time_dim = like.meta.get("time_dim", "time")
        y_dim, x_dim = like.meta.get("dims", ("y", "x"))
        self._nc.createDimension(time_dim, self.shape[0])
        self._nc.createDimension(y_dim, self.shape[1])
        self._nc.createDimension(x_dim, self.shape[2])
        self._nc.createDimension("bnds", 2)
        _write_time(self._nc, like, time_dim)
        _write_grid(self._nc, like, self.shape[1:], self.scale)
        self._var = _write_variable(self._nc, like, (time_dim, y_dim, x_dim), self.shape, self.fill)

    def write(self, rows: np.ndarray, step: int, first_row: int = 0) -> None:
        """Rows ``first_row`` onwards (north to south) of step ``step``, float32 with NaN = nodata."""
        rows = np.asarray(rows, dtype=np.float32)
        if not math.isnan(self.fill):
            rows = np.where(np.isfinite(rows), rows, np.float32(self.fill))
        if self.like.meta.get("south_up", False):
            height = self.shape[1]
            self._var[step, height - first_row - len(rows) : height - first_row, :] = rows[::-1]
        else:
            self._var[step, first_row : first_row + len(rows), :] = rows

    def __exit__(self, kind, error, trace):
        try:
            if hasattr(self, "_nc") and self._nc.isopen():
                self._nc.close()
        except BaseException:
            kind, error, trace = sys.exc_info()  # a failed close must not rename the partial file into place
            raise
        finally:
            self._atomic.__exit__(kind, error, trace)
        return False


def _write_time(nc, like: Stack, time_dim: str) -> None:
    """The time coordinate: the input's numbers in its units and calendar, with its bounds."""
    import cftime

    if like.times is None or like.time_units is None:
        return
    var = nc.createVariable(time_dim, "f8", (time_dim,))
    var.setncatts({**like.meta.get("time_attrs", {}), "units": like.time_units, "calendar": like.calendar})
    var.setncatts({"standard_name": "time", "axis": "T"})
    var[:] = cftime.date2num(list(like.times), like.time_units, like.calendar)
    bounds = like.meta.get("time_bounds")
    if bounds is not None:
        var.bounds = f"{time_dim}_bnds"
        out = nc.createVariable(f"{time_dim}_bnds", "f8", (time_dim, "bnds"))
        out[:] = cftime.date2num(np.asarray(bounds).tolist(), like.time_units, like.calendar)


def _write_grid(nc, like: Stack, shape: tuple[int, int], scale: int) -> None:
    """1-D y and x coordinates at the output's spacing (in the input's order), each with its bounds."""
    if like.transform is None:
        return
    from affine import Affine

    t = like.transform @ Affine.scale(1 / scale)
    height, width = shape
    geographic = like.crs is not None and like.crs.is_geographic
    y_dim, x_dim = like.meta.get("dims", ("y", "x"))
    attrs = like.meta.get("coordinate_attrs", {})
    edges_y = t.f + t.e * np.arange(height + 1)
    edges_x = t.c + t.a * np.arange(width + 1)
    if like.meta.get("south_up", False):
        edges_y = edges_y[::-1]
    for dim, edges, kind in ((y_dim, edges_y, "Y"), (x_dim, edges_x, "X")):
        said = attrs.get(dim, {})  # a rotated pole's grid_latitude in degrees keeps its units and name
        units = ("degrees_north" if kind == "Y" else "degrees_east") if geographic else said.get("units", "m")
        standard = (
            ("latitude" if kind == "Y" else "longitude") if geographic else f"projection_{kind.lower()}_coordinate"
        )
        var = nc.createVariable(dim, "f8", (dim,))
        var.setncatts({"standard_name": standard, **said, "units": units, "axis": kind})
        var.bounds = f"{dim}_bnds"
        var[:] = (edges[:-1] + edges[1:]) / 2
        bounds = nc.createVariable(f"{dim}_bnds", "f8", (dim, "bnds"))
        bounds[:] = np.stack([edges[:-1], edges[1:]], axis=1)


def _write_variable(nc, like: Stack, dims: tuple[str, str, str], shape, fill: float):
    """The data variable (float32), its attributes, grid mapping and level.

    Chunks of one step and at most CHUNK x CHUNK cells, and a chunk cache that holds a band of
    CHUNK rows across the grid, so that strips of rows are compressed once, not read back.
    """
    chunks = (1, min(shape[1], CHUNK), min(shape[2], CHUNK))
    var = nc.createVariable(
        like.name, "f4", dims, zlib=True, complevel=4, chunksizes=chunks, fill_value=np.float32(fill)
    )
    var.set_var_chunk_cache(size=max(2**26, 2 * CHUNK * shape[2] * 4), nelems=4099)
    attrs = {k: v for k, v in like.attrs.items() if k not in ("grid_mapping", "coordinates")}
    var.setncatts({**attrs, **({"units": like.units} if like.units else {})})
    mapping = like.meta.get("grid_mapping")
    if mapping is not None:
        grid = nc.createVariable(mapping[0], "i4")
        grid.setncatts(mapping[1])
        var.grid_mapping = mapping[0]
    elif like.crs is not None:
        grid = nc.createVariable("crs", "i4")
        grid.crs_wkt = grid.spatial_ref = like.crs.to_wkt()
        var.grid_mapping = "crs"
    level = like.meta.get("level")
    if level is not None:
        coordinate = nc.createVariable(level["name"], "f8")
        coordinate.setncatts(level["attrs"])
        coordinate.assignValue(level["value"])
        var.coordinates = level["name"]
    return var
