"""Mars surface images of the Curiosity rover (Wagstaff et al., Zenodo record 1049137).

The archive splits its images by sol (Martian day) in ``*-calibrated-shuffled.txt``
files of "calibrated/NAME.JPG label" lines: train patches come from the train and
val lists, test patches only from the test list (the latest sols). Listed files
that are missing count as unreadable; most images are about 256x192 px.
"""

from __future__ import annotations

from pathlib import Path

import util
from download_module import fetch
from download_module.pairs import HRImage, SourceImages

NAME = "mars"
ARCHIVE = "msl-images.zip"
URL = "https://zenodo.org/record/1049137/files/msl-images.zip"
SPLIT_FILES = {"train": ("train", "val"), "test": ("test",)}


def _listed(root: Path, lists: tuple[str, ...]) -> list[HRImage]:
    images = []
    for name in lists:
        split_file = root / f"{name}-calibrated-shuffled.txt"
        if not split_file.exists():
            raise util.UserError(f"{split_file}: missing from the archive; delete {root} and the archive, run again")
        for line in split_file.read_text().splitlines():
            if line.strip():
                relative = line.split()[0]
                path = root / relative
                if not path.resolve().is_relative_to(root.resolve()):
                    raise util.UserError(
                        f"{split_file}: lists {relative!r}, outside the archive's folder; is it Zenodo's archive?"
                    )
                images.append(HRImage(path, relative))
    return sorted(images, key=lambda image: image.name)


def find_images(out: Path, url: str | None = None) -> SourceImages:
    archive = out / "downloads" / ARCHIVE
    raw = fetch.download_and_extract(fetch.archive_url(url, URL, ARCHIVE), archive, out / "raw" / NAME)
    found = sorted(raw.rglob("test-calibrated-shuffled.txt"))
    if not found:
        raise util.UserError(f"{archive}: no test-calibrated-shuffled.txt inside; is it Zenodo's msl-images.zip?")
    root = found[0].parent
    return SourceImages(
        train=_listed(root, SPLIT_FILES["train"]),
        test=_listed(root, SPLIT_FILES["test"]),
        split_rule="the archive's sol-based split: train = train + val lists, test = test list",
        origin=url or URL,
    )
