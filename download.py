"""Turn a source of images or rasters into HR/LR training pairs: ``datasets/<source>/*.npy``.

    python3 download.py                          # builtin images, no network
    python3 download.py mars                     # Curiosity rover images from Zenodo
    python3 download.py div2k --train 1000 --test 100
    python3 download.py --folder ~/photos        # -> datasets/folder-photos/
    python3 download.py benchmarks               # Set5, Set14, BSD100, Urban100 -> datasets/benchmark/<set>/*.png
    python3 download.py cbsd68                   # CBSD68 (colour denoising) -> datasets/benchmark/CBSD68/*.png
    python3 download.py dem                      # matplotlib's two DEMs, no network (float32 metres)
    python3 download.py copernicus --bbox -106,39,-104,41   # Copernicus DEM GLO-30 tiles
    python3 download.py --folder ~/dems --patch 32          # GeoTIFF, .asc, .npy/.npz, .nc rasters
    python3 download.py climate                  # iris-sample-data's A1B air temperature, split in time
    python3 download.py --folder ~/era5          # stacks (NetCDF with time, GRIB, GeoTIFF with band times)

Writes ``<out>/<dataset>/{train,test}_{hr,sr2,sr4,sr8,noise64,noise64blur,x4noise64}.npy``
(uint8 NHWC RGB) and ``manifest.json`` (see download_module/pairs.py for the
degradations). Archives are kept in ``<out>/downloads/`` and extracted into
``<out>/raw/<source>/``, so a second run needs no network; when the manifest
already matches the settings (source, counts, seed, degradations, the image files),
nothing is rewritten. Progress bars are drawn on a terminal only.

Rasters (``dem``, ``copernicus``, a folder of rasters) give float32 patches in the data's
units with masks and cell sizes, split in space (download_module/raster_pairs.py); stacks
(``climate``, a folder of stacks: grids at several time steps) the same files split in time
(download_module/stack_pairs.py).

``benchmarks`` is not a patch data set: it writes only the HR images of the four
evaluation sets, ``<out>/benchmark/<set>/*.png`` (download_module/benchmarks.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
from pathlib import Path

import util
from download_module import (
    RASTER_SOURCES,
    SOURCE_KINDS,
    SOURCES,
    STACK_SOURCES,
    benchmarks,
    cbsd68,
    climate,
    copernicus,
    folder,
    pairs,
    raster_pairs,
    stack_pairs,
    writer,
)
from util.io import kinds

# ---- Constants: edit these -------------------------------------------------
SOURCE = "builtin"  # builtin | div2k | mars | unsplash | dem | copernicus | climate (or give --folder PATH)
TRAIN_PATCHES = 10_000  # the prototype's count
TEST_PATCHES = 1_000
RASTER_TRAIN_PATCHES = raster_pairs.TRAIN_PATCHES  # 2000: rasters are smaller than photo collections
RASTER_TEST_PATCHES = raster_pairs.TEST_PATCHES  # a maximum: all test tiles of the test regions up to it
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

raster sources (float32 in data units; split in space: per raster a test band, 25% of its longer
side at the far end, tiled by test patches; training crops lie entirely outside it):
  dem        matplotlib's jacksboro_fault_dem.npz (344x403, ~92x74 m cells) and topobathy.npz, no network
  copernicus Copernicus DEM GLO-30 (--resolution 90: GLO-90) COG tiles from the AWS open-data bucket, by
             --tiles N40_00_W106_00,... or --bbox W,S,E,N (> 50 tiles need --max-tiles); sea has no tile
  --folder   rasters (.asc .npy .npz .nc; .tif georeferenced, float, or one band not 8-bit) are used as
             rasters when every file is one; photos and rasters together need --kind photo|raster
  output: {train,test}_{hr,sr2,sr4,sr8}.npy float32 (N, P, P, 1), _mask.npy uint8 (1 = valid cell),
  _cell.npy (dy, dx) in metres, test_regions/<raster>.tif, manifest.json (value_scale, split_rule);
  --train defaults to 2000, --test is a maximum (1000); a patch with > 25% nodata cells is skipped.

stack sources (a grid at several time steps; the raster files above, split in time: per stack its
last 20% of steps to test, the steps before to train; --patch defaults to 16):
  climate    iris-sample-data (Met Office), no network: --file A1B_north_america.nc (default: yearly
             air temperature 1860-2099, 37x49 cells), E1_north_america.nc (another scenario),
             ostia_monthly.nc (monthly sea surface temperature, land masked); --test-file F holds F out
             too (test patches from F's last steps only, training from the other files' first steps)
  --folder   NetCDF variables with a time dimension, GRIB files, GeoTIFFs whose bands carry times
             (util/io/stacks.py); a folder of stacks and single grids needs --kind stack (the stacks)
             or --kind raster (every file read as one grid: its --band, or its only step)
  output: the raster files without test_regions; manifest.json also gives each stack's steps and
  times (ISO 8601, its calendar) of each split.

benchmarks (evaluation sets, no patches; --train/--test/--seed/--name/--folder do not apply):
  the HR images of Set5 (5), Set14 (14), BSD100 (100, B100 in the archive) and Urban100 (100) from
  EDSR's benchmark.tar (about 250 MB, cv.snu.ac.kr, md5-checked) -> <out>/benchmark/<set>/*.png, for
  evaluate.py --data; the LR images of the archive are not kept. A set folder already complete is
  left as it is; benchmark.tar stays in <out>/downloads/ (delete it once the sets are there).

cbsd68 (the colour denoising test set, for benchmark.py restoration --task noiseS; the same flags as benchmarks):
  the 68 images of CBSD68 from Berkeley's BSDS300-images.tgz (about 22 MB) -> <out>/benchmark/CBSD68/*.png
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
        choices=sorted([*SOURCE_KINDS, benchmarks.NAME, cbsd68.NAME]),
        help=f"where the HR images come from (default {SOURCE}: scikit-image's bundled photographs, no network); "
        f"{benchmarks.NAME}: the evaluation sets instead of patches; dem, copernicus: rasters, climate: stacks (below)",
    )
    parser.add_argument("--folder", type=Path, help="use every image below this folder instead of a named source")
    parser.add_argument(
        "--kind",
        choices=("auto", kinds.PHOTO, kinds.RASTER, kinds.STACK),
        help="what --folder holds (default auto: each file's kind by util/io/kinds.py, stacks by util/io/stacks.py; "
        "a folder of several kinds needs --kind, which leaves the others out)",
    )
    parser.add_argument(
        "--name",
        help="dataset name for --folder (default folder-<basename>), copernicus or climate; training scripts read "
        "datasets/<name>/",
    )
    parser.add_argument(
        "--train", type=int, help=f"number of train patches ({TRAIN_PATCHES}; rasters {RASTER_TRAIN_PATCHES})"
    )
    parser.add_argument(
        "--test",
        type=int,
        help=f"number of test patches ({TEST_PATCHES}; rasters: at most {RASTER_TEST_PATCHES} of the test tiles)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the crops and the noise (%(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: datasets/ next to download.py)")
    parser.add_argument(
        "--url",
        help="mirror: base URL of a folder holding the source's archives under their official names "
        "(DIV2K_train_HR.zip and DIV2K_valid_HR.zip, msl-images.zip, image-super-resolution-from-unsplash.zip, "
        "benchmark.tar); for mars, unsplash and benchmarks the archive's own URL (ending in .zip, .tar) works too; "
        "copernicus: <URL>/<tile>/<tile>.tif",
    )
    rasters = parser.add_argument_group("rasters and stacks (dem, copernicus, climate, a --folder of them)")
    rasters.add_argument(
        "--patch",
        type=int,
        help=f"patch side in cells (default {raster_pairs.PATCH}, 32 for small grids; stacks {stack_pairs.PATCH})",
    )
    rasters.add_argument(
        "--lr",
        choices=raster_pairs.LR_METHODS,
        help="how LR is made: block-mean of the valid cells (default: what a coarser grid measures) or MATLAB bicubic",
    )
    rasters.add_argument("--nodata", type=float, help="nodata value of files that declare none (e.g. -9999)")
    rasters.add_argument("--band", type=int, help="band of multi-band files (1 = first; not stacks: a band is a step)")
    rasters.add_argument("--variable", help="variable of NetCDF files (e.g. elevation)")
    rasters.add_argument("--tiles", help="copernicus: tiles by south-west corner, e.g. N40_00_W106_00,N41_00_W106_00")
    rasters.add_argument("--bbox", help="copernicus: W,S,E,N in degrees; the whole-degree tiles covering it")
    rasters.add_argument(
        "--resolution", type=int, choices=sorted(copernicus.RESOLUTIONS), help="copernicus: 30 or 90 m"
    )
    rasters.add_argument(
        "--max-tiles", type=int, help=f"copernicus: most tiles fetched (a --bbox over {copernicus.MAX_TILES} needs it)"
    )
    stacks = parser.add_argument_group("stacks (climate, a --folder of stacks)")
    stacks.add_argument(
        "--file", help=f"climate: the sample file(s), comma-separated: {', '.join(climate.FILES)} (default the first)"
    )
    stacks.add_argument(
        "--level",
        help="the level of a (time, level, y, x) variable: a value of its level coordinate (850 where it is in hPa; "
        "GRIB: 85000 for 850 hPa)",
    )
    stacks.add_argument(
        "--test-file",
        help="hold these stacks out (comma-separated names): their last 20%% of steps are the test patches, the "
        "other stacks' first 80%% the training patches",
    )
    args = parser.parse_args(_joined_bbox(sys.argv[1:] if argv is None else list(argv)))
    kind = _known_kind(args)
    if kind is not None:
        _fill_counts(args, kind)
    return args


def _joined_bbox(argv: list[str]) -> list[str]:
    """``--bbox -106,39,-104,41`` as ``--bbox=-106,...``: argparse takes a value starting with '-' for a flag."""
    joined = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "--bbox" and arg.startswith("-") and joined[-1] == "--bbox":
            joined[-1] = f"--bbox={arg}"
        else:
            joined.append(arg)
    return joined


RASTER_FLAGS = ("patch", "lr", "nodata", "band", "variable")
COPERNICUS_FLAGS = ("tiles", "bbox", "resolution", "max_tiles")
STACK_FLAGS = ("test_file", "level")
CLIMATE_FLAGS = ("file",)
SOURCE_FLAGS = {copernicus.NAME: COPERNICUS_FLAGS, climate.NAME: CLIMATE_FLAGS}  # flags of one source only
COUNTS = {  # default (--train, --test) of each kind of data set
    kinds.PHOTO: (TRAIN_PATCHES, TEST_PATCHES),
    kinds.RASTER: (RASTER_TRAIN_PATCHES, RASTER_TEST_PATCHES),
    kinds.STACK: (RASTER_TRAIN_PATCHES, RASTER_TEST_PATCHES),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _known_kind(args: argparse.Namespace) -> str | None:
    """The kind of data set (photo, raster, stack) when the command line alone says it; None for a --folder on auto."""
    if args.folder is None:
        return SOURCE_KINDS.get(args.source or SOURCE, kinds.PHOTO)
    return None if args.kind in (None, "auto") else args.kind


def _fill_counts(args: argparse.Namespace, kind: str) -> None:
    """The default --train/--test of the data's kind, where they were not given."""
    train, test = COUNTS[kind]
    args.train = train if args.train is None else args.train
    args.test = test if args.test is None else args.test


def check_flags(args: argparse.Namespace, kind: str, what: str) -> None:
    """One-line UserError for raster flags given to photos, stack flags to others, a source's flags to another."""
    source_flags = [dest for flags in SOURCE_FLAGS.values() for dest in flags]
    given = [dest for dest in (*RASTER_FLAGS, *STACK_FLAGS, *source_flags) if getattr(args, dest) is not None]
    if kind == kinds.PHOTO and given:
        flags = " / ".join(map(_flag, given))
        raise util.UserError(
            f"{flags}: raster settings, and {what} is photos; give dem, copernicus, climate or a --folder of rasters "
            "(--kind raster), or drop them"
        )
    for source, flags in SOURCE_FLAGS.items():
        if (misplaced := [dest for dest in flags if dest in given]) and args.source != source:
            raise util.UserError(f"{' / '.join(map(_flag, misplaced))}: only for {source}, not {what}; drop them")
    if kind != kinds.STACK and (misplaced := [dest for dest in STACK_FLAGS if dest in given]):
        raise util.UserError(f"{' / '.join(map(_flag, misplaced))}: only for stacks, and {what} is {kind}s; drop it")
    if kind == kinds.STACK and args.band is not None:
        single = ", or give --kind raster to read one band of each file as a single grid" if args.folder else ""
        raise util.UserError(f"--band {args.band}: {what} is stacks, whose bands are time steps; drop it{single}")


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it lies below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def fetch_benchmarks(args: argparse.Namespace) -> None:
    """``download.py benchmarks`` (and ``cbsd68``): the HR images of the evaluation sets, no patches."""
    given = [
        flag
        for flag, value, default in (
            ("--train", args.train, TRAIN_PATCHES),
            ("--test", args.test, TEST_PATCHES),
            ("--seed", args.seed, SEED),
            ("--name", args.name, None),
            ("--folder", args.folder, None),
            ("--kind", args.kind, None),
            *(
                (_flag(dest), getattr(args, dest), None)
                for dest in (*RASTER_FLAGS, *COPERNICUS_FLAGS, *STACK_FLAGS, *CLIMATE_FLAGS)
            ),
        )
        if value is not None and value != default
    ]
    if given:
        raise util.UserError(
            f"{args.source} takes no {' / '.join(given)}: it fetches the evaluation sets whole "
            f"into <out>/{benchmarks.FOLDER}/ (only --out and --url apply)"
        )
    writer.check_writable(args.out, "--out")
    if args.source == cbsd68.NAME:
        written = cbsd68.fetch_set(args.out, args.url)
        print(
            f"{_shown(cbsd68.set_folder(args.out))}: {'wrote' if written else 'up to date,'} {len(cbsd68.IDS)} images"
        )
        return
    fetched = benchmarks.fetch_sets(args.out, args.url)
    dest = args.out / benchmarks.FOLDER
    if fetched:
        print(f"{_shown(dest)}: wrote {', '.join(fetched)} (HR images only)")
    else:
        print(f"{_shown(dest)}: up to date, nothing to fetch")
    for name, set_folder in benchmarks.set_folders(args.out).items():
        print(f"  {_shown(set_folder)}: {len(benchmarks.png_files(set_folder))} {name} HR images (PNG)")


def dataset_name(args: argparse.Namespace) -> str:
    """``--name``, ``folder-<basename>`` for a folder, else the source's name; a UserError for a bad one."""
    if args.folder is None and args.name and args.source not in (copernicus.NAME, climate.NAME):
        raise util.UserError(
            "--name only applies to --folder, copernicus and climate; a named source writes datasets/<source>/"
        )
    if args.folder is None and not args.name:
        return args.source or SOURCE
    name = args.name or folder.dataset_name(args.folder)
    reserved = {*SOURCE_KINDS, "raw", "downloads", benchmarks.NAME, benchmarks.FOLDER, cbsd68.NAME}
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name in reserved:
        raise util.UserError(f"--name {name!r}: use letters, digits, '.', '_', '-', and not a source's name")
    return name


# Which files of a folder each --kind takes: a single grid is a raster; a stack is read as one grid by
# --kind raster (its --band, or its only step), as a stack by --kind stack.
TAKES = {kinds.PHOTO: (kinds.PHOTO,), kinds.RASTER: (kinds.RASTER, kinds.STACK), kinds.STACK: (kinds.STACK,)}


def folder_kind(args: argparse.Namespace) -> tuple[str, list[Path]]:
    """(kind, its files): ``--kind``, or for auto what the folder holds: photos, single grids or stacks.

    A folder of several kinds needs --kind; the files it does not take are left out, in a note
    that counts them.
    """
    found = stack_pairs.folder_data(args.folder, args.variable)
    present = [kind for kind, files in found.items() if files]
    if args.kind in (None, "auto"):
        if len(present) > 1:
            choices = " or ".join(f"--kind {kind}" for kind in present)
            raise kinds.mixed_folder_error(
                args.folder.expanduser().resolve(),
                found,
                f"give {choices} to use the files of one kind, or put them in separate folders",
            )
        if not present:
            raise util.UserError(
                f"{args.folder}: no image files (.png, .jpg, ...) or rasters (.tif, .asc, .npy, .npz, .nc, .grib) in "
                "this folder tree, hidden files left out; give a folder of images or rasters"
            )
        return present[0], found[present[0]]
    taken = TAKES[args.kind]
    left = {kind: files for kind, files in found.items() if kind not in taken and files}
    if left:
        listed = " and ".join(
            f"{len(files)} {kind}(s) ({kinds.examples(files, args.folder.expanduser().resolve())})"
            for kind, files in left.items()
        )
        print(f"note: {args.folder}: --kind {args.kind}, so its {listed} are left out", file=sys.stderr)
    return args.kind, sorted(path for kind in taken for path in found[kind])


def write_photos(args: argparse.Namespace, name: str, files=None) -> None:
    """A photo source or folder -> ``<out>/<name>/``: uint8 patches and their degradations, split by image."""
    if args.folder is not None:
        images = folder.find_images(args.folder, args.url)
    else:
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


def write_rasters(args: argparse.Namespace, name: str, files=None) -> None:
    """A raster source or folder -> ``<out>/<name>/``: float32 patches in data units, split in space."""
    patch = raster_pairs.PATCH if args.patch is None else args.patch  # --patch 0 is an error, not the default
    raster_pairs.check_patch(patch)  # before anything is fetched
    if args.source == copernicus.NAME:
        rasters = copernicus.find_rasters(
            args.out, args.url, args.tiles, args.bbox, args.resolution or 30, args.max_tiles
        )
    elif args.source:
        rasters = RASTER_SOURCES[args.source].find_rasters(args.out, args.url)
    else:
        if args.url:
            raise util.UserError("--url does not apply to --folder (nothing is downloaded); drop --url")
        rasters = raster_pairs.find_folder_rasters(args.folder, files)
    dest = args.out / name
    settings = raster_pairs.dataset_settings(
        name,
        rasters,
        {"train": args.train, "test": args.test},
        args.seed,
        patch=patch,
        lr=args.lr or raster_pairs.LR_METHODS[0],
        read=raster_pairs.ReadOptions(band=args.band, variable=args.variable, nodata=args.nodata),
    )
    _write_cells(
        dest, settings, lambda: raster_pairs.write_dataset(dest, rasters, settings), raster_pairs.is_up_to_date
    )


def _listed(text: str | None) -> list[str]:
    """``"a.nc,b.nc"`` -> ``["a.nc", "b.nc"]``; None -> ``[]``."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def write_stacks(args: argparse.Namespace, name: str, files=None) -> None:
    """A stack source or folder -> ``<out>/<name>/``: float32 patches in data units, split in time."""
    patch = stack_pairs.PATCH if args.patch is None else args.patch
    raster_pairs.check_patch(patch)  # before anything is copied
    if args.source:
        stacks = STACK_SOURCES[args.source].find_stacks(args.out, args.url, _listed(args.file), _listed(args.test_file))
        held_out = stacks.held_out  # the source's names of them
    else:
        if args.url:
            raise util.UserError("--url does not apply to --folder (nothing is downloaded); drop --url")
        stacks, held_out = raster_pairs.find_folder_rasters(args.folder, files), _listed(args.test_file)
    dest = args.out / name
    settings = stack_pairs.dataset_settings(
        name,
        stacks,
        {"train": args.train, "test": args.test},
        args.seed,
        patch=patch,
        lr=args.lr or raster_pairs.LR_METHODS[0],
        read={"variable": args.variable, "nodata": args.nodata, "level": args.level},
        test_files=tuple(held_out),
    )
    write = functools.partial(stack_pairs.write_dataset, dest, stacks, settings)
    split = f"; split in time: the last {stack_pairs.TEST_FRACTION:.0%} of each stack's steps to test"
    _write_cells(dest, settings, write, stack_pairs.is_up_to_date, split)


def _write_cells(dest: Path, settings: dict, write, up_to_date, said: str = "") -> None:
    """Write a raster or stack data set by ``write()`` unless ``up_to_date(dest, settings)``; say what was done.

    ``said``: what the line of a written data set adds (e.g. its split).
    """
    patch, seed = settings["patch_size"], settings["seed"]
    if up_to_date(dest, settings):
        files = json.loads((dest / "manifest.json").read_text())["files"]
        counts = "/".join(str(files[f"{split}_hr"]["shape"][0]) for split in pairs.SPLITS)
        print(f"{_shown(dest)}: up to date (seed {seed}, {counts}, {patch}x{patch} cells)")
        return
    started = time.monotonic()
    manifest = write()
    took = time.monotonic() - started
    train, test = (manifest["files"][f"{split}_hr"]["shape"][0] for split in pairs.SPLITS)
    scales = "/".join(f"x{s}" for s in settings["scales"])
    print(
        f"{_shown(dest)}: wrote {train} train / {test} test patches of {patch}x{patch} cells ({settings['lr']} LR "
        f"{scales}; value scale {manifest['value_scale']:.3g} {manifest['units']}; seed {seed}{said}) in {took:.0f} s"
    )


WRITERS = {kinds.PHOTO: write_photos, kinds.RASTER: write_rasters, kinds.STACK: write_stacks}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.source in (benchmarks.NAME, cbsd68.NAME):
        fetch_benchmarks(args)
        return
    if args.folder is not None and args.source:
        raise util.UserError(f"give either a source ({args.source}) or --folder, not both")
    if args.kind is not None and args.folder is None:
        raise util.UserError(f"--kind {args.kind} only applies to --folder; drop it")
    name = dataset_name(args)
    kind, files = folder_kind(args) if args.folder is not None else (_known_kind(args), None)
    _fill_counts(args, kind)
    check_flags(args, kind, f"--folder {args.folder}" if args.folder is not None else name)
    if args.seed < 0:
        raise util.UserError(f"--seed {args.seed}: give 0 or a positive integer")
    if args.train < 1 or args.test < 1:
        raise util.UserError(f"--train {args.train} --test {args.test}: both must be at least 1")
    writer.check_writable(args.out, "--out")  # before anything is fetched or cut
    WRITERS[kind](args, name, files)


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
