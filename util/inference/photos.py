"""Enhancing photo files: images or folders in, PNGs of the same kind out (enhance.py, --role predict).

The model says what it does in its SuiteInfo (task, scale, input kind), so any model
of the suite works. Each photo goes through ``util.inference.tiles.enhance_array`` (tiles of
bounded memory) and comes back as it went in (``util.io.images.read_photo``/``write_png``).
Existing files are never replaced without ``overwrite``, an input never, and each
output appears at once, complete (written atomically), saying in its text chunks that it is
a model's output (util.io.provenance).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from PIL import Image

from util.io import kinds
from util.io.files import UserError, atomic_path
from util.io.images import ImageError, read_photo, write_png
from util.io.provenance import model_provenance


def find_inputs(inputs: list[Path], out: Path | None = None) -> dict[str, list[tuple[Path, Path | None]]]:
    """Every file to enhance as ``(path, folder given)``, by kind: ``{"photo": [...], "raster": [...]}``.

    The kind is util.io.kinds' one rule. A file given is a raster or else a photo (the photo reader
    names a file it cannot read); a folder gives the photos and rasters below it, hidden files,
    files of neither kind and, when the output folder ``out`` lies inside it, the files below
    ``out`` (an earlier run's outputs) left out. A file found twice is a UserError.
    """
    found = {kind: [] for kind in kinds.KINDS}
    seen = {}
    outputs = out.resolve() if out is not None else None
    for item in inputs:
        if item.is_dir():
            files = kinds.folder_files(item)
            if outputs is not None and outputs != item.resolve():
                files = {k: [p for p in paths if outputs not in p.resolve().parents] for k, paths in files.items()}
            if not any(files.values()):
                raise UserError(
                    f"{item}: no photos or rasters in this folder; give image or raster files, or a folder of them"
                )
            pairs = {kind: [(path, item) for path in files[kind]] for kind in kinds.KINDS}
        else:
            pairs = {kinds.RASTER if kinds.file_kind(item) == kinds.RASTER else kinds.PHOTO: [(item, None)]}
        for kind, found_here in pairs.items():
            for path, _ in found_here:
                if path.resolve() in seen:
                    raise UserError(
                        f"{path}: among the inputs twice ({seen[path.resolve()]} and {item}); give each file or "
                        "folder once"
                    )
                seen[path.resolve()] = item
            found[kind] += found_here
    return found


def check_photo_model(info: dict, model_path: Path, photo: Path) -> None:
    """A one-line UserError when the model is a raster model, which cannot take a photo."""
    if info.get("data_kind", kinds.PHOTO) == kinds.RASTER:
        raise UserError(
            f"{model_path}: a raster model (one band in data units, e.g. metres), and {photo} is a photo; give a "
            "photo model (assets/models/sr4.keras, or one trained on photos) or leave out --model"
        )


def without_dot_dot(path: Path) -> Path:
    """``path`` with its ``..`` resolved (symbolic links followed), else ``path`` as given.

    ``a/new/../x.png`` names ``a/x.png``, but while ``a/new`` does not exist the system says the
    file does not exist either, and writing it would first make ``a/new``.
    """
    return path.resolve() if ".." in path.parts else path


def check_replaceable(path: Path) -> None:
    """A UserError when ``path`` is a folder or exists read-only (its owner marks it to be kept; rename never asks)."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a file it could replace; give --out elsewhere")
    if path.exists() and not path.stat().st_mode & stat.S_IWUSR:
        raise UserError(f"{path}: exists read-only; make it writable (chmod u+w) to replace it, or give --out another")


def plan_outputs(
    found, out: Path | None, suffix: str, overwrite: bool, skip_existing: bool = False
) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: ``<stem><suffix>.png`` beside the input, in ``out``, or ``out`` itself.

    A folder's images go to ``out`` or to ``<folder><suffix>/``, keeping sub-folders. With
    ``skip_existing``, inputs whose output exists are left out (a batch resumed after a failure).
    """
    out = without_dot_dot(out) if out is not None else None
    single_file = len(found) == 1 and found[0][1] is None
    out_is_file = out is not None and out.suffix.lower() == ".png" and not out.is_dir()
    if out_is_file and not single_file:
        raise UserError(f"--out {out} names one file but there are {len(found)} images; give a folder")
    pairs = []
    for path, folder in found:
        name = f"{path.stem}{suffix}.png"
        if folder is not None:
            base = folder if folder.name else folder.resolve()  # `.` has no name to add the suffix to
            out_folder = out or base.with_name(base.name + suffix)
            pairs.append((path, out_folder / path.relative_to(folder).with_name(name)))
        else:
            pairs.append((path, out if out_is_file else (out or path.parent) / name))
    inputs = {path.resolve() for path, _ in found}
    outputs = set()
    for _, target in pairs:
        if target.resolve() in inputs:
            raise UserError(f"{target}: is an input image; never overwritten, give --out elsewhere")
        if target.resolve() in outputs:
            raise UserError(f"{target}: two inputs would give this same output; rename one or use --out")
        outputs.add(target.resolve())
        if target.exists() and not overwrite and not skip_existing:
            raise UserError(
                f"{target}: exists; give --overwrite to replace it, --skip-existing to keep it, or --out elsewhere"
            )
        if overwrite:
            check_replaceable(target)
    if skip_existing and not overwrite:
        pairs = [(source, target) for source, target in pairs if not target.exists()]
    return pairs


def check_writable(pairs) -> None:
    """A UserError naming the first output folder that cannot be created or written, before any work."""
    for folder in sorted({target.parent for _, target in pairs}):
        existing = folder
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{folder}: cannot write there ({existing} is not a writable folder); give --out elsewhere")


def check_tiling(tile: int | None, overlap: int | None) -> None:
    """A one-line UserError for a tile side below 1 or a negative overlap (``None``: the defaults), before any work.

    Shared by photos and rasters (enhance.py --tile/--overlap); it imports no TensorFlow.
    """
    if tile is not None and tile < 1:
        raise UserError(f"--tile {tile}: give a tile side of at least 1 input pixel (or leave it out: the default)")
    if overlap is not None and overlap < 0:
        raise UserError(f"--overlap {overlap}: give 0 or more input pixels")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_output_size(source: Path, scale: int, limit: int | None) -> None:
    """A UserError when the output of ``source`` at ``scale`` cannot fit in ``limit`` bytes (header only)."""
    try:
        with Image.open(source) as img:
            width, height = img.size
            channels = len(img.getbands())
            sample = 2 if img.mode.startswith("I") else 1
    except Exception:  # unreadable files are reported when their turn comes
        return
    needed = width * height * scale * scale * channels * sample
    if limit is not None and needed > limit:
        raise UserError(
            f"{source}: its x{scale} output ({width * scale}x{height * scale}) needs {needed / 2**30:.1f} GiB, more "
            f"than the {limit / 2**30:.1f} GiB of memory available; split the image into parts first"
        )


def output_suffix(info: dict) -> str:
    """``_x4`` for a x4 model, ``_deblurred`` for a deblurrer (defocus tasks), ``_denoised`` for a denoiser."""
    if info["scale"] > 1:
        return f"_x{info['scale']}"
    # The deblurrer also removes weak noise, but its output must not take the denoiser's name.
    return "_deblurred" if str(info["task"]).startswith("defocus") else "_denoised"


def enhance_photos(
    inputs: list[Path],
    model_path: Path,
    out: Path | None = None,
    overwrite: bool = False,
    tile: int | None = None,
    overlap: int | None = None,
    ensemble: bool = False,
    progress: bool = True,
    skip_existing: bool = False,
    rasters_elsewhere: bool = False,
    runtime: str = "keras",
    runtime_cache: Path | None = None,
    precision: str = "float32",
) -> list[Path]:
    """Enhance every image of ``inputs`` (files or folders) with the model at ``model_path``; return the outputs.

    ``tile``, ``overlap`` and ``ensemble`` as ``util.inference.tiles.enhance_array``. The arguments,
    the output folders and the outputs' sizes are checked before any work. A file that cannot
    be read is reported in one line on stderr and the others go on; the batch then ends with a
    UserError that counts the failures (one image alone fails with its own error). Rasters among
    the inputs (util.io.kinds) are refused, as the photo model cannot take them, or left out with
    ``rasters_elsewhere`` (the caller enhances them with a raster model). ``runtime``,
    ``runtime_cache`` and ``precision``: what runs the model (util.inference.runtimes.open_model).
    """
    check_tiling(tile, overlap)
    found = find_inputs(inputs, out)
    if found[kinds.RASTER] and not rasters_elsewhere:
        rasters = [path for path, _ in found[kinds.RASTER]]
        raise UserError(
            f"{kinds.examples(rasters)}: {len(rasters)} raster(s) in data units, which a photo model cannot enhance; "
            "give them to enhance.py (it takes a raster model) or remove them from the inputs"
        )
    found = found[kinds.PHOTO]
    if not found:
        return []
    # TensorFlow takes seconds to import (and logs to stderr): only once the inputs are found.
    from util.inference.runtimes import open_model
    from util.inference.tiles import default_tile, enhance_array

    model, info = open_model(
        model_path, runtime, runtime_cache, lambda info: check_photo_model(info, model_path, found[0][0]), precision
    )
    provenance = model_provenance(model_path, info)
    if overlap is not None and overlap >= (tile or default_tile(info)):
        raise UserError(f"--overlap {overlap}: must be smaller than the tile ({tile or default_tile(info)} px)")
    pairs = plan_outputs(found, out, output_suffix(info), overwrite, skip_existing)
    check_writable(pairs)
    limit = available_memory()
    for source, _ in pairs:
        check_output_size(source, info["scale"], limit)
    written, failed = [], []
    for source, target in pairs:
        try:
            photo = read_photo(source)
        except ImageError as err:
            if len(pairs) == 1:
                raise
            print(f"error: {err}", file=sys.stderr)
            failed.append(source)
            continue
        pixels = enhance_array(model, info, photo.pixels, tile, overlap, progress=progress, ensemble=ensemble)
        try:
            with atomic_path(target) as tmp:
                write_png(tmp, pixels, photo.icc_profile, provenance.for_input(source))
        except OSError as err:  # the disk, not the input: the images after it would fail alike
            raise UserError(
                f"{target}: cannot be written ({err.strerror or err}); "
                "give --out elsewhere (a writable folder with free space)"
            ) from None
        print(f"{source} -> {target} ({pixels.shape[1]}x{pixels.shape[0]})")
        written.append(target)
    if failed:
        raise UserError(
            f"{len(failed)} of {len(pairs)} images could not be read (each named above); the other {len(written)} "
            "are written: fix or remove those files and run again with --skip-existing"
        )
    return written
