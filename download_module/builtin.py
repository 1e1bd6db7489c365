"""The default source: photographs shipped inside scikit-image's wheel (no network).

Each is saved once as a PNG in ``<out>/raw/builtin/``. The split is fixed by
image: TEST_IMAGES feed only the test split, the others only train. The two
views of ``stereo_motorcycle`` are near-duplicates, so both sit in train; ``cat``
is the same photograph as ``chelsea``, so only ``chelsea`` is used. Grayscale
textures become gray RGB when loaded.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

import util
from download_module.pairs import HRImage, SourceImages

NAME = "builtin"
TRAIN_IMAGES = (
    "astronaut",
    "chelsea",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
    "brick",
    "grass",
    "moon",
    "camera",
)
TEST_IMAGES = ("coffee", "rocket", "gravel")


def _pixels(name: str):
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(skimage.data, name)()


def _saved(folder: Path, name: str) -> HRImage:
    path = folder / f"{name}.png"
    if not path.exists():
        with util.atomic_path(path) as tmp:
            Image.fromarray(_pixels(name)).save(tmp, format="PNG", compress_level=1)
    return HRImage(path, path.name)


def find_images(out: Path, url: str | None = None) -> SourceImages:
    if url:
        raise util.UserError("--url does not apply to the builtin source (it needs no download); drop --url")
    folder = out / "raw" / NAME
    return SourceImages(
        train=[_saved(folder, name) for name in TRAIN_IMAGES],
        test=[_saved(folder, name) for name in TEST_IMAGES],
        split_rule=f"fixed by image: test = {', '.join(TEST_IMAGES)}; train = the others",
        origin="skimage.data (scikit-image's bundled images)",
    )
