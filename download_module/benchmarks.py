"""The standard SR benchmark sets, HR images only: Set5, Set14, BSD100 (B100) and Urban100.

    python3 download.py benchmarks     # -> datasets/benchmark/{Set5,Set14,BSD100,Urban100}/*.png

Not a patch data set: evaluate.py scores these images whole (``--data
datasets/benchmark/Set5 ...``) and makes their LR inputs itself. They come from the
EDSR project's ``benchmark.tar`` (Lim et al., 2017; about 250 MB), which holds
``benchmark/<set>/HR/*.png`` beside the bicubic inputs ``benchmark/<set>/LR_bicubic/X2..X4/``;
only the PNG files of the ``HR`` folders are kept, so an LR image never becomes a reference.
The archive is extracted into a temporary folder inside ``<out>/benchmark/`` and each
set's folder is renamed into place only once every set has its full count of images.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import util
from download_module import fetch

NAME = "benchmarks"
FOLDER = "benchmark"  # the sets go to <out>/benchmark/<set>/
ARCHIVE = "benchmark.tar"
URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"  # linked from EDSR-PyTorch's README
# The md5 published with this URL by torchSR (github.com/Coloquinte/torchSR, torchsr/datasets/benchmarks.py,
# the Set5/Set14/B100/Urban100 classes), whose download checks it through torchvision's download_and_extract_archive.
CHECKSUM = "md5:4ace41d33c2384b97e6b320cd0afd6ba"
SETS = {  # our name: (its folder in the archive, its number of HR images)
    "Set5": ("Set5", 5),
    "Set14": ("Set14", 14),
    "BSD100": ("B100", 100),
    "Urban100": ("Urban100", 100),
}


def set_folders(out: Path) -> dict[str, Path]:
    """Where each set's HR images are: ``<out>/benchmark/<set>/``."""
    return {name: Path(out) / FOLDER / name for name in SETS}


def png_files(folder: Path) -> list[Path]:
    """The PNG files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")


def missing_sets(out: Path) -> list[str]:
    """The sets whose folder is not there yet; a folder with another number of images is a UserError."""
    missing = []
    for name, folder in set_folders(out).items():
        if not folder.exists():
            missing.append(name)
            continue
        count = len(png_files(folder)) if folder.is_dir() else 0
        expected = SETS[name][1]
        if count != expected:
            raise util.UserError(
                f"{folder}: holds {count} PNG images, but {name} has {expected}; "
                "move the folder away or delete it, then run again"
            )
    return missing


def fetch_sets(out: Path, url: str | None = None) -> list[str]:
    """Fetch the sets missing from ``<out>/benchmark/``; return their names (empty: nothing to do).

    ``url``: a mirror folder holding ``benchmark.tar`` (or that archive's own URL);
    either way the archive must have the official checksum.
    """
    missing = missing_sets(out)
    if not missing:
        return []
    archive = fetch.download(fetch.archive_url(url, URL, ARCHIVE), Path(out) / "downloads" / ARCHIVE, checksum=CHECKSUM)
    dest = Path(out) / FOLDER
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=dest) as tmp:
        root = fetch.extract_tar(archive, Path(tmp) / "archive")
        staged = {name: _stage_hr_images(archive, root, Path(tmp), name) for name in missing}
        for name, folder in staged.items():  # every set checked: now the renames, each atomic
            os.replace(folder, dest / name)
    return missing


def _stage_hr_images(archive: Path, root: Path, tmp: Path, name: str) -> Path:
    """Move the PNG files of the archive's ``benchmark/<set>/HR/`` into ``tmp/<name>/``; check their count."""
    in_archive, expected = SETS[name]
    hr = root / FOLDER / in_archive / "HR"
    images = png_files(hr) if hr.is_dir() else []
    if len(images) != expected:
        raise util.UserError(
            f"{archive}: {FOLDER}/{in_archive}/HR/ holds {len(images)} PNG images, but {name} has {expected}; "
            f"is it EDSR's {ARCHIVE}? delete it and run again"
        )
    staged = tmp / name
    staged.mkdir()
    for image in images:
        os.replace(image, staged / image.name)
    return staged
