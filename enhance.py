"""Enhance your photos with a saved model of the suite: a photo in, a better photo out.

    python3 enhance.py photo.jpg                              # -> photo_x4.png beside it
    python3 enhance.py photo.jpg --scale 2                    # the shipped x2 model (sr2, sr4, sr8)
    python3 enhance.py photo.jpg --model runs/<run>/model.keras --out big.png
    python3 enhance.py photos/                                # a folder in -> photos_x4/ beside it
    python3 enhance.py noisy.png --model runs/<denoise run>/model.keras   # -> noisy_denoised.png

The model says what it does (task, scale, the input it expects) in its SuiteInfo, so
any model of the suite works. Photos of any size are processed in overlapping,
blended tiles (util/inference.py), with memory bounded by the tile size (util/photos.py
holds the file logic, shared with the model scripts' --role predict). The output
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
from util.photos import enhance_photos

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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.model is not None and args.scale is not None:
        raise util.UserError(f"--model {args.model} and --scale {args.scale}: give one (--scale picks a shipped model)")
    model_path = args.model or (MODELS / f"sr{args.scale}.keras" if args.scale else MODEL)
    if not model_path.is_file():
        raise util.UserError(
            f"{model_path}: no such model file; train one with a model script (e.g. python3 inception2.py, task sr4) "
            f"and copy its runs/<run>/model.keras to {MODEL}, or give --model runs/<run>/model.keras"
        )
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
    )


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
