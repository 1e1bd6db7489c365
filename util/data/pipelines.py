"""Patch pairs written by ``download.py`` -> arrays and ``tf.data`` pipelines.

On disk (the data step's contract): ``datasets/<source>/{train,test}_<key>.npy``,
uint8 NHWC RGB, where ``key`` is ``hr`` or the name of a task (``sr2``, ``sr4``, ``sr8``,
``noise64``, ``noise64blur``, ``x4noise64``; see ``util.data.tasks``).

Raster data sets (``manifest.json`` says ``"kind": "raster"``; download_module/raster_pairs.py):
float32 NHWC one-channel patches in the data's units (``hr``, ``sr2`` ...), plus
``{split}_mask.npy`` (uint8, 1 = a valid cell; nodata cells of ``hr`` hold a fill value
that the loss and the metrics never see) and ``{split}_cell.npy`` (float32 (N, 2): the
cell size (dy, dx) of each HR patch in metres). Stack data sets (``"kind": "stack"``;
download_module/stack_pairs.py) have the same files, their patches cut from time steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from util.data.tasks import stored_task
from util.io.files import UserError

# Augmentations that commute with the degradation, so that (input, target) stays an exact pair:
# each is applied identically to both, a fresh random draw per patch (make_dataset).
AUGMENTATIONS = {
    "flips": "a random one of the 8 flips/rotations (the dihedral group)",
    "channels": "a random permutation of the R, G, B channels (Yoo et al., CVPR 2020)",
    "invert": "the negative half of the time (photos x -> 1 - x, rasters z -> -z; bicubic resizing, block means "
    "and noise commute with it)",
    "amplitude": "rasters: heights times a random factor, log-uniform in 1/2..2, so other reliefs are seen "
    "(block means and bicubic are linear)",
    "shifts": "a random sub-pixel phase: the HR patch cropped by 0..s-1 pixels (s = the scale) and "
    "downscaled again as download.py does (bicubic SR tasks only)",
    "mirror": "stacks: the east-west (left-right) mirror half of the time; each row keeps its latitude and cell size",
}


RASTER_AUGMENTATIONS = (
    "flips",
    "invert",
    "amplitude",
)  # one channel in data units: no channel orders, no sub-pixel shifts
STACK_AUGMENTATIONS = ("mirror", "flips", "invert", "amplitude")  # flips only on grids of square projected cells


REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"


def dataset_dir(dataset: str, root=None) -> Path:
    """Folder of a data set: ``<root>/<dataset>`` (root defaults to ``datasets/`` of the repo).

    ``dataset`` may also be a path to such a folder.
    """
    candidate = Path(dataset)
    if candidate.is_dir() and (candidate / "train_hr.npy").exists():
        return candidate
    folder = Path(root or DATASETS) / dataset
    if not (folder / "train_hr.npy").exists():
        raise UserError(
            f"DATASET={dataset!r}: no pairs in {folder}; run `python3 download.py {dataset}` first "
            "(or `python3 download.py` for the built-in images)"
        )
    return folder


def dataset_folder(dataset: str, root=None) -> Path:
    """The folder a data set name or folder stands for, whether or not it exists."""
    candidate = Path(dataset)
    return candidate if candidate.is_dir() else Path(root or DATASETS) / dataset


def dataset_kind(dataset: str, root=None) -> str:
    """``"photo"``, ``"raster"`` or ``"stack"`` for a data set name or folder (``"photo"`` when it is missing)."""
    return manifest_of(dataset_folder(dataset, root)).get("kind", "photo")


def manifest_of(folder: Path) -> dict:
    """The data set's manifest.json as a dict ({} when there is none)."""
    import json

    path = Path(folder) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable ({err}); run `python3 download.py` for this data set again") from None


def load_raster_split(folder: Path, task: str, split: str, count: int | None = None, start: int = 0):
    """(lr, hr, mask, cell) of a raster split, patches [start, start + count): float32, float32, uint8, (N, 2)."""
    lr, hr = load_split(folder, task, split, count, start)
    stop = start + len(hr)
    extra = []
    for key in ("mask", "cell"):
        path = folder / f"{split}_{key}.npy"
        if not path.exists():
            raise UserError(f"{path}: missing; run `python3 download.py` again for this data set")
        extra.append(np.ascontiguousarray(np.load(path, mmap_mode="r")[start:stop]))
    return lr, hr, extra[0], extra[1]


def load_hr(folder: Path, split: str, count: int | None = None) -> np.ndarray:
    """The first ``count`` HR patches of a split (all when None), uint8 NHWC."""
    return _load_slices(folder, split, ["hr"], count)[0]


# Seeds of the fixed degradations of the synthetic tasks' pairs (util.data.degrade.degrade_patches), per split.
SPLIT_SEEDS = {"train": 1, "test": 2}


def load_split(folder: Path, task: str, split: str, count: int | None = None, start: int = 0):
    """(degraded, hr) uint8 arrays of one split, patches [start, start + count).

    Uses memory mapping so that a 10000-patch file costs only what is taken. A synthetic
    task (util.data.tasks) has no file of its own: its pairs are the HR patches degraded once
    with the split's fixed seed (the validation and test pairs; training degrades afresh).
    """
    parsed = stored_task(task)
    if parsed.synthetic:
        from util.data.degrade import degrade_patches

        (hr,) = _load_slices(folder, split, ["hr"], count, start)
        return degrade_patches(hr, parsed, SPLIT_SEEDS[split], first=start), hr
    degraded, hr = _load_slices(folder, split, [parsed.name, "hr"], count, start)
    return degraded, hr


def _load_slices(folder: Path, split: str, keys: list[str], count: int | None = None, start: int = 0):
    """Patches [start, start + count) of ``{split}_{key}.npy`` for each key (memory-mapped, then copied)."""
    paths = [folder / f"{split}_{key}.npy" for key in keys]
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: missing; run `python3 download.py` again for this data set")
    arrays = [np.load(path, mmap_mode="r") for path in paths]
    if len({len(a) for a in arrays}) > 1:
        raise UserError(f"{folder}: {paths[0].name} and {paths[1].name} hold different counts; download again")
    total = len(arrays[-1])
    stop = total if count is None else min(total, start + count)
    if start >= stop:
        raise UserError(f"{paths[-1]}: has {total} patches, none left from index {start}; lower the count")
    return [np.ascontiguousarray(a[start:stop]) for a in arrays]


# Training pairs of more bytes are read from disk as training runs (PatchFile) instead of loaded:
# streamed, 10 000 pairs trained 1.5x faster in 40 % of the memory (docs/experiments.md).
IN_MEMORY_BYTES = int(os.environ.get("SUITE_IN_MEMORY_BYTES", 2**28))


class PatchFile:
    """Patches of one ``.npy`` file, read one at a time with ``os.pread``: data larger than memory.

    No memory map: pages of a mapped file that training has touched count in the process's
    resident memory until the kernel needs them back, so RSS would grow with the data read;
    pread leaves them in the page cache, which the kernel shares and drops as needed.
    ``rows``: the patch indices in the file this view covers (a worker's share is a slice).
    ``prepare``: applied to each patch read (the model's input kind, e.g. bicubic upsampling).
    """

    def __init__(self, path: Path, rows: np.ndarray | None = None, prepare=None):
        self.path, self.prepare = Path(path), prepare
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise UserError(f"{self.path}: stored in Fortran order; run `python3 download.py` for this data set again")
        self.file_shape, self.dtype = shape, np.dtype(dtype)
        self.patch_shape = shape[1:]
        self.patch_bytes = int(np.prod(self.patch_shape)) * self.dtype.itemsize
        self.rows = np.arange(shape[0]) if rows is None else np.asarray(rows)
        self._fd = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> PatchFile:
        """A view of some of the patches (``key``: a slice or index array into this view)."""
        return PatchFile(self.path, self.rows[key], self.prepare)

    def prepared(self, prepare) -> PatchFile:
        """This view with ``prepare`` applied to each patch read (e.g. the model's input kind)."""
        return PatchFile(self.path, self.rows, prepare)

    @property
    def nbytes(self) -> int:
        return len(self) * self.patch_bytes

    def read(self, i: int) -> np.ndarray:
        """Patch ``i`` of this view (prepared)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        row = int(self.rows[i])
        data = os.pread(self._fd, self.patch_bytes, self.offset + row * self.patch_bytes)
        if len(data) != self.patch_bytes:
            raise UserError(f"{self.path}: truncated at patch {row}; run `python3 download.py` again")
        patch = np.frombuffer(data, self.dtype).reshape(self.patch_shape)
        return patch if self.prepare is None else self.prepare(patch)

    def output_shape(self) -> tuple[int, ...]:
        return self.read(0).shape


def patch_files(folder: Path, task: str, split: str, count: int | None = None) -> tuple[PatchFile, PatchFile]:
    """(degraded, hr) PatchFiles of the first ``count`` pairs of a split; degraded is None for synthetic tasks."""
    parsed = stored_task(task)
    keys = ["hr"] if parsed.synthetic else [parsed.name, "hr"]
    paths = [folder / f"{split}_{key}.npy" for key in keys]
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: missing; run `python3 download.py` again for this data set")
    files = [PatchFile(path) for path in paths]
    if len({len(f) for f in files}) > 1:
        raise UserError(f"{folder}: {paths[0].name} and {paths[1].name} hold different counts; download again")
    files = [f[: count or len(f)] for f in files]
    return (None, files[0]) if parsed.synthetic else (files[0], files[1])


def _source(inputs, targets, seed: int):
    """Endless shuffled (input, target) or (target,) elements: from arrays in memory, or read from PatchFiles.

    PatchFiles are shuffled by index (8 bytes a patch, all of them: a full shuffle whatever the
    data size) and read in parallel map calls.
    """
    import tensorflow as tf

    streamed = isinstance(targets, PatchFile)
    if not streamed:
        ds = tf.data.Dataset.from_tensor_slices(targets if inputs is None else (inputs, targets))
        return ds.shuffle(min(len(targets), 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    files = [f for f in (inputs, targets) if f is not None]
    shapes = [f.output_shape() for f in files]

    def read(i):
        return tuple(f.read(int(i)) for f in files)

    def load(i):
        patches = tf.numpy_function(read, [i], [tf.uint8] * len(files), stateful=False)
        for patch, shape in zip(patches, shapes, strict=True):
            patch.set_shape(shape)
        return patches[0] if len(files) == 1 else tuple(patches)

    ds = tf.data.Dataset.range(len(targets)).shuffle(len(targets), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def make_dataset(
    inputs: np.ndarray,
    targets: np.ndarray,
    batch: int,
    seed: int,
    augment=(),
    shift_scale=0,
    upsampled=False,
    size_multiple=1,
):
    """Endless shuffled ``tf.data`` of (input, target) float32 batches in [0, 1].

    ``inputs`` and ``targets`` are uint8 NHWC (the model's input kind already applied),
    in memory or PatchFiles read from disk as the pipeline runs. ``augment``: names from
    AUGMENTATIONS; shifts first, then the others.
    ``shift_scale``: the bicubic scale that made ``inputs`` from ``targets`` (needed by
    ``shifts``; 0 where the inputs are not a plain bicubic downscale); ``upsampled``: the
    inputs are that LR upsampled again by bicubic (the prototypes' input kind); ``size_multiple``: the
    model's (its input's sides must be multiples of it: a shifted pair is cropped to one).
    """
    import tensorflow as tf

    ds = _source(inputs, targets, seed)
    if "shifts" in augment and shift_scale < 2:
        raise ValueError("shifts needs the bicubic scale that made the inputs (shift_scale >= 2)")
    steps = [lambda x, y: _shift(y, shift_scale, upsampled, size_multiple)] if "shifts" in augment else []
    steps += _pair_steps(augment)

    def augment_pair(x, y):
        for step in steps:
            x, y = step(x, y)
        return x, y

    # One map of all augmentations on the uint8 pair, then the cast on whole batches: a
    # quarter of the bytes to move and one map's overhead per patch (the pipeline shares the
    # CPU with training; on one core this made it ~5% faster than a float map per stage).
    if steps:
        ds = ds.map(augment_pair, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch, drop_remainder=True).map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_synthetic_dataset(hr: np.ndarray, batch: int, seed: int, task, augment=(), as_float=False, noise_map=False):
    """Endless shuffled ``tf.data`` of (degraded, hr) float32 batches in [0, 1] for a synthetic task.

    ``hr``: uint8 NHWC, in memory or a PatchFile.
    Each patch is augmented (``flips``, ``channels``, ``invert``), then degraded
    afresh by util.data.degrade.tf_degrade: new noise (and sigma, PSF) every time it is drawn
    (``as_float``: the noisy input neither clipped nor rounded). ``noise_map``: the input gets one
    more channel, the sigma drawn on the [0, 1] scale (FFDNet's noise-level map).
    """
    import tensorflow as tf

    from util.data.degrade import tf_degrade

    ds = _source(None, hr, seed)
    steps = _pair_steps(augment)
    degrade = tf_degrade(task, as_float, with_sigma=noise_map)

    def prepare(y):
        for step in steps:
            _, y = step(y, y)
        if not noise_map:
            return degrade(y)
        x, clean, sigma = degrade(y)
        return tf.concat([x, tf.fill(tf.shape(x[..., :1]), sigma / 255.0)], -1), clean

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_raster_dataset(inputs, targets, masks, batch: int, seed: int, augment=(), aux=None, scale: int = 1):
    """Endless shuffled ``tf.data`` of (input, target, weight) float32 raster batches in data units.

    ``weight`` is the valid-cell mask (B, H, W): Keras weighs each cell's loss by it, so
    nodata cells never count. ``augment``: ``mirror`` (east-west), ``flips``, ``invert`` (heights
    negated) and ``amplitude`` (heights scaled): block means and bicubic commute with each
    (RASTER_AUGMENTATIONS, STACK_AUGMENTATIONS). ``aux``: static predictors on the HR grid
    (N, H, W, K; util.data.static), mirrored and turned with the pair but never negated or
    scaled, then put onto the LR grid by space-to-depth by ``scale`` after the input's channel.
    """
    import tensorflow as tf

    arrays = (inputs, targets, masks) if aux is None else (inputs, targets, masks, aux)
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = ds.shuffle(min(len(inputs), 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    if "mirror" in augment:
        ds = ds.map(_mirror3, num_parallel_calls=tf.data.AUTOTUNE)
    if "flips" in augment:
        ds = ds.map(_dihedral3, num_parallel_calls=tf.data.AUTOTUNE)
    if "invert" in augment:
        ds = ds.map(_negate3, num_parallel_calls=tf.data.AUTOTUNE)
    if "amplitude" in augment:
        ds = ds.map(_amplitude3, num_parallel_calls=tf.data.AUTOTUNE)
    if aux is not None:
        ds = ds.map(
            lambda x, y, w, a: (tf.concat([x, tf.nn.space_to_depth(a[None], scale)[0]], -1), y, w),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch, drop_remainder=True).map(_raster_weights, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def raster_validation_dataset(inputs, targets, masks, batch: int = 32):
    """``tf.data`` of (input, target, weight) raster batches, in order, once (validation)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((inputs, targets, masks)).batch(batch).map(_raster_weights)


def _raster_weights(x, y, w):
    import tensorflow as tf

    return x, y, tf.cast(w[..., 0], tf.float32)


def _dihedral3(*arrays):
    """One random flip/rotation of the dihedral group, the same for the input, the target, the mask (and aux)."""
    import tensorflow as tf

    k = tf.random.uniform([], 0, 4, dtype=tf.int32)
    flip = tf.random.uniform([]) < 0.5

    def turn(a):
        a = tf.image.rot90(a, k)
        return tf.cond(flip, lambda: tf.image.flip_left_right(a), lambda: a)

    return tuple(turn(a) for a in arrays)


def _mirror3(*arrays):
    """The east-west mirror half of the time, the same for the input, the target, the mask (and aux; rows stay)."""
    import tensorflow as tf

    flip = tf.random.uniform([]) < 0.5
    return tuple(tf.cond(flip, lambda a=a: tf.image.flip_left_right(a), lambda a=a: a) for a in arrays)


def _negate3(x, y, w, *rest):
    """Input and target negated half of the time (a raster's z -> -z), the mask (and aux) unchanged."""
    import tensorflow as tf

    return tf.cond(tf.random.uniform([]) < 0.5, lambda: (-x, -y, w, *rest), lambda: (x, y, w, *rest))


def _amplitude3(x, y, w, *rest):
    """Input and target times one random factor, log-uniform in [1/2, 2] (other reliefs, the same terrain)."""
    import tensorflow as tf

    factor = tf.exp(tf.random.uniform([], -0.6931472, 0.6931472))
    return (x * factor, y * factor, w, *rest)


def validation_dataset(inputs: np.ndarray, targets: np.ndarray, batch: int = 32):
    """``tf.data`` of (input, target) float32 batches in [0, 1], in order, once (validation)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch).map(_to_float)


def _to_float(x, y):
    import tensorflow as tf

    return tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.float32) / 255.0


def _shift(hr, scale: int, upsampled: bool = False, size_multiple: int = 1):
    """(LR, HR) from one uint8 HR patch: crop a random 0..scale-1 pixels off the top and left
    (and the rest of a margin off the bottom and right), then downscale the crop
    with the MATLAB bicubic of download.py. The pair is as exact as the stored one, but its
    LR pixels sample the scene at another of the scale**2 sub-pixel phases. ``upsampled``:
    return the LR upsampled again by the same bicubic (as ``util.data.resize.bicubic_upscale``).
    The crop's side is a multiple of ``scale * size_multiple`` (the model's input then a multiple
    of its size multiple): 124 of a 128 patch at x4 for a plain network, 112 for a 3-level U-Net."""
    import tensorflow as tf

    step = scale * size_multiple
    size = (hr.shape[0] - scale) // step * step
    dy, dx = tf.unstack(tf.random.uniform([2], 0, scale, dtype=tf.int32))
    crop = hr[dy : dy + size, dx : dx + size]

    # util.data.resize.imresize as one matrix per axis (float64, rounded as MATLAB): in-graph,
    # because calling the NumPy version per patch cost a quarter of the training's CPU time.
    def resize(image, out_len: int, in_len: int):
        weights = tf.constant(_resize_matrix(in_len, out_len))
        out = tf.einsum("ij,jkc,lk->ilc", weights, tf.cast(image, tf.float64), weights)
        return tf.cast(tf.clip_by_value(tf.floor(out + 0.5), 0, 255), tf.uint8)

    lr = resize(crop, size // scale, size)
    return (resize(lr, size, size // scale) if upsampled else lr), crop


def _resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """The (out_len, in_len) matrix of util.data.resize's bicubic along one axis (antialiased when shrinking)."""
    from util.data.resize import imresize

    return imresize(np.eye(in_len), output_shape=(out_len, in_len), batch=False)


def _pair_steps(augment) -> list:
    """The photo augmentations of ``augment`` that act on an (input, target) pair alike, in their fixed order."""
    pair_steps = (("flips", _dihedral), ("channels", _permute_channels), ("invert", _invert))
    return [function for name, function in pair_steps if name in augment]


def _dihedral(x, y):
    import tensorflow as tf

    k = tf.random.uniform([], 0, 4, dtype=tf.int32)
    flip = tf.random.uniform([]) < 0.5
    x, y = tf.image.rot90(x, k), tf.image.rot90(y, k)
    x = tf.cond(flip, lambda: tf.image.flip_left_right(x), lambda: x)
    y = tf.cond(flip, lambda: tf.image.flip_left_right(y), lambda: y)
    return x, y


def _permute_channels(x, y):
    import tensorflow as tf

    order = tf.random.shuffle(tf.range(3))
    return tf.gather(x, order, axis=-1), tf.gather(y, order, axis=-1)


def _invert(x, y):
    import tensorflow as tf

    invert = tf.random.uniform([]) < 0.5
    return tf.cond(invert, lambda: (255 - x, 255 - y), lambda: (x, y))
