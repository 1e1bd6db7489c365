"""Turn a source of images into 128x128 HR/LR training pairs: ``datasets/<source>/*.npy``.

    python3 download.py                          # builtin images, no network
    python3 download.py mars                     # Curiosity rover images from Zenodo
    python3 download.py div2k --train 1000 --test 100
    python3 download.py --folder ~/photos        # -> datasets/folder-photos/
    python3 download.py benchmarks               # Set5, Set14, BSD100, Urban100 -> datasets/benchmark/<set>/*.png

Writes ``<out>/<dataset>/{train,test}_{hr,sr2,sr4,sr8,noise64,noise64blur,x4noise64}.npy``
(uint8 NHWC RGB) and ``manifest.json`` (see download_module/pairs.py for the
degradations). Archives are kept in ``<out>/downloads/`` and extracted into
``<out>/raw/<source>/``, so a second run needs no network; when the manifest
already matches the settings (source, counts, seed, degradations, the image files),
nothing is rewritten. Progress bars are drawn on a terminal only.

``benchmarks`` is not a patch data set: it writes only the HR images of the four
evaluation sets, ``<out>/benchmark/<set>/*.png`` (download_module/benchmarks.py).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import util
from download_module import SOURCES, benchmarks, folder, pairs

# ---- Constants: edit these -------------------------------------------------
SOURCE = "builtin"  # builtin | div2k | mars | unsplash (or give --folder PATH)
TRAIN_PATCHES = 10_000  # the prototype's count
TEST_PATCHES = 1_000
SEED = 0
OUT = Path(__file__).resolve().parent / "datasets"  # next to this file, whatever the current folder

EPILOG = """\
sources (train and test are split by image: no test patch comes from a training image):
  builtin    scikit-image's bundled photographs; test = coffee, rocket, gravel
  div2k      DIV2K_train_HR.zip -> train, DIV2K_valid_HR.zip -> test (about 4 GB, data.vision.ee.ethz.ch)
  mars       Zenodo 1049137 msl-images.zip; the archive's sol-based split (test = test list)
  unsplash   Kaggle quadeer15sh/image-super-resolution-from-unsplash, 'high res' folder (needs
             KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json); 10% of the images to test
  --folder   any folder tree of images; 10% of the images (at least 1) to test

output: <out>/<name>/{train,test}_{hr,sr2,sr4,sr8,noise64,noise64blur,x4noise64}.npy (uint8 NHWC RGB)
and manifest.json; archives stay in <out>/downloads/, images in <out>/raw/<source>/. Run again:
an interrupted download resumes, and a data set whose manifest matches is left as it is.

benchmarks (evaluation sets, no patches; --train/--test/--seed/--name/--folder do not apply):
  the HR images of Set5 (5), Set14 (14), BSD100 (100, B100 in the archive) and Urban100 (100) from
  EDSR's benchmark.tar (about 250 MB, cv.snu.ac.kr, md5-checked) -> <out>/benchmark/<set>/*.png, for
  evaluate.py --data; the LR images of the archive are not kept. A set folder already complete is
  left as it is; benchmark.tar stays in <out>/downloads/ (delete it once the sets are there).
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cut 128x128 HR patches from a source of images and store them with their degraded "
        "versions (bicubic x2/x4/x8, Gaussian noise sigma 64, noise + blur, x4 + noise) as .npy files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        nargs="?",
        choices=sorted([*SOURCES, benchmarks.NAME]),
        help=f"where the HR images come from (default {SOURCE}: scikit-image's bundled photographs, no network); "
        f"{benchmarks.NAME}: the evaluation sets instead of patches (below)",
    )
    parser.add_argument("--folder", type=Path, help="use every image below this folder instead of a named source")
    parser.add_argument(
        "--name", help="dataset name for --folder (default folder-<basename>); training scripts read datasets/<name>/"
    )
    parser.add_argument("--train", type=int, default=TRAIN_PATCHES, help="number of train patches (%(default)s)")
    parser.add_argument("--test", type=int, default=TEST_PATCHES, help="number of test patches (%(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the crops and the noise (%(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: datasets/ next to download.py)")
    parser.add_argument(
        "--url",
        help="mirror: base URL of a folder holding the source's archives under their official names "
        "(DIV2K_train_HR.zip and DIV2K_valid_HR.zip, msl-images.zip, image-super-resolution-from-unsplash.zip, "
        "benchmark.tar); for mars, unsplash and benchmarks the archive's own URL (ending in .zip, .tar) works too",
    )
    return parser.parse_args(argv)


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it lies below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def fetch_benchmarks(args: argparse.Namespace) -> None:
    """``download.py benchmarks``: the HR images of the evaluation sets, no patches."""
    given = [
        flag
        for flag, value, default in (
            ("--train", args.train, TRAIN_PATCHES),
            ("--test", args.test, TEST_PATCHES),
            ("--seed", args.seed, SEED),
            ("--name", args.name, None),
            ("--folder", args.folder, None),
        )
        if value != default
    ]
    if given:
        raise util.UserError(
            f"{benchmarks.NAME} takes no {' / '.join(given)}: it fetches the evaluation sets whole "
            f"into <out>/{benchmarks.FOLDER}/ (only --out and --url apply)"
        )
    fetched = benchmarks.fetch_sets(args.out, args.url)
    dest = args.out / benchmarks.FOLDER
    if fetched:
        print(f"{_shown(dest)}: wrote {', '.join(fetched)} (HR images only)")
    else:
        print(f"{_shown(dest)}: up to date, nothing to fetch")
    for name, set_folder in benchmarks.set_folders(args.out).items():
        print(f"  {_shown(set_folder)}: {len(benchmarks.png_files(set_folder))} {name} HR images (PNG)")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.source == benchmarks.NAME:
        fetch_benchmarks(args)
        return
    if args.train < 1 or args.test < 1:
        raise util.UserError(f"--train {args.train} --test {args.test}: both must be at least 1")
    if args.folder is not None:
        if args.source:
            raise util.UserError(f"give either a source ({args.source}) or --folder, not both")
        name = args.name or folder.dataset_name(args.folder)
        reserved = {*SOURCES, "raw", "downloads", benchmarks.NAME, benchmarks.FOLDER}
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name in reserved:
            raise util.UserError(f"--name {name!r}: use letters, digits, '.', '_', '-', and not a source's name")
        images = folder.find_images(args.folder, args.url)
    else:
        if args.name:
            raise util.UserError("--name only applies to --folder; a named source writes datasets/<source>/")
        name = args.source or SOURCE
        images = SOURCES[name].find_images(args.out, args.url)

    dest = args.out / name
    counts = {"train": args.train, "test": args.test}
    settings = pairs.dataset_settings(name, images, counts, args.seed)
    if pairs.is_up_to_date(dest, settings):
        print(f"{_shown(dest)}: up to date (seed {args.seed}, {args.train}/{args.test})")
        return
    started = time.monotonic()
    pairs.write_dataset(dest, images, settings)
    took = time.monotonic() - started
    print(f"{_shown(dest)}: wrote {args.train} train / {args.test} test patches (seed {args.seed}) in {took:.0f} s")


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
