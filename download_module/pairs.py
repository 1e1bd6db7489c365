"""HR images -> 128x128 HR patches and their degraded versions, as .npy files plus a manifest.

Every source ends here, so the layout below is the one contract the training
scripts read. For ``<out>/<source>/``:

- ``{train,test}_{hr,sr2,sr4,sr8,noise64,noise64blur,x4noise64}.npy``: uint8 NHWC RGB,
  row i of every file of a split is the same patch;
- ``manifest.json``: source, settings (seed, counts, degradation parameters), the
  images of each split and, per patch, its image, crop box and rotation.

Degradations, each computed from the HR patch:

- ``hr``: a random 128x128 crop, then ``np.rot90`` by a random k in 0..3;
- ``sr2``, ``sr4``, ``sr8``: MATLAB-compatible antialiased bicubic (``util.bicubic_downscale``),
  64, 32 and 16 px;
- ``noise64``: HR + N(0, 64) in float32, clipped to [0, 255], rounded (half to even);
- ``noise64blur``: ``noise64`` blurred by a 5x5 Gaussian, sigma 1.1 (OpenCV's sigma for
  ``GaussianBlur(img, (5, 5), 0)``, the prototype's ``gaussb``), through
  ``scipy.ndimage.gaussian_filter`` with radius 2 and mode 'reflect' (``d c b a | a b c d``);
- ``x4noise64``: the 32 px ``sr4`` patch + N(0, 64), clipped and rounded likewise.

Reproducibility: the crops of a split come from ``default_rng([seed, split_id, 0])``
and the noise of chunk c of a split from ``default_rng([seed, split_id, 1, c])``,
so the test patches do not change when only the number of train patches does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

import util
from download_module import writer
from download_module.writer import SPLITS, NpyFile

FORMAT_VERSION = 3  # files named by task (sr4, not x4); patches balanced over images
PATCH = 128
SCALES = (2, 4, 8)
NOISE_SIGMA = 64.0
BLUR_SIGMA = 1.1  # OpenCV's default for a 5x5 kernel: 0.3 * ((5 - 1) / 2 - 1) + 0.8
BLUR_RADIUS = 2  # 5x5 kernel
BLUR_MODE = "reflect"
CHUNK = 500  # patches degraded at once per thread: bounds memory (about 0.5 GB of temporaries each)
CACHE_BYTES = 512 << 20  # per split: decoded images kept between the check pass and the crop pass
WORKERS = min(4, os.cpu_count() or 1)  # image decoding threads (PIL releases the GIL)

_ROUNDING = "round half to even, clip to [0, 255]"
DEGRADATIONS = {  # file key -> how it is made; "size" is the patch side in px (all are RGB)
    "hr": {"size": PATCH, "op": "crop", "rotation": "np.rot90 by k in 0..3 after the crop"},
    **{
        f"sr{f}": {"size": PATCH // f, "op": "bicubic_downscale", "factor": f, "kernel": "MATLAB imresize, antialiased"}
        for f in SCALES
    },
    "noise64": {"size": PATCH, "op": "gaussian_noise", "of": "hr", "sigma": NOISE_SIGMA, "rounding": _ROUNDING},
    "noise64blur": {
        "size": PATCH,
        "op": "gaussian_blur",
        "of": "noise64",
        "sigma": BLUR_SIGMA,
        "radius": BLUR_RADIUS,
        "mode": BLUR_MODE,
        "rounding": _ROUNDING,
    },
    "x4noise64": {"size": PATCH // 4, "op": "gaussian_noise", "of": "sr4", "sigma": NOISE_SIGMA, "rounding": _ROUNDING},
}


def patch_shape(key: str) -> tuple[int, int, int]:
    """HWC shape of one patch of ``key`` (``hr``, ``sr4``, ``noise64``...): the task names of util.data.tasks."""
    size = DEGRADATIONS[key]["size"]
    return (size, size, 3)


# ---- 1. What a source hands over ----------------------------------------------


@dataclass(frozen=True)
class HRImage:
    """One HR image file; ``name`` is what the manifest calls it (its path below the source's root, with /)."""

    path: Path
    name: str


@dataclass
class SourceImages:
    """The HR images of a source, and how train and test are separated.

    A source with its own split fills ``train`` and ``test``. One without gives
    every image in ``train`` and leaves ``test`` None: the usable images are then
    split by ``split_by_name`` once they are checked, so that a corrupt file
    cannot leave the test split empty.
    """

    train: list[HRImage]
    test: list[HRImage] | None
    split_rule: str
    origin: str  # URL, archive or folder the images came from


def images_fingerprint(images: SourceImages) -> str:
    """sha256 of the image names and file sizes of each split: changes when the inputs do."""
    rows = []
    for split, group in (("train", images.train), ("test", images.test)):
        if group is None:
            rows.append([split, "split after the check"])
        for image in group or []:
            rows.append([split, image.name, image.path.stat().st_size if image.path.exists() else -1])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


# ---- 2. Checking and loading images ---------------------------------------------


@dataclass
class UsableImage:
    """An image that loaded and is at least PATCH px in both directions; crops stay in ``region``."""

    image: HRImage
    region: tuple[int, int, int, int]  # (top, left, bottom, right) in pixels: the whole image, or part of it
    pixels: np.ndarray | None = field(default=None, repr=False)  # kept when the cache had room

    @property
    def height(self) -> int:
        return self.region[2] - self.region[0]

    @property
    def width(self) -> int:
        return self.region[3] - self.region[1]


def _load(image: HRImage):
    try:
        return util.load_image_rgb(image.path), None
    except util.ImageError as err:
        return None, str(err)


def _load_in_order(images: list[HRImage]):
    """Yield (image, pixels or None, error or None) in order, decoding a few ahead in threads."""
    with ThreadPoolExecutor(WORKERS) as pool:
        pending = deque()
        todo = iter(images)
        for image in todo:
            pending.append((image, pool.submit(_load, image)))
            if len(pending) >= 2 * WORKERS:
                break
        while pending:
            image, future = pending.popleft()
            for nxt in todo:
                pending.append((nxt, pool.submit(_load, nxt)))
                break
            yield (image, *future.result())


def check_images(images: list[HRImage], desc: str = "check images"):
    """Load every image once: return (usable images, skipped as (name, reason) pairs).

    Unreadable files (corrupt, not an image, missing) and images smaller than
    PATCH px in either direction are skipped. Decoded pixels are kept for the
    crop pass while they fit in CACHE_BYTES.
    """
    usable, skipped, cached = [], [], 0
    for image, pixels, error in tqdm(
        _load_in_order(images), total=len(images), desc=desc, unit="image", leave=False, disable=None
    ):
        if pixels is None:
            skipped.append((image.name, "unreadable", error))
            continue
        h, w = pixels.shape[:2]
        if h < PATCH or w < PATCH:
            skipped.append((image.name, f"smaller than {PATCH} px", f"{image.name}: {w}x{h} px"))
            continue
        keep = cached + pixels.nbytes <= CACHE_BYTES
        cached += pixels.nbytes if keep else 0
        usable.append(UsableImage(image, (0, 0, h, w), pixels if keep else None))
    return usable, skipped


def skipped_message(source: str, total: int, skipped) -> str:
    """One line: how many images were skipped, why, and the first example."""
    reasons = Counter(reason for _, reason, _ in skipped)
    why = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
    return f"warning: {source}: skipped {len(skipped)} of {total} images ({why}); first: {skipped[0][2]}"


TEST_FRACTION = 0.1  # share of the images that go to test when a source has no split of its own


def split_by_name(usable: list[UsableImage], fraction: float = TEST_FRACTION):
    """(train, test, rule) for a source without a split of its own, by image.

    Images are ordered by the sha256 of their name, a fixed "seed" that does not
    depend on ``--seed`` and barely moves when images are added; the first
    max(1, round(fraction * n)) go to test. A single image is split in space
    instead: the last 10% (at least PATCH px) of its longer side is the test
    region, the rest train; an image too small for two regions feeds both splits,
    and a warning and the rule say so.
    """
    if len(usable) == 1:
        return _split_single(usable[0], fraction)
    ordered = sorted(usable, key=lambda u: hashlib.sha256(u.image.name.encode()).hexdigest())
    n_test = max(1, round(fraction * len(ordered)))
    rule = f"by image: the {n_test} of {len(ordered)} usable images first in sha256(name) order go to test"
    return _by_name(ordered[n_test:]), _by_name(ordered[:n_test]), rule


def _by_name(group: list[UsableImage]) -> list[UsableImage]:
    return sorted(group, key=lambda u: u.image.name)


def _split_single(u: UsableImage, fraction: float):
    h, w = u.height, u.width
    long_side = max(h, w)
    n_test = max(PATCH, round(fraction * long_side))
    if long_side - n_test < PATCH:
        rule = "a single image too small to split: train and test patches come from the same image (they overlap)"
        print(f"warning: {u.image.name}: {rule}", file=sys.stderr)
        return [u], [UsableImage(u.image, u.region, u.pixels)], rule  # a copy: train frees its pixels
    cut = long_side - n_test
    train_box, test_box = ((0, 0, cut, w), (cut, 0, h, w)) if h >= w else ((0, 0, h, cut), (0, cut, h, w))
    rule = f"a single image split in space: train region {train_box}, test region {test_box} (top, left, bottom, right)"
    return [UsableImage(u.image, train_box, u.pixels)], [UsableImage(u.image, test_box, u.pixels)], rule


# ---- 3. Patches ---------------------------------------------------------------------


def plan_patches(usable: list[UsableImage], count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 4) int64 rows (image index, top, left, k): where each patch is cut.

    Every image gives the same number of patches (give or take one), in shuffled
    rounds of one patch per image, so that any first N rows are balanced too (the
    training scripts take the first N). Within an image the position is uniform.
    Sampling by area instead let one big image make up half a split (the builtin
    set's 1411 px retina photograph). top/left are relative to the image's region.
    """
    heights = np.array([u.height for u in usable], dtype=np.int64)
    widths = np.array([u.width for u in usable], dtype=np.int64)
    rounds = -(-count // len(usable))
    index = np.concatenate([rng.permutation(len(usable)) for _ in range(rounds)])[:count]
    top = rng.integers(0, heights[index] - PATCH + 1)
    left = rng.integers(0, widths[index] - PATCH + 1)
    rot = rng.integers(0, 4, size=count)
    return np.stack([index, top, left, rot], axis=1)


# Patches written to a memory map between two release() calls. Few: the kernel may map a large
# folio of the file (up to MBs) for each scattered 48 kB patch written (measured: 1.4 GB of RSS for
# the 3600 patches of one image among 40 000).
RELEASE_EVERY = 128


def release(*arrays) -> None:
    """Drop the pages of memory-mapped ``arrays`` from this process; they stay in the kernel's page cache.

    A shared file mapping's written pages live in the page cache and reach the file from
    there, so unmapping them loses nothing; without it every page written would count in
    the resident memory until the end, which then grew with the number of patches.
    """
    import mmap

    for array in arrays:
        mapped = getattr(array, "_mmap", None)  # np.memmap's own mmap object (None for plain arrays)
        if mapped is not None and hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_DONTNEED)


def crop_patches(usable: list[UsableImage], plan: np.ndarray, hr: np.ndarray) -> None:
    """Fill ``hr`` (N, 128, 128, 3) uint8 with the planned crops, loading each image once."""
    needed = sorted(set(plan[:, 0].tolist()))
    to_load = [usable[i].image for i in needed if usable[i].pixels is None]
    loaded = _load_in_order(to_load)
    written = 0
    for i in tqdm(needed, desc="crop", unit="image", leave=False, disable=None):
        u = usable[i]
        pixels = u.pixels
        if pixels is None:
            _, pixels, error = next(loaded)
            if pixels is None:
                raise util.UserError(f"{error} (it changed while patches were being cut; run again)")
        rows = np.flatnonzero(plan[:, 0] == i)
        for row in rows:
            _, top, left, rot = plan[row]
            top, left = top + u.region[0], left + u.region[1]
            hr[row] = np.rot90(pixels[top : top + PATCH, left : left + PATCH], rot)
            written += 1
            if written >= RELEASE_EVERY:  # an image's rows are spread over the whole file
                release(hr)
                written = 0
    release(hr)


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """float -> uint8: round half to even, clip to [0, 255] (in place on ``x``)."""
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


def add_noise(img: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """uint8 + N(0, sigma) in float32, clipped to [0, 255] and rounded to uint8."""
    noisy = rng.standard_normal(img.shape, dtype=np.float32)
    noisy *= np.float32(sigma)
    noisy += img
    return _round_uint8(noisy)


def blur5x5(img: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> the same blurred by the 5x5 Gaussian of ``noise64blur`` (per image, per channel)."""
    sigma = (0, BLUR_SIGMA, BLUR_SIGMA, 0)  # sigma 0: that axis is not filtered
    out = gaussian_filter(img.astype(np.float32), sigma=sigma, radius=(0, BLUR_RADIUS, BLUR_RADIUS, 0), mode=BLUR_MODE)
    return _round_uint8(out)


def degrade(hr: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(N, 128, 128, 3) uint8 HR patches -> every key of DEGRADATIONS, each uint8 NHWC."""
    out = {"hr": hr}
    for factor in SCALES:
        out[f"sr{factor}"] = util.bicubic_downscale(hr, factor, batch=True)
    out["noise64"] = add_noise(hr, rng)
    out["noise64blur"] = blur5x5(out["noise64"])
    out["x4noise64"] = add_noise(out["sr4"], rng)
    return out


def _fill_split(usable: list[UsableImage], count: int, seed: int, split: str, arrays: dict) -> dict:
    """Cut and degrade ``count`` patches of one split into ``arrays``; return its manifest part."""
    split_id = SPLITS.index(split)
    plan = plan_patches(usable, count, np.random.default_rng([seed, split_id, 0]))
    crop_patches(usable, plan, arrays["hr"])

    def degrade_chunk(chunk: int) -> None:
        start, stop = chunk * CHUNK, min((chunk + 1) * CHUNK, count)
        rng = np.random.default_rng([seed, split_id, 1, chunk])
        for key, patches in degrade(np.asarray(arrays["hr"][start:stop]), rng).items():
            if key != "hr":
                arrays[key][start:stop] = patches

    # Chunks in parallel threads: NumPy, BLAS and SciPy release the GIL on these arrays.
    chunks = range((count + CHUNK - 1) // CHUNK)
    with ThreadPoolExecutor(WORKERS) as pool:
        done = pool.map(degrade_chunk, chunks)
        for _ in tqdm(done, total=len(chunks), desc=f"degrade {split}", unit="chunk", disable=None):
            release(*arrays.values())
    patches = []
    for i, top, left, rot in plan.tolist():
        top, left = top + usable[i].region[0], left + usable[i].region[1]
        patches.append([i, top, left, top + PATCH, left + PATCH, rot])
    return {
        "images": [u.image.name for u in usable],
        "image_regions": [list(u.region) for u in usable],
        "patch_columns": ["image", "top", "left", "bottom", "right", "rot90"],
        "patches": patches,
    }


def make_patch_pairs(images: list[HRImage], count: int, seed: int = 0, split: str = "train"):
    """In memory: (dict key -> uint8 NHWC array, manifest part) for one split.

    The same patches as ``write_dataset`` writes for that split and seed, given the
    same images. Skipped images are reported on one stderr line; no usable image
    raises UserError.
    """
    usable, skipped = check_images(images)
    if skipped:
        print(skipped_message(split, len(images), skipped), file=sys.stderr)
    if not usable:
        raise util.UserError(f"{split}: no usable image among {len(images)}; give images of at least {PATCH} px")
    arrays = {key: np.zeros((count, *patch_shape(key)), np.uint8) for key in DEGRADATIONS}
    part = _fill_split(usable, count, seed, split, arrays)
    part["skipped"] = [[name, reason] for name, reason, _ in skipped]
    return arrays, part


# ---- 4. The dataset folder ------------------------------------------------------------


def dataset_settings(source: str, images: SourceImages, counts: dict[str, int], seed: int) -> dict:
    """What decides the content of a dataset folder: equal settings, equal files."""
    return {
        "format": FORMAT_VERSION,
        "source": source,
        "seed": seed,
        "counts": {split: int(counts[split]) for split in SPLITS},
        "patch_size": PATCH,
        "chunk": CHUNK,
        "degradations": DEGRADATIONS,
        "inputs_sha256": images_fingerprint(images),
    }


def npy_layout(counts: dict[str, int]) -> dict[str, dict[str, NpyFile]]:
    """split -> key -> the .npy file of ``counts[split]`` patches of that key (uint8)."""
    return writer.npy_layout(counts, {key: (patch_shape(key), "uint8") for key in DEGRADATIONS})


def is_up_to_date(dest: Path, settings: dict) -> bool:
    """True when ``dest/manifest.json`` has these settings and every .npy has its shape."""

    def expected(_manifest: dict) -> dict:
        files = npy_layout(settings["counts"])
        return {f.name: (list(f.shape), f.dtype) for split in SPLITS for f in files[split].values()}

    return writer.is_up_to_date(dest, settings, expected)


def write_dataset(dest: Path, images: SourceImages, settings: dict) -> dict:
    """Check the images, then write every split's .npy files and the manifest into ``dest``.

    Each .npy is filled through a memory map under a temporary name and renamed
    when complete; the old manifest is removed first and the new one written
    last, so an interrupted run is never mistaken for an up-to-date one.
    """
    source, counts, seed = settings["source"], settings["counts"], settings["seed"]
    started = time.monotonic()
    usable, skipped, split_rule = _check_and_split(source, images)
    files = npy_layout(counts)
    writer.prepare(dest, writer.npy_bytes(files))
    manifest_splits = {}
    with writer.disk_errors(dest):
        for split in SPLITS:
            with writer.npy_files(dest, files[split]) as arrays:
                manifest_splits[split] = _fill_split(usable[split], counts[split], seed, split, arrays)
            for u in usable[split]:
                u.pixels = None  # this split is done: free its cached images
    manifest = {
        "source": source,
        "origin": images.origin,
        "split_rule": split_rule,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "files": {
            f"{split}_{key}": {"file": f.name, "shape": list(f.shape)}
            for split in SPLITS
            for key, f in files[split].items()
        },
        "skipped": [[name, reason] for name, reason, _ in skipped],
        "splits": manifest_splits,
        "seconds": round(time.monotonic() - started, 1),
    }
    writer.write_manifest(dest, manifest)
    return manifest


def dataset_bytes(counts: dict[str, int]) -> int:
    """Bytes of every .npy file of a data set with these counts (headers aside)."""
    return writer.npy_bytes(npy_layout(counts))


def _check_and_split(source: str, images: SourceImages):
    """({split: usable images}, skipped, split rule); one warning line for every skipped image."""
    if images.test is None:
        every, skipped = check_images(images.train)
        total = len(images.train)
    else:
        train, skipped_train = check_images(images.train, desc="check train images")
        test, skipped_test = check_images(images.test, desc="check test images")
        skipped, total = skipped_train + skipped_test, len(images.train) + len(images.test)
    if skipped:
        print(skipped_message(source, total, skipped), file=sys.stderr)
    if images.test is None:
        if not every:
            raise util.UserError(
                f"{source}: no usable image among {total} (each must be a readable image of at least "
                f"{PATCH}x{PATCH} px); check {images.origin}"
            )
        train, test, rule = split_by_name(every)
        split_rule = f"{images.split_rule}; {rule}" if images.split_rule else rule
    else:
        split_rule = images.split_rule
    for split, group, given in (("train", train, images.train), ("test", test, images.test)):
        if not group:
            raise util.UserError(
                f"{source}: no usable {split} image among {len(given)} (each must be a readable image of at "
                f"least {PATCH}x{PATCH} px); check {images.origin}"
            )
    return {"train": train, "test": test}, skipped, split_rule
