"""Evaluate a saved model (or bicubic) on benchmark folders by the standard SR protocol.

    python3 download.py benchmarks                                          # Set5, Set14, BSD100, Urban100 once
    python3 evaluate.py --model runs/<run>/model.keras                      # Set5 and Set14 at the model's task
    python3 evaluate.py --model runs/<run>/model.keras --data datasets/benchmark/Urban100
    python3 evaluate.py --model bicubic --scale 2                           # the baseline alone
    python3 evaluate.py --model runs/<run>/model.keras --task noise25       # Gaussian denoising, sigma 25
    python3 evaluate.py --model assets/models/denoise.keras --task noise25 --noisy float  # the papers' float input
    python3 evaluate.py --model assets/models/dem_x4.keras --data datasets/dem/test_regions my_dem.tif  # rasters
    python3 evaluate.py --model bicubic --scale 4 --data my_dem.asc         # bicubic and cubic spline alone
    python3 evaluate.py --model runs/<run>/model.keras --data datasets/raw/climate/A1B_north_america.nc --steps 192:

The protocol (modcrop, MATLAB bicubic, Y of BT.601, border = scale, uint8 output;
RGB for denoising) is documented in util/evaluation/protocols.py. Prints a Markdown table per
folder (per image and mean, bicubic beside the model) and writes one JSON per folder,
``eval_<folder>_<task>[_float][_ensemble].json`` (e.g. ``eval_Set5_sr4.json``), into the model's folder
(for bicubic: --out).
The model sees the whole image, through the tiled inference of util/inference/tiles.py
when the image is larger than one tile.

Rasters (DEMs, any grid in data units: .tif, .asc, .npy, .npz, .nc files or folders of
them, with a raster model or bicubic) are scored by the raster protocol of
util/evaluation/raster_eval.py: block-mean LR, bicubic and cubic spline beside the model, RMSE,
MAE, bias and slope RMSE over the valid cells; JSON and a hillshade/error figure,
``eval_<folder or file>_<task>.{json,png}``. Grids of other quantities than elevation (units
that are not a length, such as K; a NetCDF standard_name such as air_temperature) get no slope
and the scores of a downscaling instead (spatial correlation, conservation RMSE, small-scale
power, latitude-weighted RMSE), the mean-preserving bicubic, and a heat-map figure.
A stack (a NetCDF or GRIB variable with a time axis, a multi-band GeoTIFF with times) is scored
step by step, each selected step (--steps) as one whole grid, pooled, with per-cell RMSE and
bias maps over its steps (``..._cells.png``): the protocol of a downscaling held out in time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import util
from util.data.tasks import Task, parse_task, task_family
from util.evaluation.protocols import (
    BENCHMARK_DIR,
    NOISY_HELP,
    NOISY_INPUTS,
    STANDARD_SETS,
    benchmark_task,
    check_noisy,
    evaluate_folder,
    markdown_table,
    protocol_note,
    standard_sets,
)
from util.io import kinds

# ---- Constants: edit these -------------------------------------------------
DATA = None  # folders evaluated without --data; None: Set5 and Set14 of datasets/benchmark (download.py benchmarks)
BICUBIC_SCALE = 4  # --model bicubic without --scale or --task
BICUBIC_OUT = Path(__file__).resolve().parent / "runs" / "bicubic"  # JSON folder of --model bicubic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved model.keras, or 'bicubic'")
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=DATA,
        help=f"benchmark folders (default: {STANDARD_SETS} in {BENCHMARK_DIR})",
    )
    parser.add_argument("--scale", type=int, help="SR scale (default: the model's)")
    parser.add_argument("--task", help="protocol by task name: sr2, sr4 ..., noiseS, xNnoiseS (default: the model's)")
    parser.add_argument("--out", type=Path, help="folder of the JSON files (default: the model's folder; runs/bicubic)")
    parser.add_argument(
        "--ensemble", action="store_true", help="self-ensemble (EDSR+): the model averaged over the 8 flips/rotations"
    )
    parser.add_argument(
        "--noisy",
        choices=NOISY_INPUTS,
        default="8bit",
        help=NOISY_HELP,
    )
    parser.add_argument("--nodata", type=float, help="rasters: declare this nodata value (for files that lack one)")
    parser.add_argument("--band", type=int, help="rasters: the band of multi-band files (1 = first)")
    parser.add_argument("--variable", help="rasters: the variable of NetCDF / .npz files")
    parser.add_argument(
        "--steps",
        help="stacks (NetCDF/GRIB with a time axis): the steps to score, A:B (0-based, B excluded; e.g. 192: for "
        "the last 48 of 240) or dates (YYYY-MM[-DD[Thh:mm]]; 2052-01:), each as one whole grid; default: all",
    )
    parser.add_argument("--level", help="stacks: the level of a (time, level, y, x) variable (e.g. 850)")
    parser.add_argument(
        "--tile",
        type=int,
        help="rasters: the model's tile side in LR cells (default: the model's training patches where its card "
        "records them, else ~512-cell output tiles; enhance.py's default)",
    )
    parser.add_argument("--overlap", type=int, help="rasters: the overlap of tiles in LR cells (default: enhance.py's)")
    parser.add_argument(
        "--aux",
        help="rasters, stacks: the static predictors of a model trained with AUX, in its order (latitude,elev.tif), "
        "made for each scored grid as enhance.py makes them; files default to the paths the model records",
    )
    parser.add_argument(
        "--cell-size",
        type=float,
        metavar="METRES",
        help="rasters: the cell size in metres of files that cannot say it (.npy, NetCDF coordinates without "
        "units), for the slope RMSE; without it their slope RMSE is left out, with the reason",
    )
    return parser.parse_args(argv)


def choose_task(args, info: dict | None) -> Task:
    """The task from --task / --scale, else the model's; it must match the model's scale."""
    task = benchmark_task(args.task) if args.task else None
    if args.scale is not None:
        if args.scale < 2:
            raise util.UserError(f"--scale {args.scale}: give a scale of 2 or more, or --task noiseS for denoising")
        if task is not None and task.scale != args.scale:
            raise util.UserError(f"--scale {args.scale} contradicts --task {args.task}; give one of them")
        task = task or benchmark_task(f"sr{args.scale}")
    if task is None:
        task = benchmark_task(info["task"] if info else f"sr{BICUBIC_SCALE}")
    model_family = task_family(parse_task(info["task"])) if info else None
    if info and task_family(task) != model_family:
        raise util.UserError(
            f"{args.model}: a model for {info['task']} ({model_family}), "
            f"not for {task.name} ({task_family(task)}); leave out --task or give a model trained for {task.name}"
        )
    if info and task.scale != info["scale"]:
        raise util.UserError(
            f"{args.model}: the model's scale is {info['scale']} (task {info['task']}), not {task.scale}; "
            f"leave out --scale/--task or give a model trained for {task.name}"
        )
    return task


def is_raster_data(paths) -> bool:
    """True when the --data paths hold rasters, False for photos (util.io.kinds); a UserError when they mix both.

    A folder is of the kind of its files; a folder holding both kinds, or photos beside rasters
    among the paths, is refused (a photo PSNR of a DEM, or a raster RMSE of a photo, means nothing).
    """
    from util.io import kinds

    kind_of_path = {}
    for path in paths:
        if path.is_dir():
            found = kinds.folder_files(path)
            kind_of_path[path] = kinds.kind_of(found)
            if kind_of_path[path] == kinds.MIXED:
                raise kinds.mixed_folder_error(
                    path, found, "put the photos and the rasters in separate folders and evaluate each with its model"
                )
        elif path.is_file():
            kind_of_path[path] = kinds.file_kind(path)
    photos = [p for p, kind in kind_of_path.items() if kind == kinds.PHOTO]
    rasters = [p for p, kind in kind_of_path.items() if kind == kinds.RASTER]
    if photos and rasters:
        raise util.UserError(
            f"--data mixes photos ({photos[0]}) and rasters ({rasters[0]}); evaluate them in separate calls, each "
            "with its model"
        )
    return bool(rasters)


def evaluate_rasters(args, model=None, info: dict | None = None) -> None:
    """The raster protocol (util/evaluation/raster_eval.py) on every raster of --data; one table and JSON per path."""
    from util.evaluation.raster_eval import evaluate_raster_files, raster_files
    from util.evaluation.report import raster_rows

    if info is not None:
        from util.inference.raster_enhance import check_raster_model, enhance_raster_array, raster_tiling

        check_raster_model(info, str(args.model))
        raster_tiling(info, args.tile, args.overlap)  # a bad tiling: one line, before any file
        scale = info["scale"]
        if args.scale not in (None, scale):
            raise util.UserError(f"{args.model}: the model's scale is {scale}, not {args.scale}; drop --scale")

        def enhance(lr):
            return enhance_raster_array(model, info, lr, args.tile, args.overlap, ensemble=args.ensemble)

        statics = model_statics(args, info)
    else:
        if args.ensemble or args.tile is not None or args.overlap is not None or args.aux:
            raise util.UserError(
                "--ensemble / --tile / --overlap / --aux apply to a model, not to bicubic; give --model PATH.keras"
            )
        scale, enhance, statics = args.scale or BICUBIC_SCALE, None, None
    if args.task and args.task != f"sr{scale}":
        raise util.UserError(f"--task {args.task}: rasters are scored for super-resolution, here sr{scale}")
    out_dir = args.out or (Path(args.model).parent if info else BICUBIC_OUT)
    read = {k: getattr(args, k) for k in ("nodata", "band", "variable", "steps", "level")}
    conserved = " (its output keeps the LR block means: CONSERVE)" if info and info.get("conserve") else ""
    print(f"# {args.model}: sr{scale} on rasters{conserved}\n\n{RASTER_PROTOCOL}\n")
    for path in args.data:
        name = path.stem if path.is_file() else path.name
        stem = out_dir / f"eval_{name}_sr{scale}{'_ensemble' if args.ensemble else ''}"
        figure = stem.with_suffix(".png")
        result = evaluate_raster_files(
            raster_files([path]), scale, enhance, read, figure=figure, cell_size=args.cell_size, statics=statics
        )
        result.update(dataset=name, task=f"sr{scale}", model=str(args.model), info=info, ensemble=args.ensemble)
        units = result["rasters"][0]["units"]
        lines = [f"## {name} sr{scale}", ""]
        if len(result["rasters"]) > 1 or "steps" in result["rasters"][0]:
            lines += [file_line(row) for row in result["rasters"]]
            lines += ["", "All rasters pooled:" if len(result["rasters"]) > 1 else "Its steps pooled:", ""]
        lines += raster_rows(result["pooled"], units)
        lines += slope_notes(result)
        print("\n".join(lines) + "\n")
        util.write_json_atomic(stem.with_suffix(".json"), result)
        print(f"written: {stem.with_suffix('.json')} and {stem.with_suffix('.png').name}\n")


def model_statics(args, info: dict):
    """For a model with static predictors (its card's ``aux``): ``statics(raster, lr_shape)``, its inputs for
    the block mean of ``raster`` (util.inference.raster_enhance.static_inputs, as enhance.py); else None
    (and --aux refused)."""
    from affine import Affine

    from util.data.static import parse_aux
    from util.inference.raster_enhance import refuse_aux, static_inputs

    given = parse_aux(args.aux or "") or None
    if not info.get("aux"):
        refuse_aux(given)
        return None
    if args.ensemble:
        raise util.UserError("--ensemble: flips and rotations would scramble the model's static predictors; drop it")

    def statics(raster, lr_shape):
        transform = None if raster.transform is None else raster.transform * Affine.scale(info["scale"])
        return static_inputs(info, lr_shape, transform, raster.crs, given, str(raster.path or args.model))

    return statics


def file_line(row: dict) -> str:
    """One line of a file's result: its grid (a stack: its steps and times) and each method's RMSE."""
    from util.evaluation.report import in_units

    shown = in_units(s["rmse"] for s in row["scores"].values())
    rmse = ", ".join(f"{m} {text}" for m, text in zip(row["scores"], shown, strict=True))
    grid = "x".join(map(str, row["shape"][-2:]))
    if "steps" in row:
        steps = row["steps"]
        chosen = f"steps {steps[0]}:{steps[1]}" if len(steps) == 2 else f"{len(steps)} steps"
        when = f", {row['times'][0][:10]} to {row['times'][1][:10]}" if row.get("times") else ""
        grid = f"{row['step_count']} whole grids of {grid}: {chosen}{when}"
    return f"- {row['file']} ({grid}, cells {row['cell_m']} m): RMSE {rmse}"


def slope_notes(result: dict) -> list[str]:
    """Why the slope RMSE is left out: a line per raster of unknown cell size; one line for other quantities."""
    rows = result["rasters"]
    if "slope_rmse" in result["pooled"]["bicubic"]:
        left_out = [row for row in rows if "slope_left_out" in row]
        return [f"\nslope RMSE left out for {row['file']}: {row['slope_left_out']}" for row in left_out]
    which = rows[0]["file"] if len(rows) == 1 else f"the {len(rows)} rasters ({rows[0]['file']} ...)"
    return [f"\nslope RMSE left out for {which}: {rows[0]['slope_left_out']}", f"\n{DOWNSCALING_SCORES}"]


RASTER_PROTOCOL = (
    "Raster protocol: HR cropped to a multiple of the scale, LR = block mean of the valid cells, nodata filled "
    "from the nearest valid cell for every method; scored over valid cells with a scale-cell border left out, "
    "in the data's units; slope RMSE by Horn's method with the real cell size."
)
DOWNSCALING_SCORES = (
    "Not elevations, so no slope: spatial correlation (mean over rasters), conservation RMSE (block means of "
    "the output against the LR), small-scale power (wavelengths of 2-3 cells) against the truth's, "
    "cos(latitude)-weighted RMSE of geographic grids; see docs/design.md#rasters-in-detail."
)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.cell_size is not None and not args.cell_size > 0:  # before the model (and TensorFlow) loads
        raise util.UserError(f"--cell-size {args.cell_size:g}: give the cell size in metres, above 0")
    if args.data and is_raster_data(args.data):
        model, info = None, None
        if args.model != "bicubic":
            from util.models.loading import load_model

            model, info = load_model(Path(args.model))
        evaluate_rasters(args, model, info)
        return
    raster_only = ("nodata", "band", "variable", "cell_size", "steps", "level", "tile", "overlap", "aux")
    if any(getattr(args, name) is not None for name in raster_only):
        raise util.UserError(
            "--nodata / --band / --variable / --cell-size / --steps / --level / --tile / --overlap / --aux apply to "
            "rasters; give --data raster files or folders"
        )
    folders = args.data or standard_sets()
    for folder in folders:
        if not folder.is_dir():
            raise util.UserError(f"{folder}: no such folder; give --data folders of HR images")
    if args.task or args.scale is not None:
        check_noisy(args.noisy, choose_task(args, None))  # before the model (and TensorFlow) loads
    info, enhance = None, None
    if args.model != "bicubic":
        model_path = Path(args.model)
        if not model_path.is_file():
            raise util.UserError(f"{model_path}: no such model file; give --model runs/<run>/model.keras or bicubic")
        # TensorFlow takes seconds to import: only now that the arguments are checked.
        from util.inference.tiles import enhance_to_uint8
        from util.models.loading import load_model

        model, info = load_model(model_path)
        if info.get("data_kind") == kinds.RASTER:
            raise util.UserError(
                f"{model_path}: a raster model (data units); give --data raster files or folders (.tif .asc ...)"
            )

        def enhance(degraded):
            return enhance_to_uint8(model, info, degraded, progress=False, ensemble=args.ensemble)

    task = choose_task(args, info)
    check_noisy(args.noisy, task)
    out_dir = args.out or (Path(args.model).parent if info else BICUBIC_OUT)
    if args.ensemble and info is None:
        raise util.UserError("--ensemble applies to a model, not to bicubic; give --model PATH.keras")
    label = "model" if info is None else f"{info['architecture'] or 'model'} ({info['task']})"
    label += " + self-ensemble" if args.ensemble else ""
    print(f"# {args.model}: {task.name}\n\n{protocol_note(task, args.noisy)}\n")
    for folder in folders:
        result = evaluate_folder(folder, task, enhance, args.noisy)
        result.update(model=str(args.model), info=info, ensemble=args.ensemble)
        print(f"## {result['dataset']} {task.name}\n\n{markdown_table(result, task, label)}\n")
        suffix = ("_float" if args.noisy == "float" else "") + ("_ensemble" if args.ensemble else "")
        path = out_dir / f"eval_{result['dataset']}_{task.name}{suffix}.json"
        util.write_json_atomic(path, result)
        print(f"written: {path}\n")


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
