"""Enhance your photos with a saved model of the suite: a photo in, a better photo out.

    python3 enhance.py photo.jpg                              # -> photo_x4.png beside it
    python3 enhance.py photo.jpg --scale 2                    # the shipped x2 model (sr2, sr4, sr8)
    python3 enhance.py photo.jpg --model runs/<run>/model.keras --out big.png
    python3 enhance.py photos/                                # a folder in -> photos_x4/ beside it
    python3 enhance.py noisy.png --model runs/<denoise run>/model.keras   # -> noisy_denoised.png

The model says what it does (task, scale, the input it expects) in its SuiteInfo, so
any model of the suite works. Photos of any size are processed in overlapping,
blended tiles (util/inference.py), with memory bounded by the tile size. The output
is a PNG of the same kind as the input: grey stays grey, alpha is kept (upscaled by
bicubic), 16-bit stays 16-bit, the ICC profile is kept and EXIF orientation is
applied to the pixels. Existing files are never replaced without --overwrite, an
input never, and each output appears at once, complete (written atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import util
from util.photo import check_photo, read_photo, write_png

# ---- Constants: edit these -------------------------------------------------
MODELS = Path(__file__).resolve().parent / "assets" / "models"  # the shipped models: sr2, sr4, sr8.keras
MODEL = MODELS / "sr4.keras"  # --model default
TILE = None  # tile side in input pixels; None: a ~512-pixel output tile (util.inference.default_tile)
OVERLAP = None  # overlap of neighbouring tiles in input pixels; None: a quarter of the tile


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument("--model", type=Path, help=f"a saved model.keras (default: {MODEL})")
    parser.add_argument(
        "--scale", type=int, choices=(2, 4, 8), help=f"use the shipped model of this scale, {MODELS}/sr<scale>.keras"
    )
    parser.add_argument("--out", type=Path, help="output file (one input image) or folder (default: beside the input)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    parser.add_argument("--tile", type=int, default=TILE, help="tile side in input pixels")
    parser.add_argument("--overlap", type=int, default=OVERLAP, help="overlap of tiles in input pixels")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="self-ensemble: average the model over the 8 flips/rotations (8x slower, a little sharper)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def find_inputs(inputs: list[Path]) -> list[tuple[Path, Path | None]]:
    """Every image to enhance as ``(path, folder given)``; each header checked, so bad files fail first."""
    found = []
    for item in inputs:
        if item.is_dir():
            images = util.list_images(item)
            if not images:
                raise util.UserError(f"{item}: no images in this folder; give image files or a folder of them")
            found += [(path, item) for path in images]
        else:
            found.append((item, None))
    for path, _ in found:
        check_photo(path)
    return found


def plan_outputs(found, out: Path | None, suffix: str, overwrite: bool) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: ``<stem><suffix>.png`` beside the input, in --out, or --out itself.

    A folder's images go to ``--out`` or to ``<folder><suffix>/``, keeping sub-folders.
    """
    single_file = len(found) == 1 and found[0][1] is None
    out_is_file = out is not None and out.suffix.lower() == ".png" and not out.is_dir()
    if out_is_file and not single_file:
        raise util.UserError(f"--out {out} names one file but there are {len(found)} images; give a folder")
    pairs = []
    for path, folder in found:
        name = f"{path.stem}{suffix}.png"
        if folder is not None:
            out_folder = out or folder.with_name(folder.name + suffix)
            pairs.append((path, out_folder / path.relative_to(folder).with_name(name)))
        else:
            pairs.append((path, out if out_is_file else (out or path.parent) / name))
    inputs = {path.resolve() for path, _ in found}
    outputs = set()
    for _, target in pairs:
        if target.resolve() in inputs:
            raise util.UserError(f"{target}: is an input image; never overwritten, give --out elsewhere")
        if target.resolve() in outputs:
            raise util.UserError(f"{target}: two inputs would give this same output; rename one or use --out")
        outputs.add(target.resolve())
        if target.exists() and not overwrite:
            raise util.UserError(f"{target}: exists; give --overwrite to replace it, or --out elsewhere")
    return pairs


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.model is not None and args.scale is not None:
        raise util.UserError(f"--model {args.model} and --scale {args.scale}: give one (--scale picks a shipped model)")
    args.model = args.model or (MODELS / f"sr{args.scale}.keras" if args.scale else MODEL)
    if not args.model.is_file():
        raise util.UserError(
            f"{args.model}: no such model file; train one with a model script (e.g. python3 inception2.py, task sr4) "
            f"and copy its runs/<run>/model.keras to {MODEL}, or give --model runs/<run>/model.keras"
        )
    found = find_inputs(args.inputs)
    # TensorFlow takes seconds to import (and logs to stderr): only once the inputs are checked.
    from util.inference import enhance_array
    from util.models import load_model

    model, info = load_model(args.model)
    suffix = f"_x{info['scale']}" if info["scale"] > 1 else "_denoised"
    for source, target in plan_outputs(found, args.out, suffix, args.overwrite):
        photo = read_photo(source)
        pixels = enhance_array(
            model, info, photo.pixels, args.tile, args.overlap, progress=not args.quiet, ensemble=args.ensemble
        )
        with util.atomic_path(target) as tmp:
            write_png(tmp, pixels, photo.icc_profile)
        print(f"{source} -> {target} ({pixels.shape[1]}x{pixels.shape[0]})")


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
