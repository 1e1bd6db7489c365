"""DIV2K (Agustsson & Timofte, 2017): train patches from the 800 train images, test from the 100 valid."""

from __future__ import annotations

from pathlib import Path

import util
from download_module import fetch
from download_module.pairs import HRImage, SourceImages

NAME = "div2k"
URLS = {
    "DIV2K_train_HR.zip": "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
    "DIV2K_valid_HR.zip": "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
}


def _images(out: Path, url: str | None, archive: str) -> list[HRImage]:
    path = out / "downloads" / archive
    root = fetch.download_and_extract(fetch.archive_url(url, URLS[archive], archive), path, out / "raw" / NAME)
    folder = root / Path(archive).stem  # the archive holds one folder named like it
    if not folder.is_dir():
        raise util.UserError(f"{path}: no folder {folder.name}/ inside; is it the official DIV2K archive?")
    return [HRImage(p, p.relative_to(root).as_posix()) for p in util.list_images(folder)]


def find_images(out: Path, url: str | None = None) -> SourceImages:
    if url and url.lower().endswith(".zip"):
        raise util.UserError("div2k: --url must be the folder URL holding both DIV2K_*_HR.zip, not one archive")
    return SourceImages(
        train=_images(out, url, "DIV2K_train_HR.zip"),
        test=_images(out, url, "DIV2K_valid_HR.zip"),
        split_rule="DIV2K's own: train = DIV2K_train_HR, test = DIV2K_valid_HR",
        origin=url or "https://data.vision.ee.ethz.ch/cvl/DIV2K/",
    )
