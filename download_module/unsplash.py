"""Unsplash photographs of the Kaggle data set quadeer15sh/image-super-resolution-from-unsplash.

Fetched with ``kagglehub`` into ``<out>/raw/unsplash/kaggle/`` (credentials needed;
a copy already in kagglehub's own cache is used in place, without network), or,
with ``--url``, from a zip mirror of the same layout into ``<out>/raw/unsplash/mirror/``.
Only the ``high res`` folder is used (all images when the layout has none); the
split is by image, ``pairs.split_by_name`` (10% to test).
"""

from __future__ import annotations

from pathlib import Path

import util
from download_module import fetch
from download_module.pairs import HRImage, SourceImages

NAME = "unsplash"
HANDLE = "quadeer15sh/image-super-resolution-from-unsplash"
ARCHIVE = "image-super-resolution-from-unsplash.zip"  # the name Kaggle gives the download
HR_FOLDERS = ("high res", "high_res", "highres", "hr")
NO_CREDENTIALS = (
    "unsplash: no Kaggle credentials; create an API token on kaggle.com (Settings > API) and set "
    "KAGGLE_USERNAME and KAGGLE_KEY, or save it as ~/.kaggle/kaggle.json, or give --url of a zip mirror"
)


def _kagglehub_cached() -> Path | None:
    """The newest complete version of the data set in kagglehub's own cache, if any."""
    from kagglehub.config import get_cache_folder

    base = Path(get_cache_folder()) / "datasets" / HANDLE
    versions = [p for p in (base / "versions").glob("*") if p.name.isdigit() and (base / f"{p.name}.complete").exists()]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def _from_kaggle(out: Path) -> Path:
    target = out / "raw" / NAME / "kaggle"
    marker = target.parent / ".kaggle.complete"
    if marker.exists():
        return target
    cached = _kagglehub_cached()
    if cached:
        return cached
    import kagglehub
    from kagglehub.config import get_kaggle_credentials

    try:
        credentials = get_kaggle_credentials()
    except ValueError as err:
        raise util.UserError(f"unsplash: {err}; fix or delete that file") from None
    if credentials is None:
        raise util.UserError(NO_CREDENTIALS)
    try:
        kagglehub.dataset_download(HANDLE, output_dir=str(target), force_download=target.exists())
    except Exception as err:  # kagglehub raises many kinds (HTTP, auth, disk): all mean "not downloaded"
        message = f"unsplash: kagglehub could not download {HANDLE} ({err}); check the credentials and the network"
        raise util.UserError(message) from err
    marker.write_text(HANDLE + "\n")
    return target


def _high_res(root: Path) -> tuple[Path, str]:
    folders = sorted(p for p in root.rglob("*") if p.is_dir() and p.name.lower() in HR_FOLDERS)
    if folders:
        return folders[0], f"the '{folders[0].name}' folder"
    return root, "all images (no 'high res' folder found)"


def find_images(out: Path, url: str | None = None) -> SourceImages:
    if url:
        archive_url = fetch.archive_url(url, url, ARCHIVE)
        root = fetch.download_and_extract(archive_url, out / "downloads" / ARCHIVE, out / "raw" / NAME / "mirror")
    else:
        root = _from_kaggle(out)
    folder, which = _high_res(root)
    images = [HRImage(p, p.relative_to(root).as_posix()) for p in util.list_images(folder)]
    return SourceImages(train=images, test=None, split_rule=which, origin=url or f"kaggle:{HANDLE}")
