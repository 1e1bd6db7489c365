"""CBSD68, the standard colour denoising test set, from the Berkeley segmentation data set.

    python3 download.py cbsd68     # -> datasets/benchmark/CBSD68/*.png (68 images, 481x321 or 321x481)

CBSD68 is the colour version of the 68 test images Roth & Black chose from the BSDS300
test set (Martin et al., ICCV 2001), as used by the CBM3D, DnCNN, FFDNet and DRUNet tables.
They are fetched in Berkeley's own ``BSDS300-images.tgz`` (about 22 MB, no published
checksum: the archive must be whole and hold the 68 JPEG files), decoded once and stored
losslessly as ``<id>.png``. The set's folder is written in a temporary folder beside it and
renamed into place only when all 68 images are there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image

import util
from download_module import fetch

NAME = "cbsd68"
FOLDER = "benchmark"  # <out>/benchmark/CBSD68/, beside the SR sets
SET = "CBSD68"
ARCHIVE = "BSDS300-images.tgz"
URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"
IN_ARCHIVE = "BSDS300/images/test"  # where the 100 test JPEGs are
IDS = [
    "101085",
    "101087",
    "102061",
    "103070",
    "105025",
    "106024",
    "108005",
    "108070",
    "108082",
    "109053",
    "119082",
    "12084",
    "123074",
    "126007",
    "130026",
    "134035",
    "14037",
    "143090",
    "145086",
    "147091",
    "148026",
    "148089",
    "157055",
    "159008",
    "160068",
    "16077",
    "163085",
    "167062",
    "167083",
    "170057",
    "175032",
    "175043",
    "182053",
    "189080",
    "19021",
    "196073",
    "197017",
    "208001",
    "210088",
    "21077",
    "216081",
    "219090",
    "220075",
    "223061",
    "227092",
    "229036",
    "236037",
    "24077",
    "241004",
    "241048",
    "253027",
    "253055",
    "260058",
    "271035",
    "285079",
    "291000",
    "295087",
    "296007",
    "296059",
    "299086",
    "300091",
    "302008",
    "304034",
    "304074",
    "306005",
    "3096",
    "33039",
    "351093",
]


def set_folder(out: Path) -> Path:
    return Path(out) / FOLDER / SET


def fetch_set(out: Path, url: str | None = None) -> bool:
    """Fetch CBSD68 into ``<out>/benchmark/CBSD68/`` unless it is there; True when it was written.

    ``url``: a mirror folder holding ``BSDS300-images.tgz`` (or that archive's own URL).
    """
    dest = set_folder(out)
    if dest.exists():
        count = len([p for p in dest.iterdir() if p.suffix.lower() == ".png"]) if dest.is_dir() else 0
        if count != len(IDS):
            raise util.UserError(
                f"{dest}: holds {count} PNG images, but {SET} has {len(IDS)}; move it away or delete it, then run again"
            )
        return False
    archive = fetch.download(fetch.archive_url(url, URL, ARCHIVE), Path(out) / "downloads" / ARCHIVE)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=dest.parent) as tmp:
        root = fetch.extract_tar(archive, Path(tmp) / "archive")
        test = root / IN_ARCHIVE
        missing = [i for i in IDS if not (test / f"{i}.jpg").is_file()]
        if missing:
            raise util.UserError(
                f"{archive}: {IN_ARCHIVE}/ lacks {len(missing)} of the {len(IDS)} CBSD68 images "
                f"(e.g. {missing[0]}.jpg); is it Berkeley's {ARCHIVE}? delete it and run again"
            )
        staged = Path(tmp) / SET
        staged.mkdir()
        for image_id in IDS:
            try:
                with Image.open(test / f"{image_id}.jpg") as img:
                    img.convert("RGB").save(staged / f"{image_id}.png")
            except OSError as err:
                raise util.UserError(
                    f"{archive}: {IN_ARCHIVE}/{image_id}.jpg is not a readable image ({err})"
                ) from None
        os.replace(staged, dest)
    return True
