"""Copernicus DEM GLO-30 / GLO-90 tiles: Cloud-Optimized GeoTIFFs from the open-data bucket on AWS.

    python3 download.py copernicus --tiles N40_00_W106_00            # one 1x1 degree tile, GLO-30
    python3 download.py copernicus --bbox -106,39,-104,41            # the 4 tiles covering the box
    python3 download.py copernicus --bbox ... --resolution 90        # GLO-90 (3 arc-second cells)

A tile is named by the latitude and longitude of its south-west corner
(``Copernicus_DSM_COG_10_N40_00_W106_00_DEM`` covers 40..41 N, 106..105 W) and lies at
``https://copernicus-dem-30m.s3.amazonaws.com/<tile>/<tile>.tif`` (GLO-90:
``copernicus-dem-90m``, ``Copernicus_DSM_COG_30_...``); ``--url BASE`` reads
``<BASE>/<tile>/<tile>.tif`` instead. Tiles are float32 heights in metres (EGM2008),
one band, no nodata value: there is no tile where there is only sea, so an HTTP 404
is a note ("no tile: sea or outside coverage"), an error only when no tile at all is
found (it is remembered beside the tiles, and asked again only with another URL).

A GLO-30 tile has 3600 rows of 1 arc-second; north of 50 degrees its columns are
wider (1.5, 2, 3, 5 and 10 arc-seconds from 50, 60, 70, 80 and 85 degrees), so the
cells are not square in degrees either: nothing is resampled, the cell sizes in metres
come from ``Raster.cell_size_m`` (raster_pairs). Downloads resume and are verified
(download_module/fetch.py, then opened with rasterio: one float32 band that reads
whole and lies in its 1x1 degree cell); a file that fails is deleted and reported.
Tiles are kept in ``<out>/raw/copernicus/``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import util
from download_module import fetch
from download_module.raster_pairs import RasterFile, SourceRasters

NAME = "copernicus"
RESOLUTIONS = {30: ("copernicus-dem-30m", "10", 3600), 90: ("copernicus-dem-90m", "30", 1200)}  # bucket, code, rows
MAX_TILES = 50  # a --bbox covering more needs --max-tiles
TILE_MB = {30: 25, 90: 3}  # about, on land
# Upper bound of |latitude| (of the tile's edge nearest the equator) -> column spacing in units of the row spacing.
WIDTH_FACTORS = ((50, 1), (60, 1.5), (70, 2), (80, 3), (85, 5), (90, 10))
_SHORT = re.compile(r"([NS])(\d{1,2})(?:_00)?_?([EW])(\d{1,3})(?:_00)?", re.IGNORECASE)
_FULL = re.compile(r"Copernicus_DSM_COG_(\d\d)_(.+)_DEM(?:\.tif)?", re.IGNORECASE)


# ---- 1. Tile names ------------------------------------------------------------------


def short_name(lat: int, lon: int) -> str:
    """South-west corner in whole degrees -> ``N40_00_W106_00``."""
    return f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}_00_{'E' if lon >= 0 else 'W'}{abs(lon):03d}_00"


def tile_name(short: str, resolution: int) -> str:
    return f"Copernicus_DSM_COG_{RESOLUTIONS[resolution][1]}_{short}_DEM"


def corner(short: str) -> tuple[int, int]:
    """``N40_00_W106_00`` -> (40, -106): latitude and longitude of the south-west corner."""
    match = _SHORT.fullmatch(short)
    ns, lat, ew, lon = match.groups()
    return (int(lat) if ns.upper() == "N" else -int(lat)), (int(lon) if ew.upper() == "E" else -int(lon))


def parse_tiles(text: str, resolution: int) -> list[str]:
    """``--tiles N40_00_W106_00,Copernicus_DSM_COG_10_N41_00_W106_00_DEM`` -> short names, each once."""
    tiles = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        short = item
        full = _FULL.fullmatch(item)
        if full:
            code, short = full.groups()
            if code != RESOLUTIONS[resolution][1]:
                other = next((r for r, (_, c, _) in RESOLUTIONS.items() if c == code), None)
                hint = f"give --resolution {other}" if other else "check the name"
                raise util.UserError(f"--tiles {item}: a COG_{code} tile name, not GLO-{resolution}; {hint}")
        match = _SHORT.fullmatch(short)
        if not match:
            raise util.UserError(
                f"--tiles {item}: not a tile name; give the south-west corner like N40_00_W106_00 (or a full "
                "name like Copernicus_DSM_COG_10_N40_00_W106_00_DEM), comma-separated"
            )
        lat, lon = corner(short)
        if not (-90 <= lat <= 89 and -180 <= lon <= 179):
            raise util.UserError(f"--tiles {item}: latitude must be S90..N89 and longitude W180..E179")
        name = short_name(lat, lon)
        if name not in tiles:
            tiles.append(name)
    if not tiles:
        raise util.UserError("--tiles: no tile name given; e.g. --tiles N40_00_W106_00")
    return tiles


def bbox_tiles(text: str) -> list[str]:
    """``--bbox W,S,E,N`` in degrees -> the short names of the whole-degree tiles covering it, north first."""
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise util.UserError(f"--bbox {text}: give four numbers W,S,E,N in degrees, e.g. -106,39,-104,41") from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise util.UserError(
            f"--bbox {text}: need -180 <= W < E <= 180 and -90 <= S < N <= 90 (a box across the antimeridian: "
            "give two boxes' tiles with --tiles)"
        )
    lats = range(math.floor(south), math.ceil(north))
    lons = range(math.floor(west), math.ceil(east))
    return [short_name(lat, lon) for lat in reversed(lats) for lon in lons]


def expected_shape(short: str, resolution: int) -> tuple[int, int]:
    """(rows, cols) of a full tile: fewer columns north of 50 degrees (WIDTH_FACTORS)."""
    rows = RESOLUTIONS[resolution][2]
    lat, _ = corner(short)
    nearest = min(abs(lat), abs(lat + 1))
    factor = next(f for bound, f in WIDTH_FACTORS if nearest < bound)
    return rows, round(rows / factor)


def tile_url(short: str, resolution: int, mirror: str | None) -> str:
    name = tile_name(short, resolution)
    base = mirror.rstrip("/") if mirror else f"https://{RESOLUTIONS[resolution][0]}.s3.amazonaws.com"
    return f"{base}/{name}/{name}.tif"


# ---- 2. Download and check ------------------------------------------------------------


def verify_tile(path: Path, short: str, resolution: int) -> str | None:
    """Open a tile with rasterio; delete it and raise a UserError unless it is a whole one-band float32 tile.

    Returns a note when its size is not that of a full tile (a mirror's cut-out).
    """
    import rasterio

    lat, lon = corner(short)
    try:
        with rasterio.open(path) as src:
            shape, problem = (src.height, src.width), None
            if src.count != 1 or src.dtypes[0] != "float32":
                problem = f"{src.count} band(s) of {src.dtypes[0]}, not one float32 band"
            elif src.crs is None or not src.crs.is_geographic:
                problem = f"CRS {src.crs}, not geographic (EPSG:4326)"
            else:
                src.read(1)  # every block decodes: a truncated file fails here
                b = src.bounds
                x, y = (b.left + b.right) / 2, (b.bottom + b.top) / 2
                if not (lat <= y <= lat + 1 and lon <= x <= lon + 1):
                    problem = f"its centre ({y:.3f}, {x:.3f}) lies outside the tile's 1x1 degree cell"
    except (rasterio.errors.RasterioError, OSError) as err:
        problem = f"not a readable GeoTIFF ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    if problem:
        path.unlink(missing_ok=True)
        raise util.UserError(f"{path}: {problem}; the file was deleted: run again to download it again, or check --url")
    expected = expected_shape(short, resolution)
    if shape != expected:
        return f"{path.stem}: {shape[0]}x{shape[1]} cells, not the {expected[0]}x{expected[1]} of a full tile"
    return None


def _stamp(path: Path) -> dict:
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_missing(err: util.UserError, url: str) -> bool:
    """True for fetch.download's error on a file the server does not have (HTTP 404, or a file:// mirror's)."""
    text = str(err)
    return text.startswith(f"{url}: HTTP 404") or text.startswith(f"{url}: no such file")


def fetch_tile(folder: Path, short: str, resolution: int, mirror: str | None) -> tuple[Path | None, str | None]:
    """(path, None), or (path, note) for a cut-out tile, or (None, note) when there is no such tile."""
    url = tile_url(short, resolution, mirror)
    path = folder / f"{tile_name(short, resolution)}.tif"
    missing = path.with_name(path.name + ".missing")
    verified = path.with_name(path.name + ".verified")
    if not path.exists() and _read_json(missing) == {"url": url}:
        return None, f"{short}: no tile (sea or outside coverage; {url} answered 404 before)"
    try:
        fetch.download(url, path)
    except util.UserError as err:
        if not _is_missing(err, url):
            raise
        util.write_json_atomic(missing, {"url": url})
        return None, f"{short}: no tile (sea or outside coverage; {url}: 404)"
    missing.unlink(missing_ok=True)
    record = _read_json(verified)
    if record and record.get("stamp") == _stamp(path):
        return path, record.get("note")
    verified.unlink(missing_ok=True)
    note = verify_tile(path, short, resolution)
    util.write_json_atomic(verified, {"stamp": _stamp(path), "note": note})
    return path, note


def choose_tiles(tiles: str | None, bbox: str | None, resolution: int, max_tiles: int | None) -> list[str]:
    """Short names from ``--tiles`` or ``--bbox`` (one of them); a box of more than MAX_TILES needs ``--max-tiles``."""
    if resolution not in RESOLUTIONS:
        raise util.UserError(f"--resolution {resolution}: give 30 (GLO-30) or 90 (GLO-90)")
    if (tiles is None) == (bbox is None):
        raise util.UserError(
            "copernicus: give --tiles N40_00_W106_00,... or --bbox W,S,E,N (degrees), one of them; "
            "e.g. --bbox -106,39,-104,41"
        )
    if max_tiles is not None and max_tiles < 1:  # 0 would otherwise mean the default limit
        raise util.UserError(f"--max-tiles {max_tiles}: give at least 1 (the most tiles fetched)")
    if tiles is not None:
        chosen = parse_tiles(tiles, resolution)
    else:
        chosen = bbox_tiles(bbox)
        limit = max_tiles or MAX_TILES
        print(f"{NAME}: --bbox {bbox} covers {len(chosen)} tile(s) of 1x1 degree (GLO-{resolution})")
        if len(chosen) > limit:
            raise util.UserError(
                f"--bbox {bbox}: {len(chosen)} tiles (about {len(chosen) * TILE_MB[resolution]} MB of "
                f"GLO-{resolution}); give --max-tiles {len(chosen)} to fetch them all, or a smaller box"
            )
    if max_tiles is not None and len(chosen) > max_tiles:
        raise util.UserError(f"--tiles: {len(chosen)} tiles, more than --max-tiles {max_tiles}")
    return chosen


def find_rasters(
    out: Path,
    url: str | None = None,
    tiles: str | None = None,
    bbox: str | None = None,
    resolution: int = 30,
    max_tiles: int | None = None,
) -> SourceRasters:
    chosen = choose_tiles(tiles, bbox, resolution, max_tiles)
    folder = Path(out) / "raw" / NAME
    found, notes = [], []
    for short in chosen:
        path, note = fetch_tile(folder, short, resolution, url)
        if note:
            notes.append(note)
            print(f"note: {note}", file=sys.stderr)
        if path is not None:
            found.append(RasterFile(path, path.name))
    if not found:
        raise util.UserError(
            f"{NAME}: no tile found among {len(chosen)} ({', '.join(chosen)}): sea or outside the GLO-{resolution} "
            "coverage; check --tiles/--bbox (or --url)"
        )
    base = url.rstrip("/") if url else f"https://{RESOLUTIONS[resolution][0]}.s3.amazonaws.com"
    return SourceRasters(found, origin=f"{base} (Copernicus DEM GLO-{resolution})", notes=notes)
