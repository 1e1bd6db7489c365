"""Any folder tree of images (``download.py --folder PATH``); nothing is downloaded or copied.

The dataset is named ``folder-<basename of PATH>`` unless ``--name`` says otherwise.
Train and test are split by image once the images are checked, by
``pairs.split_by_name`` (10% of the usable images, at least one, to test; a
single image is split in space).
"""

from __future__ import annotations

import re
from pathlib import Path

import util
from download_module.pairs import HRImage, SourceImages
from util.io import kinds


def dataset_name(folder) -> str:
    """``folder-<basename>``, with characters other than letters, digits, ``._-`` replaced by ``-``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(folder).resolve().name).strip("-.")
    return f"folder-{base or 'root'}"


def find_images(folder, url: str | None = None) -> SourceImages:
    if url:
        raise util.UserError("--url does not apply to --folder (nothing is downloaded); drop --url")
    folder = Path(folder).expanduser().resolve()
    files = kinds.folder_files(folder)[kinds.PHOTO]  # rasters and hidden files left out (util/io/kinds.py)
    if not files:
        raise util.UserError(f"{folder}: no image files (.png, .jpg, ...) in this folder tree; give a folder of images")
    images = [HRImage(p, p.relative_to(folder).as_posix()) for p in files]
    return SourceImages(train=images, test=None, split_rule="", origin=str(folder))  # pairs splits by name
