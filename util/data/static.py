"""Static predictors (DL4DS's ``static_vars``): fields fixed in time, fed to a stack model as extra inputs.

``AUX`` (``--aux``) names them, comma-separated: ``latitude``, built in (each cell centre's latitude
in degrees north, computed from the grid's coordinates), and files of one grid that
util.io.rasters reads (GeoTIFF, NetCDF ...: an elevation, a land/sea mask), regridded onto the
HR grid by their coordinates. The embedded climate data ship no elevation for North America,
so ``latitude`` is what runs on them with no file.

Regridding (rasterio's ``reproject``, any CRS to any CRS, 0-360 and -180-180 longitudes
matched): **bilinear** for continuous fields (an elevation is a surface: a point between four
samples is best given by the four), **nearest** for masks and classes, recognised as a file of
at most 16 distinct whole numbers (a land/sea mask's 0 and 1): a mask interpolated bilinearly
gives 0.4 on a coast, a class that does not exist, where the nearest cell keeps one of the file's classes. A
file must cover the grid (every cell centre within its cells): one that does not is refused in
one line naming the file and its extent. Nodata cells of a file inside the grid take the
nearest valid cell's value (a model input has no NaN), as a raster's nodata does.

Where they enter: **at training time**, not at download time. The manifest records each
stack's grid (``transform``, ``crs``) and every patch's [stack, step, row, col], so the handle
(util.data.pairs.StackPairs) makes each field once per stack on its grid and crops it at every
patch's position: one data set serves runs with and without predictors (an ablation) and with
other files, without writing the pairs again; the fields cost one grid per stack, no disk.

The model's input: the K fields on the HR grid are put onto the LR grid by space-to-depth
(``lr_channels``: K*s*s channels, channel ``(row phase * s + col phase) * K + k`` as
``tf.nn.space_to_depth``), so no sub-cell detail of an elevation is lost, and follow the LR
values: channel 0 the values in units, channels 1.. the fields. Inside the model each field is
normalised by the mean and standard deviation of the training patches
(util.models.layers.StaticNormalize). The model's card (SuiteInfo ``aux``, ``card``) records each
field's name, source, regridding and statistics; enhance.py rebuilds the built-ins from the
enhanced file's coordinates on the output grid and reads the files again (``--aux``, else the
path recorded), one line naming the field when one is missing (``model_fields``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from util.io.files import UserError

MAX_CLASSES = 16  # a file of at most this many distinct whole numbers is a mask or classes: nearest
BUILT_IN = {"latitude": "each cell centre's latitude in degrees north, from the grid's coordinates"}
LAYOUT = (
    "channel 0: the LR values in units; then the K fields on the output grid, space-to-depth by the scale "
    "onto the LR grid: channel 1 + (row phase * scale + col phase) * K + k"
)


def parse_aux(text: str) -> tuple[str, ...]:
    """``"latitude, elev.tif"`` -> ``("latitude", "elev.tif")``; ``""`` -> ``()``."""
    return tuple(part.strip() for part in str(text).split(",") if part.strip())


def check_aux(sources: tuple[str, ...], where: str = "AUX") -> None:
    """A one-line UserError for an unknown built-in, a missing file or a field given twice."""
    for source in sources:
        if source not in BUILT_IN and not Path(source).expanduser().is_file():
            raise UserError(
                f"{where}={','.join(sources)}: {source} is neither a built-in predictor ({', '.join(BUILT_IN)}) nor "
                "a file; give a raster file (GeoTIFF, NetCDF) or a built-in name"
            )
    names = [field_name(s) for s in sources]
    if len(set(names)) < len(names):
        raise UserError(f"{where}={','.join(sources)}: a field is given twice; give each once")


def field_name(source: str) -> str:
    """A field's name in the card: the built-in's name, or the file's stem (``elev.tif`` -> ``elev``)."""
    return source if source in BUILT_IN else Path(source).stem


@dataclass(frozen=True)
class Grid:
    """Where fields are made: ``shape`` (H, W), ``transform`` (affine.Affine of the cell corners or None),
    ``crs`` (rasterio CRS or None), ``latitudes`` ([row 0's centre, step per row] or None), ``name``."""

    shape: tuple[int, int]
    transform: object = None
    crs: object = None
    latitudes: tuple[float, float] | None = None
    name: str = "the grid"

    @classmethod
    def of_stack(cls, entry: dict) -> Grid:
        """The grid of a manifest's ``stacks`` entry (transform and crs recorded from format 2 on)."""
        from affine import Affine
        from rasterio.crs import CRS

        transform = None if not entry.get("transform") else Affine(*entry["transform"])
        crs = None if not entry.get("crs") else CRS.from_user_input(entry["crs"])
        lats = entry.get("latitudes")
        return cls(tuple(entry["shape"][1:]), transform, crs, None if not lats else tuple(lats), entry["name"])

    @classmethod
    def output_of(cls, shape: tuple[int, int], transform, crs, scale: int, name: str) -> Grid:
        """The grid that enhancing a grid of ``shape`` (H, W), ``transform`` and ``crs`` by ``scale`` writes."""
        from affine import Affine

        transform = None if transform is None else transform * Affine.scale(1 / scale)
        return cls((shape[0] * scale, shape[1] * scale), transform, crs, None, name)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) (H, W) of the cell centres in the grid's CRS."""
        rows, cols = np.mgrid[0 : self.shape[0], 0 : self.shape[1]]
        t = self.transform
        xs = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c
        ys = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
        return xs, ys


def latitude_field(grid: Grid) -> np.ndarray:
    """float32 (H, W): each cell centre's latitude in degrees north."""
    if grid.transform is not None and grid.crs is not None:
        xs, ys = grid.centres()
        if grid.crs.is_geographic:
            return ys.astype(np.float32)
        from rasterio.warp import transform

        _, lats = transform(grid.crs, "EPSG:4326", xs.ravel(), ys.ravel())
        return np.asarray(lats, np.float32).reshape(grid.shape)
    if grid.latitudes:
        lat0, step = grid.latitudes
        column = lat0 + step * np.arange(grid.shape[0], dtype=np.float64)
        return np.repeat(column[:, None], grid.shape[1], axis=1).astype(np.float32)
    raise UserError(
        f"{grid.name}: the static predictor latitude needs the grid's coordinates, and it has none (no CRS or "
        "transform); drop latitude from --aux or give a georeferenced file"
    )


def resampling_of(values: np.ndarray) -> str:
    """``nearest`` for a mask or classes (at most MAX_CLASSES distinct whole numbers), ``bilinear`` otherwise."""
    finite = values[np.isfinite(values)]
    classes = np.unique(finite[:1_000_000])
    if finite.size and len(classes) <= MAX_CLASSES and np.all(classes == np.round(classes)):
        return "nearest"
    return "bilinear"


def regridded(path: Path, grid: Grid) -> tuple[np.ndarray, str]:
    """(float32 (H, W) field of the file ``path`` on ``grid``, the resampling used); a UserError when it
    does not cover the grid or either has no coordinates."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    from util.io.rasters import fill_nodata, read_raster

    source = read_raster(path)
    src_crs = source.crs or (rasterio.crs.CRS.from_epsg(4326) if source.degrees else None)
    if source.transform is None or src_crs is None or grid.transform is None or grid.crs is None:
        which = path if source.transform is None or src_crs is None else grid.name
        raise UserError(
            f"{which}: has no coordinates (CRS and transform), so --aux {path} cannot be placed on {grid.name}'s "
            "grid; give a georeferenced file"
        )
    dst_transform = _check_cover(path, source, src_crs, grid)
    resampling = resampling_of(source.values)
    field = np.full(grid.shape, np.nan, np.float32)
    reproject(
        source.values.astype(np.float32),
        field,
        src_transform=source.transform,
        src_crs=src_crs,
        src_nodata=np.nan,
        dst_transform=dst_transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=getattr(Resampling, resampling),
    )
    if not np.isfinite(field).any():
        raise UserError(f"{path}: only nodata over {grid.name}'s grid; give a file with values there")
    return (fill_nodata(field) if not np.isfinite(field).all() else field), resampling


def _check_cover(path: Path, source, src_crs, grid: Grid):
    """``grid``'s transform, moved by 360 degrees of longitude where that puts it on the file; a UserError
    naming the file's and the grid's extents when the file does not cover every cell centre."""
    from affine import Affine
    from rasterio.warp import transform as transform_points

    xs, ys = grid.centres()
    same = src_crs == grid.crs
    if not same:
        points = transform_points(grid.crs, src_crs, xs.ravel(), ys.ravel())
        xs, ys = (np.asarray(v).reshape(grid.shape) for v in points)
    height, width = source.values.shape
    inverse, tol = ~source.transform, 1e-6
    for shift in (0.0, -360.0, 360.0) if same and src_crs.is_geographic else (0.0,):
        cols, rows = inverse * (xs + shift, ys)
        if cols.min() >= -tol and rows.min() >= -tol and cols.max() <= width + tol and rows.max() <= height + tol:
            return Affine.translation(shift, 0) * grid.transform
    left, top = source.transform * (0, 0)
    right, bottom = source.transform * (width, height)
    raise UserError(
        f"{path}: does not cover {grid.name}'s grid (cell centres x {xs.min():.4g}..{xs.max():.4g}, y "
        f"{ys.min():.4g}..{ys.max():.4g}; the file spans x {min(left, right):.4g}..{max(left, right):.4g}, y "
        f"{min(top, bottom):.4g}..{max(top, bottom):.4g} in its CRS); give an --aux file that covers the whole grid"
    )


def grid_fields(sources: tuple[str, ...], grid: Grid) -> tuple[np.ndarray, list[str]]:
    """(float32 (H, W, K) fields of ``sources`` on ``grid``, how each was made)."""
    fields, how = [], []
    for source in sources:
        if source in BUILT_IN:
            fields.append(latitude_field(grid))
            how.append("computed from the grid's coordinates")
        else:
            field, resampling = regridded(Path(source).expanduser(), grid)
            fields.append(field)
            how.append(resampling)
    return np.stack(fields, axis=-1), how


# ---- Training: the fields at each patch of a data set ------------------------------------------------


def stack_fields(manifest: dict, sources: tuple[str, ...], folder) -> tuple[dict[str, np.ndarray], list[str]]:
    """({stack name: (H, W, K) fields}, how each field was made) for every stack of a stack data set's manifest."""
    fields, how = {}, []
    for entry in manifest.get("stacks", []):
        needs_grid = any(s not in BUILT_IN for s in sources)
        if needs_grid and not entry.get("transform"):
            raise UserError(
                f"{folder}: written before the stacks' grids were recorded, which --aux files need; run "
                "`python3 download.py` for this data set again"
            )
        fields[entry["name"]], how = grid_fields(sources, Grid.of_stack(entry))
    return fields, how


def patch_fields(manifest: dict, split: str, fields: dict, patch: int, start: int = 0, stop=None) -> np.ndarray:
    """float32 (N, P, P, K): the fields at the patches [start, stop) of ``split`` (the manifest's positions)."""
    plan = manifest["splits"][split]
    rows = plan["patches"][start:stop]
    columns = plan.get("patch_columns", ["stack", "step", "row", "col"])
    r, c = columns.index("row"), columns.index("col")
    return np.stack([fields[plan["stacks"][p[0]]][p[r] : p[r] + patch, p[c] : p[c] + patch] for p in rows])


def card(sources: tuple[str, ...], how: list[str], patches: np.ndarray | None, scale: int) -> dict:
    """The model card's ``aux``: each field's name, source, regridding, and mean and std over ``patches``
    (the training patches, (N, P, P, K); None: 0 and 1, a placeholder for timing a model)."""
    fields = []
    for k, source in enumerate(sources):
        values = None if patches is None else patches[..., k]
        std = 1.0 if values is None else float(values.std())
        fields.append(
            {
                "name": field_name(source),
                "source": source if source in BUILT_IN else str(Path(source).expanduser().resolve()),
                "made": how[k] if how else "",
                "mean": 0.0 if values is None else float(values.mean()),
                "std": std if std > 0 else 1.0,  # a constant field: centred, not divided by 0
            }
        )
    return {"scale": int(scale), "fields": fields, "layout": LAYOUT}


def channels_of(card_: dict | None) -> int:
    """The input channels a card's fields add (K * scale**2; 0 without a card)."""
    return 0 if not card_ else len(card_["fields"]) * card_["scale"] ** 2


def lr_channels(fields: np.ndarray, scale: int) -> np.ndarray:
    """HR fields (..., H, W, K) -> (..., H/s, W/s, K*s*s) on the LR grid, as ``tf.nn.space_to_depth``."""
    *lead, height, width, count = fields.shape
    blocks = fields.reshape(*lead, height // scale, scale, width // scale, scale, count)
    n = len(lead)
    order = (*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return blocks.transpose(order).reshape(*lead, height // scale, width // scale, scale * scale * count)


# ---- Enhancing: the fields a model needs, on the grid it writes ---------------------------------------


def card_sources(card_: dict, given: tuple[str, ...] | None, where: str) -> tuple[str, ...]:
    """The sources of a model card's fields: built-ins by name, files from ``given`` (``--aux``, in the
    card's order) or, when nothing is given, the paths the card records; a one-line UserError for a
    count or a built-in that does not match, or a file that is not there (``where``: the file enhanced)."""
    names = [f["name"] for f in card_["fields"]]
    wanted = ",".join(f["source"] if f["source"] in BUILT_IN else f"{f['name']}-FILE" for f in card_["fields"])
    if given and len(given) != len(names):
        raise UserError(
            f"--aux {','.join(given)}: the model takes {len(names)} static predictor(s) ({', '.join(names)}), in "
            f"this order; give --aux {wanted}"
        )
    sources = []
    for k, field in enumerate(card_["fields"]):
        source = given[k] if given else field["source"]
        if (source in BUILT_IN or field["source"] in BUILT_IN) and source != field["source"]:
            raise UserError(f"--aux {','.join(given)}: field {k + 1} is {field['name']}; give --aux {wanted}")
        if source not in BUILT_IN and not Path(source).expanduser().is_file():
            raise UserError(
                f"{where}: the model needs the static predictor {field['name']} (trained with {field['source']}), "
                f"which is not there; give --aux {wanted}"
            )
        sources.append(source)
    return tuple(sources)


def model_fields(card_: dict, given: tuple[str, ...] | None, grid: Grid, where: str) -> np.ndarray:
    """float32 (H, W, K) fields of a model's card on ``grid`` (the output grid of the file ``where``):
    built-ins computed from ``grid``, files as ``card_sources`` finds them."""
    return grid_fields(card_sources(card_, given, where), grid)[0]
