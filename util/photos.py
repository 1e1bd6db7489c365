"""Enhancing photo files: images or folders in, PNGs of the same kind out (enhance.py, --role predict).

The model says what it does in its SuiteInfo (task, scale, input kind), so any model
of the suite works. Each photo goes through ``util.inference.enhance_array`` (tiles of
bounded memory) and comes back as it went in (``util.images.read_photo``/``write_png``).
Existing files are never replaced without ``overwrite``, an input never, and each
output appears at once, complete (written atomically).
"""

from __future__ import annotations

from pathlib import Path

from util.files import UserError, atomic_path
from util.images import check_photo, list_images, read_photo, write_png


def find_inputs(inputs: list[Path]) -> list[tuple[Path, Path | None]]:
    """Every image to enhance as ``(path, folder given)``; each header checked, so bad files fail first."""
    found = []
    for item in inputs:
        if item.is_dir():
            images = list_images(item)
            if not images:
                raise UserError(f"{item}: no images in this folder; give image files or a folder of them")
            found += [(path, item) for path in images]
        else:
            found.append((item, None))
    for path, _ in found:
        check_photo(path)
    return found


def plan_outputs(found, out: Path | None, suffix: str, overwrite: bool) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: ``<stem><suffix>.png`` beside the input, in ``out``, or ``out`` itself.

    A folder's images go to ``out`` or to ``<folder><suffix>/``, keeping sub-folders.
    """
    single_file = len(found) == 1 and found[0][1] is None
    out_is_file = out is not None and out.suffix.lower() == ".png" and not out.is_dir()
    if out_is_file and not single_file:
        raise UserError(f"--out {out} names one file but there are {len(found)} images; give a folder")
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
            raise UserError(f"{target}: is an input image; never overwritten, give --out elsewhere")
        if target.resolve() in outputs:
            raise UserError(f"{target}: two inputs would give this same output; rename one or use --out")
        outputs.add(target.resolve())
        if target.exists() and not overwrite:
            raise UserError(f"{target}: exists; give --overwrite to replace it, or --out elsewhere")
    return pairs


def output_suffix(info: dict) -> str:
    """``_x4`` for a x4 model, ``_denoised`` for a denoiser."""
    return f"_x{info['scale']}" if info["scale"] > 1 else "_denoised"


def enhance_photos(
    inputs: list[Path],
    model_path: Path,
    out: Path | None = None,
    overwrite: bool = False,
    tile: int | None = None,
    overlap: int | None = None,
    ensemble: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Enhance every image of ``inputs`` (files or folders) with the model at ``model_path``; return the outputs.

    ``tile``, ``overlap`` and ``ensemble`` as ``util.inference.enhance_array``.
    """
    found = find_inputs(inputs)
    # TensorFlow takes seconds to import (and logs to stderr): only once the inputs are checked.
    from util.inference import enhance_array
    from util.models import load_model

    model, info = load_model(model_path)
    written = []
    for source, target in plan_outputs(found, out, output_suffix(info), overwrite):
        photo = read_photo(source)
        pixels = enhance_array(model, info, photo.pixels, tile, overlap, progress=progress, ensemble=ensemble)
        with atomic_path(target) as tmp:
            write_png(tmp, pixels, photo.icc_profile)
        print(f"{source} -> {target} ({pixels.shape[1]}x{pixels.shape[0]})")
        written.append(target)
    return written
