"""Enhance your photos with a saved model of the suite: a photo in, a better photo out.

    python3 enhance.py photo.jpg                              # -> photo_x4.png beside it
    python3 enhance.py photo.jpg --scale 2                    # the shipped x2 model (sr2, sr4, sr8)
    python3 enhance.py photo.jpg --model runs/<run>/model.keras --out big.png
    python3 enhance.py photos/                                # a folder in -> photos_x4/ beside it
    python3 enhance.py --task denoise noisy.jpg               # the shipped blind denoiser -> noisy_denoised.png
    python3 enhance.py --task deblur blurry.jpg               # the shipped defocus model -> blurry_deblurred.png
    python3 enhance.py noisy.png --model runs/<denoise run>/model.keras
    python3 enhance.py dem.tif                                # a DEM -> dem_x4.tif (the shipped raster model)
    python3 enhance.py grid.asc --scale 2 --nodata -9999      # .asc -> .asc, .npy -> .npy, .nc -> .nc
    python3 enhance.py tas.nc --steps 0:12 --scale 2          # a time stack, step by step -> tas_x2.nc (climate_x2)
    python3 enhance.py forecast.grib2 --variable TMP          # GRIB (a stack) -> forecast_x4.nc
    python3 enhance.py photo.jpg --runtime onnx               # ONNX Runtime runs the model (make setup EXPORT=1)
    python3 enhance.py photo.jpg --runtime openvino --precision bfloat16  # twice as fast, 0.005 dB less

The model says what it does (task, scale, the input it expects) in its SuiteInfo, so
any model of the suite works. Photos of any size are processed in overlapping,
blended tiles (util/inference/tiles.py), with memory bounded by the tile size (util/inference/photos.py
holds the file logic, shared with the model scripts' --role predict). The output
is a PNG of the same kind as the input: grey stays grey, alpha is kept (upscaled by
bicubic), 16-bit stays 16-bit, the ICC profile is kept and EXIF orientation is
applied to the pixels. Existing files are never replaced without --overwrite, an
input never, and each output appears at once, complete (written atomically).

Rasters (.asc, .npy, .npz, .nc; a TIFF that is georeferenced, holds floats or signed
integers, or has one band that is not 8-bit; util/io/kinds.py holds the one rule) go through
a raster model in their own units (util/inference/raster_enhance.py): float32 out, same CRS, the
cell size divided by the scale, nodata kept, in strips of bounded memory. Each file takes
the model of its kind, in folders too: a folder of photos and DEMs gives PNGs and
rasters in <folder>_x4/ (photos: --scale's sr<scale>.keras, rasters: dem_x<scale>.keras);
--model and --task apply to one kind, so give them with files of that kind only.

Stacks (a NetCDF variable with a time axis, GRIB, a GeoTIFF whose bands carry times;
util/io/stacks.py) are enhanced one time step at a time, memory independent of the number
of steps, and written as CF NetCDF (<stem>_x4.nc) with the same time coordinate and calendar;
without --model they take the shipped air-temperature model climate_x<scale>.keras.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from pathlib import Path

import util
from util.data.tasks import PURPOSES
from util.inference.photos import enhance_photos
from util.inference.runtimes import AUTO, PRECISIONS, PREFERENCE, RUNTIMES, cache_folder, check_runtime

# ---- Constants: edit these -------------------------------------------------
MODELS = Path(__file__).resolve().parent / "assets" / "models"  # the shipped models: sr2, sr4, sr8.keras
MODEL = MODELS / "sr4.keras"  # --model default for photos
RASTER_MODEL = MODELS / "dem_x4.keras"  # --model default for rasters (DEMs); --scale 2: dem_x2.keras
STACK_MODEL = MODELS / "climate_x4.keras"  # --model default for stacks (air temperature); --scale 2: climate_x2.keras
TILE = None  # tile side in input pixels; None: a ~512-pixel output tile (util.inference.tiles.default_tile)
OVERLAP = None  # overlap of neighbouring tiles in input pixels; None: a quarter of the tile
RUNTIME = AUTO  # auto | keras | onnx | openvino | litert: what runs the model (util/inference/runtimes.py)
PRECISION = "float32"  # float32 | bfloat16 (OpenVINO, photo models): what the runtime computes in
RUNTIME_CACHE = None  # folder of the models converted for a runtime; None: util.inference.runtimes.cache_folder()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="photos, rasters, or folders of them; each file takes the model of its kind (util/io/kinds.py)",
    )
    parser.add_argument("--model", type=Path, help=f"a saved model.keras (default: {MODEL})")
    parser.add_argument(
        "--scale", type=int, choices=(2, 4, 8), help=f"use the shipped model of this scale, {MODELS}/sr<scale>.keras"
    )
    parser.add_argument(
        "--task",
        dest="purpose",  # a purpose picks a shipped model; "task" in the code is a restoration (sr4, noise25 ...)
        choices=sorted(PURPOSES),
        help="use the shipped model for this: denoise (any Gaussian noise level), deblur (out of focus)",
    )
    parser.add_argument("--out", type=Path, help="output file (one input image) or folder (default: beside the input)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs, an .asc output's .prj included (never an input, nor a read-only file)",
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="leave inputs whose output exists alone (resume a batch)"
    )
    parser.add_argument("--tile", type=int, default=TILE, help="tile side in input pixels")
    parser.add_argument("--overlap", type=int, default=OVERLAP, help="overlap of tiles in input pixels")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="self-ensemble: average the model over the 8 flips/rotations (8x slower, a little sharper)",
    )
    parser.add_argument("--nodata", type=float, help="rasters: declare this nodata value (for files that lack one)")
    parser.add_argument("--band", type=int, help="rasters: the band to enhance in a multi-band file (1 = first)")
    parser.add_argument("--variable", help="rasters: the variable of a NetCDF file (a GRIB element: TMP, UGRD ...)")
    parser.add_argument(
        "--steps",
        help="stacks: the time steps to enhance, A:B (0-based indices, B excluded; 0:12, 100:, -1:) or dates "
        "(YYYY-MM[-DD[Thh:mm]], B excluded; 2052-01:2100-01)",
    )
    parser.add_argument(
        "--level", help="stacks: the level of a 4-D variable, a value of its level coordinate (85000 for 850 hPa in Pa)"
    )
    parser.add_argument(
        "--aux",
        help="rasters, stacks: the static predictors of a model trained with AUX, in its order (latitude,elev.tif); "
        "built-ins are made from the file's coordinates, files default to the paths the model records",
    )
    parser.add_argument(
        "--runtime",
        default=RUNTIME,
        choices=(AUTO, *RUNTIMES),
        help=f"what runs the model, with the same tiles and outputs (within 1/255 for photos, 1e-4 of the height "
        f"scale for rasters); {AUTO} (default): {' if installed, else '.join(PREFERENCE)}, the fastest measured "
        "(docs/runtimes.md). onnx, openvino and litert need requirements-export.txt (make setup EXPORT=1); "
        "the model is converted once and kept in --runtime-cache",
    )
    parser.add_argument(
        "--precision",
        default=PRECISION,
        choices=PRECISIONS,
        help="float32 (default), or bfloat16: photo models in OpenVINO on a CPU with bfloat16 units, about twice as "
        "fast for 0.005 dB of Set5 PSNR on sr4 but up to 6e-3 from float32 (docs/runtimes.md)",
    )
    parser.add_argument(
        "--runtime-cache",
        type=Path,
        default=RUNTIME_CACHE,
        help=f"folder of the converted models, keyed by the .keras file's content (default: {cache_folder()})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def enhance_rasters(args, rasters: list[tuple[Path, Path | None]]) -> None:
    """The raster path: each ``(file, folder given)`` -> ``<stem>_x<scale><suffix>`` (beside it, in --out, or
    in ``<folder>_x<scale>/``), never over an existing file.

    Every output is planned and checked before any work. A raster that cannot be read is
    reported in one line on stderr and the others go on; the batch then ends with a UserError
    that counts the failures (one raster alone fails with its own error).
    """
    from util.inference.photos import check_tiling, check_writable

    if args.purpose:
        raise util.UserError(f"--task {args.purpose} applies to photos; rasters take the super-resolution models")
    check_tiling(args.tile, args.overlap)
    stacks = stack_inputs(args, rasters)
    planned = plan_rasters(args, rasters, stacks)
    check_writable([(path, target) for path, target, _ in planned])
    written, failed = [], []
    for path, target, (model, info, provenance) in planned:
        try:
            enhance_one(args, path, target, model, info, provenance, path in stacks)
        except util.UserError as err:
            if len(planned) == 1:
                raise
            print(f"error: {err}", file=sys.stderr)
            failed.append(path)
            continue
        except OSError as err:  # the disk, not the input: the rasters after it would fail alike
            raise util.UserError(
                f"{target}: cannot be written ({err.strerror or err}); "
                "give --out elsewhere (a writable folder with free space)"
            ) from None
        kind = ", a stack as NetCDF" if path in stacks else ""
        print(f"{path} -> {target} (x{info['scale']}, float32, {provenance.architecture}{kind})")
        written.append(target)
    if failed:
        raise util.UserError(
            f"{len(failed)} of {len(planned)} rasters could not be enhanced (each named above); the other "
            f"{len(written)} are written: fix or remove those files and run again with --skip-existing"
        )


def plan_rasters(args, rasters: list[tuple[Path, Path | None]], stacks: frozenset[Path]) -> list[tuple]:
    """``(file, output, (model, info, provenance))`` of each raster: stacks and single grids each with the
    model of their kind (raster_model_path), each model opened once and its tiling checked before any work."""
    # TensorFlow takes seconds to import (and logs to stderr): only once the flags are checked.
    from util.inference.raster_enhance import check_raster_model, plan_raster_outputs, raster_tiling
    from util.inference.runtimes import open_model
    from util.io.provenance import model_provenance

    opened, of_kind = {}, {}  # model path -> (model, info, provenance); stack or not -> the same
    for stack in sorted({path in stacks for path, _ in rasters}):
        model_path = raster_model_path(args, stack)
        if model_path not in opened:
            check = functools.partial(check_raster_model, where=str(model_path))
            model, info = open_model(model_path, args.runtime, args.runtime_cache, check, args.precision)
            raster_tiling(info, args.tile, args.overlap)  # an overlap not below the (rounded) tile: once
            opened[model_path] = (model, info, model_provenance(model_path, info))  # each output names its model
        of_kind[stack] = opened[model_path]
    scales = {info["scale"]: path for path, (_, info, _) in opened.items()}
    if len(scales) > 1:  # possible only with STACK_MODEL or RASTER_MODEL edited to another scale
        named = ", ".join(f"{path.name} x{scale}" for scale, path in scales.items())
        raise util.UserError(f"the stacks' and the grids' models differ in scale ({named}); enhance them apart")
    outputs = plan_raster_outputs(rasters, *scales, args.out, args.overwrite, args.skip_existing, stacks)
    return [(path, target, of_kind[path in stacks]) for path, target in outputs]


def raster_model_path(args, stack: bool) -> Path:
    """--model, or the shipped model of the kind and --scale: climate_x<s> for stacks, dem_x<s> for single grids."""
    if args.model:
        return args.model
    if not args.scale:
        return STACK_MODEL if stack else RASTER_MODEL
    path = MODELS / f"{'climate' if stack else 'dem'}_x{args.scale}.keras"
    if not path.is_file():
        kind = "time stacks" if stack else "rasters"
        raise util.UserError(f"--scale {args.scale}: no shipped model of that scale for {kind} ({path}); give --model")
    return path


def enhance_one(args, path: Path, target: Path, model, info: dict, provenance, stack: bool) -> None:
    """One raster, or one stack step by step, into ``target`` (util/inference/raster_enhance.py)."""
    from util.data.static import parse_aux
    from util.inference.raster_enhance import enhance_raster_file, enhance_stack_file

    tiling = {"tile": args.tile, "overlap": args.overlap, "ensemble": args.ensemble, "progress": not args.quiet}
    tiling |= {"provenance": provenance, "aux": parse_aux(args.aux or "") or None}
    if stack:
        options = {"variable": args.variable, "level": args.level, "steps": args.steps, "nodata": args.nodata}
        enhance_stack_file(path, model, info, target, options, **tiling)
    else:
        enhance_raster_file(path, model, info, target, args.nodata, args.band, args.variable, **tiling)


def stack_inputs(args, rasters: list[tuple[Path, Path | None]]) -> frozenset[Path]:
    """The rasters that are time stacks (util.io.stacks.is_stack; all of them when --steps or --level is
    given); --band, which picks a band of a 2-D raster, is refused with one."""
    from util.io import kinds
    from util.io.stacks import is_stack

    asked = args.steps is not None or args.level is not None
    stacks = frozenset(path for path, _ in rasters if asked or is_stack(path, args.variable))
    if stacks and args.band is not None:
        raise util.UserError(
            f"--band {args.band}: {kinds.examples(sorted(stacks))} are time stacks, enhanced step by step; drop --band "
            "(give --steps A:B to choose steps)"
        )
    return stacks


def stop_on_sigterm(signum, frame) -> None:
    """SIGTERM (sent by timeout, Slurm and kill) stops the run as Ctrl-C does: partial outputs are removed."""
    raise KeyboardInterrupt


def check_mixed(args, photos: list[Path], rasters: list[Path]) -> None:
    """Photos and rasters in one call: each kind takes the shipped model of its kind, so no --model or --task."""
    from util.io import kinds

    both = f"photos ({kinds.examples(photos)}) and rasters ({kinds.examples(rasters)})"
    if args.model is not None:
        raise util.UserError(
            f"--model {args.model} applies to one kind, and the inputs hold {both}; enhance each kind in its own "
            "call, or leave out --model (each file then takes the shipped model of its kind)"
        )
    if args.purpose:
        raise util.UserError(
            f"--task {args.purpose} applies to photos, and the inputs hold {both}; rasters take the super-resolution "
            "models: enhance the photos in their own call"
        )
    if args.out is not None and args.out.suffix and not args.out.is_dir():
        raise util.UserError(f"--out {args.out} names one file, and the inputs hold {both}; give a folder")


def photo_model(args) -> Path:
    """The photo model: --model, the shipped one of --scale or --task, else MODEL; a UserError when missing."""
    model_path = args.model or (MODELS / f"sr{args.scale}.keras" if args.scale else MODEL)
    if args.purpose:
        model_path = MODELS / f"{args.purpose}.keras"  # the shipped model of that purpose
        if not model_path.is_file():
            raise util.UserError(
                f"{model_path}: no such model file; train one (python3 edsr_lite.py --task {PURPOSES[args.purpose]}) "
                "and copy its runs/<run>/model.keras there, or give --model"
            )
    if not model_path.is_file():
        raise util.UserError(
            f"{model_path}: no such model file; train one with a model script (e.g. python3 inception2.py, task sr4) "
            f"and copy its runs/<run>/model.keras to {MODEL}, or give --model runs/<run>/model.keras"
        )
    return model_path


def main(argv=None) -> None:
    args = parse_args(argv)
    chosen = [
        f for f, v in (("--model", args.model), ("--scale", args.scale), ("--task", args.purpose)) if v is not None
    ]
    if len(chosen) > 1:
        raise util.UserError(f"{' and '.join(chosen)}: give one of them (--scale and --task pick a shipped model)")
    check_runtime(args.runtime)  # a missing package is said before any work
    from util.inference.photos import find_inputs
    from util.io import kinds

    found = find_inputs(args.inputs, args.out)  # each file's kind by util/io/kinds.py, the folders' files included
    photos, rasters = found[kinds.PHOTO], found[kinds.RASTER]
    if photos and rasters:
        check_mixed(args, [p for p, _ in photos], [p for p, _ in rasters])
    raster_flags = [
        f
        for f, v in (
            ("--nodata", args.nodata),
            ("--band", args.band),
            ("--variable", args.variable),
            ("--steps", args.steps),
            ("--level", args.level),
            ("--aux", args.aux),
        )
        if v is not None
    ]
    if raster_flags and not rasters:
        raise util.UserError(f"{' '.join(raster_flags)} apply to rasters (.tif DEMs, .asc, .npy, .nc), not photos")
    model_path = photo_model(args) if photos else None  # checked before any raster is written
    if rasters:
        enhance_rasters(args, rasters)
    if not photos:
        return
    enhance_photos(
        args.inputs,
        model_path,
        args.out,
        args.overwrite,
        args.tile,
        args.overlap,
        args.ensemble,
        progress=not args.quiet,
        skip_existing=args.skip_existing,
        rasters_elsewhere=True,
        runtime=args.runtime,
        runtime_cache=args.runtime_cache,
        precision=args.precision,
    )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sys.exit(util.run_cli(main))
