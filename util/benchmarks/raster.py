"""The raster (DEM) models: quality, speed and memory beside bicubic and cubic spline.

    python3 benchmark.py raster                                   # every assets/models/dem_*.keras
    python3 benchmark.py raster assets/models/dem_x4.keras --skip-memory

For the raster models (every assets/models/dem_*.keras, or those given): the raster
protocol (util/evaluation/raster_eval.py; evaluate.py's tables) on --data raster files or folders
(default: the held-out regions of ``datasets/dem``), bicubic and cubic spline beside each
model; inference in ms per output megapixel (batch 1, a 512x512 output, median of
--repeats runs after a warm-up); and the peak RSS of ``enhance.py`` on a synthetic float32
GeoTIFF DEM of a Copernicus GLO-30 tile's size, 3600x3600 cells (at x4, a 14400x14400
output). benchmark_raster.md and .json in --out. The `models` table leaves raster models out.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import util
from util.benchmarks import measure
from util.benchmarks.measure import MODELS, REPO, SPEED_OUTPUT, WARMUP
from util.io import kinds

# ---- Constants: edit these -------------------------------------------------
MEMORY_RASTER = 3600  # side in cells of the synthetic DEM enhanced for the memory column (a Copernicus GLO-30 tile)
RASTER_DATA = REPO / "datasets" / "dem" / "test_regions"  # without --data (python3 download.py dem)


def add_arguments(parser) -> None:
    measure.add_models_argument(parser, "dem_*.keras")
    parser.add_argument(
        "--data", nargs="+", type=Path, help=f"raster files or folders of them (default: {RASTER_DATA})"
    )
    measure.add_speed_arguments(parser)
    measure.add_out_argument(parser, "benchmark_raster.md and benchmark_raster.json")


def synthetic_dem(side: int, seed: int = 0) -> np.ndarray:
    """float32 (side, side) heights in metres: ridges and valleys at several wavelengths, a stand-in DEM."""
    rows = np.arange(side, dtype=np.float32)[:, None]
    cols = np.arange(side, dtype=np.float32)[None, :]
    rng = np.random.default_rng(seed)
    dem = np.full((side, side), 1500.0, np.float32)
    for wavelength, amplitude in ((900, 400), (300, 120), (90, 30), (25, 6)):
        ay, ax, phase = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0, 6.28)
        dem += (
            amplitude
            * np.sin((ay * rows + ax * cols) * 6.28 / wavelength + phase)
            * np.cos((ax * rows - ay * cols) * 6.28 / wavelength)
        )
    return dem


def write_synthetic_dem(path: Path, side: int) -> Path:
    """A float32 GeoTIFF of ``synthetic_dem(side)`` on 1 arc-second cells at 40 N (a GLO-30 tile's grid)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=side,
        width=side,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(-106.0, 41.0, 1 / 3600, 1 / 3600),
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(synthetic_dem(side), 1)
    return path


def raster_markdown(rows: list[dict]) -> str:
    side = MEMORY_RASTER
    header = "| method | scale | parameters | RMSE (m) | slope RMSE (deg) | ms / output MP | "
    header += f"peak RSS, {side}x{side} DEM (MB) | enhance.py on it (s) |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rss = "—" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"
        ms = "—" if r.get("ms_per_mp") is None else f"{r['ms_per_mp']:.0f}"
        lines.append(
            f"| {r['method']} | x{r['scale']} | {r['parameters']:,} | {r['rmse']:.3f} | {r['slope_rmse']:.2f} | "
            f"{ms} | {rss} | {'—' if r.get('enhance_seconds') is None else r['enhance_seconds']} |"
        )
    return "\n".join(lines)


def loaded_raster_models(models: list[Path]) -> list[tuple]:
    """[(path, model, info)] of the raster models given (default: MODELS/dem_*.keras); a UserError for others."""
    from util.models.loading import load_model

    loaded = [(path, *load_model(path)) for path in models or sorted(MODELS.glob("dem_*.keras"))]
    if not loaded:
        raise util.UserError(f"no raster models in {MODELS} (dem_*.keras); give model files")
    for path, _, info in loaded:
        if info.get("data_kind") != kinds.RASTER:
            raise util.UserError(f"{path}: a photo model; `benchmark.py raster` takes raster models (dem_*.keras)")
    return loaded


def model_row(path: Path, model, info: dict, files, repeats: int, dem_path: Path | None, work_dir: Path) -> dict:
    """The model's pooled scores on ``files``, its speed, and the peak RSS of enhance.py on ``dem_path``."""
    from util.evaluation.raster_eval import evaluate_raster_files
    from util.inference.raster_enhance import enhance_raster_array

    scale = info["scale"]
    enhance = functools.partial(enhance_raster_array, model, info)
    pooled = evaluate_raster_files(files, scale, enhance)["pooled"]
    lr = synthetic_dem(SPEED_OUTPUT // scale)[None, ..., None]
    megapixels = SPEED_OUTPUT**2 / 1e6
    row = {"method": str(path), "scale": scale, "parameters": int(model.count_params()), **pooled["model"]}
    row["ms_per_mp"] = measure.median_ms(lambda: model.predict_on_batch(lr), WARMUP, repeats) / megapixels
    started = time.perf_counter()
    row["peak_rss_mb"] = None if dem_path is None else measure.enhance_peak_rss_mb(path, dem_path, work_dir)
    row["enhance_seconds"] = None if dem_path is None else round(time.perf_counter() - started, 1)
    return row


def main(args) -> None:
    """``benchmark.py raster``: quality, speed and memory of the raster models (module doc)."""
    from util.evaluation.raster_eval import evaluate_raster_files, raster_files

    measure.check_repeats(args.repeats)
    loaded = loaded_raster_models(args.models)
    data = args.data or [RASTER_DATA]
    for folder in data:
        if not folder.exists():
            raise util.UserError(f"{folder}: no such file or folder; run `python3 download.py dem` or give --data")
    files = raster_files(data)
    rows = []
    with tempfile.TemporaryDirectory(prefix="benchmark-") as work:
        work_dir = Path(work)
        dem_path = None if args.skip_memory else write_synthetic_dem(work_dir / "synthetic_dem.tif", MEMORY_RASTER)
        for scale in sorted({info["scale"] for _, _, info in loaded}):
            pooled = evaluate_raster_files(files, scale)["pooled"]
            for name in ("bicubic", "cubic spline"):
                rows.append({"method": name, "scale": scale, "parameters": 0, **pooled[name]})
        for path, model, info in loaded:
            print(f"benchmarking {path} ...", file=sys.stderr)
            rows.append(model_row(path, model, info, files, args.repeats, dem_path, work_dir))
    table = raster_markdown(rows)
    machine = measure.machine_name()
    print(table)
    result = {"machine": machine, "data": [str(f) for f in files], "memory_dem": MEMORY_RASTER, "rows": rows}
    measure.write_tables(args.out, "benchmark_raster", f"Raster benchmark on {machine}", table, result)
