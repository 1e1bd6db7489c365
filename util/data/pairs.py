"""One handle on a data set of pairs: ``open_pairs(dataset)`` reads its manifest and headers once.

The handle knows its folder, kind (photo, raster or stack, util.io.kinds), number of training pairs,
channels, units and the augmentations it allows, and returns what training and evaluation
need: the model of its kind, the training and validation ``tf.data`` pipelines (sharded for
tf.distribute workers), the scores of the test pairs and random pairs for the speed
benchmark. Whether training pairs are streamed from disk or held in memory, stored or
degraded afresh (util.data.tasks' synthetic tasks), is the handle's own business.

``PhotoPairs``: uint8 RGB patches. ``RasterPairs``: float32 one-band patches in data units
with masks and cell sizes (util.data.pipelines's module doc has the files). ``StackPairs``: the
same files cut from the time steps of stacks and split in time, with the augmentations a
geophysical field allows. A new kind of data is one new subclass of ``Pairs`` and one entry of
``HANDLES``.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from util.data import pipelines, static
from util.data.pipelines import AUGMENTATIONS, RASTER_AUGMENTATIONS, STACK_AUGMENTATIONS
from util.data.tasks import parse_task, stored_task
from util.io import kinds
from util.io.files import UserError

if TYPE_CHECKING:
    from util.training.settings import Settings


def open_pairs(dataset: str, root=None) -> Pairs:
    """The handle of a data set name or folder (a UserError naming the command to run when it is missing)."""
    folder = pipelines.dataset_dir(dataset, root)
    return pairs_class(folder)(folder, pipelines.manifest_of(folder))


def pairs_class(dataset) -> type[Pairs]:
    """The handle class of a data set name or folder, by its manifest's kind (photos when it does not exist yet)."""
    return HANDLES[pipelines.dataset_kind(dataset)]


def resolve_augment(dataset, names: tuple[str, ...], task: str) -> tuple[str, ...]:
    """AUGMENT for ``dataset`` (``names`` as util.training.settings.parse_augment gives them), by its handle class."""
    manifest = pipelines.manifest_of(pipelines.dataset_folder(dataset))
    return HANDLES[manifest.get("kind", kinds.PHOTO)].resolve_augment(names, task, manifest)


def check_conserve(dataset: str) -> None:
    """CONSERVE=True for ``dataset``: a one-line UserError unless its handle conserves block means (rasters, stacks)."""
    folder = pipelines.dataset_dir(dataset)  # a missing data set is named as such, not as photos
    HANDLES[pipelines.manifest_of(folder).get("kind", kinds.PHOTO)].check_conserve(dataset)


def model_input(info: dict):
    """Degraded patches -> patches in the model's input kind (upsampled once, up front).

    uint8 photo patches stay uint8 (rounded as MATLAB); float raster patches stay float32.
    """
    if info["input_kind"] == "upsampled" and info["scale"] > 1:
        from util.data.resize import bicubic_upscale

        def upsample(lr):
            up = bicubic_upscale(lr, info["scale"], batch=True)
            return up if up.dtype == np.uint8 else up.astype(np.float32)

        return upsample
    return lambda lr: lr


class Pairs:
    """A data set of (degraded, HR) pairs written by download.py: the interface each kind of data implements.

    Subclasses set ``kind``, ``channels`` and ``augmentations`` and implement ``resolve_augment``,
    ``model_for``, ``load``, ``prepare_inputs``, ``training``, ``validation``, ``score`` and ``random_pairs``;
    a kind whose LR is the block mean of its HR overrides ``check_conserve`` (CONSERVE).
    """

    kind: str
    channels: int
    augmentations: tuple[str, ...]

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = folder, manifest
        self.n_train = len(np.load(folder / "train_hr.npy", mmap_mode="r"))
        self.value_scale = 1.0

    @property
    def units(self) -> str:
        return self.manifest.get("units", "m")

    def with_available(self, settings: Settings) -> Settings:
        """``settings`` with TRAIN_PATCHES no larger than the training pairs (the run's real count); AUX is
        refused but for stacks."""
        if settings.aux and self.kind != kinds.STACK:
            raise UserError(
                f"AUX={settings.aux}: static predictors are placed by a stack's grid and time steps, and "
                f"{self.folder} holds {self.kind}s; give a stack data set (download.py climate) or AUX=''"
            )
        if settings.train_patches <= self.n_train:
            return settings
        print(
            f"note: TRAIN_PATCHES={settings.train_patches}, but {self.folder} has {self.n_train} training pairs: "
            "all are used"
        )
        return dataclasses.replace(settings, train_patches=self.n_train)

    @property
    def patch(self) -> int:
        """The side of the data set's HR patches in cells (its manifest's ``patch_size``; 0 when it does not say)."""
        return int(self.manifest.get("settings", {}).get("patch_size", 0))

    @classmethod
    def check_conserve(cls, dataset: str) -> None:
        """A one-line UserError: CONSERVE=True keeps the block means of an LR that is the block mean of the HR."""
        raise UserError(
            f"CONSERVE=True: {dataset} holds {cls.kind}s, whose LR is bicubic, not the block mean that --conserve "
            "keeps; it applies to raster and stack data sets: drop --conserve"
        )

    def build(self, build_model, settings: Settings):
        """The script's model ``build_model(task, **model_kwargs)`` for this kind of data (and its value scale)."""
        return self.model_for(build_model, settings, self.value_scale, self.units, self.patch)

    @classmethod
    def model_for(cls, build_model, settings: Settings, value_scale: float = 1.0, units: str = "m", patch: int = 0):
        """The script's model for this kind of data, given its value scale, units and patch side (HR cells)."""
        raise NotImplementedError

    def load(self, settings: Settings) -> None:
        """Read the training and validation pairs of ``settings`` (the last VAL_PATCHES training pairs)."""
        raise NotImplementedError

    def tf_data(self, settings: Settings, info: dict, place):
        """(training, validation) ``tf.data`` for the model of ``info`` (after ``load``), sharded by ``place``.

        Each tf.distribute worker builds (and augments) only its share of the training pairs, in
        batches of one replica's share of BATCH; the small validation set is split batch by batch.
        """
        from util.training import distribute

        if self.val_start < self.n_loaded:
            print(f"note: the {settings.val_patches} validation pairs overlap the {self.n_loaded} training pairs")
        self.prepare_inputs(model_input(info))
        val_ds = self.validation()
        if place.workers == 1:
            return self.training(settings, info, settings.seed), val_ds

        def worker_share(context):
            share = np.s_[context.input_pipeline_id :: context.num_input_pipelines]
            local = dataclasses.replace(settings, batch=context.get_per_replica_batch_size(settings.batch))
            return self.training(local, info, settings.seed + context.input_pipeline_id, share)

        train_ds = place.strategy.distribute_datasets_from_function(worker_share)
        return train_ds, val_ds.with_options(distribute.shard_by_data())


class PhotoPairs(Pairs):
    """uint8 RGB pairs: stored degradations or a synthetic task's, in memory or streamed from disk."""

    kind = kinds.PHOTO
    channels = 3
    augmentations = tuple(AUGMENTATIONS)

    @classmethod
    def resolve_augment(cls, names: tuple[str, ...], task: str, manifest: dict | None = None) -> tuple[str, ...]:
        """The augmentations that keep photo pairs of ``task`` exact; ``("auto",)``: flips and channel
        orders, plus the sub-pixel shifts for the bicubic SR tasks."""
        bicubic = stored_task(task).is_bicubic_sr
        if names == ("auto",):
            return ("flips", "channels", "shifts") if bicubic else ("flips", "channels")
        for name, why in (("amplitude", "rasters (heights)"), ("mirror", "stacks (flips holds it for photos)")):
            if name in names:
                raise UserError(f"AUGMENT={','.join(names)}: {name} applies to {why}, not photos; drop it")
        return names

    @classmethod
    def model_for(cls, build_model, settings: Settings, value_scale: float = 1.0, units: str = "m", patch: int = 0):
        """The script's RGB model (photos have no value scale or units; the tiles of photos do not need the patch)."""
        if settings.conserve:
            cls.check_conserve(settings.dataset)
        return build_model(settings.task, **settings.model_kwargs)

    def streamed(self, settings: Settings) -> bool:
        """Whether the training pairs are too large to load (util.data.pipelines.IN_MEMORY_BYTES)."""
        files = pipelines.patch_files(self.folder, settings.task, "train", settings.train_patches)
        return sum(f.nbytes for f in files if f is not None) > pipelines.IN_MEMORY_BYTES

    def load(self, settings: Settings) -> None:
        folder, task = self.folder, settings.task
        val_start = self.val_start = max(0, self.n_train - settings.val_patches)
        if self.streamed(settings):  # larger than IN_MEMORY_BYTES: read from disk as training runs
            self.train_lr, self.train_hr = pipelines.patch_files(folder, task, "train", settings.train_patches)
            count = len(self.train_hr)
            print(f"note: {count} training pairs are read from disk as training runs (more than fit in memory)")
        elif parse_task(task).synthetic:  # degraded afresh in tf.data: only the HR patches are needed
            self.train_lr, self.train_hr = None, pipelines.load_hr(folder, "train", settings.train_patches)
        else:
            self.train_lr, self.train_hr = pipelines.load_split(folder, task, "train", settings.train_patches)
        self.val_lr, self.val_hr = pipelines.load_split(folder, task, "train", settings.val_patches, start=val_start)
        self.n_loaded = len(self.train_hr)

    def prepare_inputs(self, prepare) -> None:
        """The training and validation inputs in the model's input kind (streamed ones as each is read)."""
        if isinstance(self.train_lr, pipelines.PatchFile):
            self.train_x = self.train_lr.prepared(lambda patch: prepare(patch[None])[0])
        else:
            self.train_x = None if self.train_lr is None else prepare(self.train_lr)
        self.val_x = prepare(self.val_lr)

    def validation(self):
        return pipelines.validation_dataset(self.val_x, self.val_hr)

    def training(self, settings: Settings, info: dict, seed: int, share=None):
        x, hr = self.train_x, self.train_hr
        if share is not None:
            x, hr = (None if x is None else x[share]), hr[share]
        return photo_training(x, hr, settings, info, seed)

    @classmethod
    def random_pairs(cls, settings: Settings, info: dict, rng: np.random.Generator, count: int) -> dict:
        """``count`` random uint8 RGB pairs, 128x128 HR, and the training's pipeline over them (util.training.speed).

        {"lr" (in the model's input kind), "hr", "mask": None, "train"}.
        """
        size = 128 // info["scale"]
        lr = model_input(info)(rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))
        hr = rng.integers(0, 256, (count, 128, 128, 3), dtype=np.uint8)
        return {"lr": lr, "hr": hr, "mask": None, "train": photo_training(lr, hr, settings, info, seed=0)}

    def score(self, model, settings: Settings, folder_out: Path, meta: dict, ensemble=False) -> dict:
        from util.evaluation.pair_scores import score_test_pairs

        return score_test_pairs(model, settings, self.folder, folder_out, meta, ensemble)


def photo_training(inputs, targets, settings: Settings, info: dict, seed: int):
    """The photo training's tf.data (util.data.pipelines.make_dataset) with the settings' batch and augmentations."""
    task = parse_task(settings.task)
    if task.synthetic:
        return pipelines.make_synthetic_dataset(
            targets, settings.batch, seed, task, augment=settings.augment, as_float=settings.noisy == "float"
        )
    return pipelines.make_dataset(
        inputs,
        targets,
        settings.batch,
        seed,
        augment=settings.augment,
        shift_scale=info["scale"] if task.is_bicubic_sr else 0,
        upsampled=info["input_kind"] == "upsampled",
        size_multiple=info["size_multiple"],
    )


class RasterPairs(Pairs):
    """float32 one-band pairs in data units with valid-cell masks (nodata never counts), in memory."""

    kind = kinds.RASTER
    channels = 1
    augmentations = RASTER_AUGMENTATIONS
    auto_augment = RASTER_AUGMENTATIONS  # all of them (docs/experiments.md, rasters)
    test_split = "spatially disjoint from training"  # what the scores' protocol says of the test patches

    @classmethod
    def resolve_augment(cls, names: tuple[str, ...], task: str, manifest: dict | None = None) -> tuple[str, ...]:
        """Rasters take the bicubic SR tasks; ``auto``: flips, invert and amplitude (docs/experiments.md, rasters)."""
        if not stored_task(task).is_bicubic_sr:
            raise UserError(
                f"TASK={task!r}: {cls.kind}s take the super-resolution tasks sr2, sr4, sr8; photos take {task}"
            )
        if names == ("auto",):
            return cls.auto_augment
        if wrong := [n for n in names if n not in cls.augmentations]:
            raise UserError(
                f"AUGMENT={','.join(names)}: {', '.join(wrong)} do(es) not apply to {cls.kind}s (one channel in data "
                f"units, block-mean LR); use auto or a list of {', '.join(cls.augmentations)}"
            )
        return names

    @classmethod
    def model_for(cls, build_model, settings: Settings, value_scale: float = 1.0, units: str = "m", patch: int = 0):
        """The script's one-channel model wrapped to take and return data units (util.models.layers.raster_model),
        ending in the block-mean correction with CONSERVE."""
        from util.models.layers import raster_model

        network = build_model(settings.task, channels=1, **settings.model_kwargs)
        return raster_model(network, value_scale, units, patch, conserve=settings.conserve)

    @classmethod
    def check_conserve(cls, dataset: str) -> None:
        """Rasters' and stacks' LR is the block mean of the valid HR cells: CONSERVE applies."""

    def load(self, settings: Settings) -> None:
        folder, task = self.folder, settings.task
        val_start = self.val_start = max(0, self.n_train - settings.val_patches)
        self.train_lr, self.train_hr, self.train_mask, _ = pipelines.load_raster_split(
            folder, task, "train", settings.train_patches
        )
        self.val_lr, self.val_hr, self.val_mask, _ = pipelines.load_raster_split(
            folder, task, "train", settings.val_patches, start=val_start
        )
        self.value_scale = self.height_scale()
        self.n_loaded = len(self.train_hr)

    def height_scale(self) -> float:
        """Manifest ``value_scale``, else the std of each training patch's deviations from its mean."""
        value = self.manifest.get("value_scale")
        if value:
            return float(value)
        hr, valid = self.train_hr, self.train_mask.astype(bool)
        means = np.array([patch[m].mean() if m.any() else 0.0 for patch, m in zip(hr, valid, strict=True)])
        return float(np.std((hr - means[:, None, None, None])[valid]))

    def prepare_inputs(self, prepare) -> None:
        self.train_x, self.val_x = prepare(self.train_lr), prepare(self.val_lr)

    def validation(self):
        return pipelines.raster_validation_dataset(self.val_x, self.val_hr, self.val_mask)

    def training(self, settings: Settings, info: dict, seed: int, share=None):
        x, hr, mask = self.train_x, self.train_hr, self.train_mask
        if share is not None:
            x, hr, mask = x[share], hr[share], mask[share]
        return pipelines.make_raster_dataset(x, hr, mask, settings.batch, seed, settings.augment)

    @classmethod
    def random_pairs(cls, settings: Settings, info: dict, rng: np.random.Generator, count: int) -> dict:
        """``count`` random float32 one-band pairs of the data set's patch size, all cells valid (speed)."""
        side = pipelines.manifest_of(pipelines.dataset_dir(settings.dataset)).get("settings", {}).get("patch_size", 64)
        size = side // info["scale"]
        lr = model_input(info)(rng.normal(500.0, 100.0, (count, size, size, 1)).astype(np.float32))
        hr = rng.normal(500.0, 100.0, (count, side, side, 1)).astype(np.float32)
        mask = np.ones(hr.shape, np.uint8)
        train = pipelines.make_raster_dataset(lr, hr, mask, settings.batch, 0, settings.augment)
        return {"lr": lr, "hr": hr, "mask": mask, "train": train}

    def score(self, model, settings: Settings, folder_out: Path, meta: dict, ensemble=False) -> dict:
        from util.evaluation.pair_scores import score_raster_test_pairs

        return score_raster_test_pairs(model, settings, self.folder, folder_out, meta, ensemble, self.test_split)


class StackPairs(RasterPairs):
    """Raster pairs cut from the time steps of stacks and split in time (download_module/stack_pairs.py).

    Files, loading, the model (each patch normalised in its units by the data set's value
    scale), training and scores are the rasters'; what differs is which augmentations a
    geophysical field allows (``resolve_augment``) and the split the scores name (``test_split``).
    """

    kind = kinds.STACK
    augmentations = STACK_AUGMENTATIONS
    auto_augment = ("mirror", "amplitude")
    test_split = "split in time: each stack's last steps, after all of its training steps"

    @classmethod
    def resolve_augment(cls, names: tuple[str, ...], task: str, manifest: dict | None = None) -> tuple[str, ...]:
        """Stacks take the bicubic SR tasks; ``auto``: the east-west mirror and the amplitude.

        A field on a latitude-longitude grid is not the same field turned or flipped north-south:
        the meridional gradient (warm equator, cold pole), the Coriolis effect and the cells
        (narrower east-west away from the equator) all point one way. The east-west mirror keeps
        every row's latitude and cell size, and block means commute with it; the amplitude
        (values x 1/2..2: the model removes each patch's mean, so it sees the deviations from it
        scaled, a field of weaker or stronger contrasts) is linear like the block mean. ``flips``
        (rotations, north-south flips) is refused unless every stack is on a projected grid of
        square cells, and even there left to the user; ``invert`` (colder for warmer) only on
        request.
        """
        names = super().resolve_augment(names, task, manifest)
        if "flips" in names and (why := _not_rotatable(manifest or {})):
            raise UserError(
                f"AUGMENT={','.join(names)}: flips turns and flips the grid north-south, which {why} does not allow; "
                f"use auto or a list of {', '.join(n for n in cls.augmentations if n != 'flips')}"
            )
        return names

    def __init__(self, folder: Path, manifest: dict):
        super().__init__(folder, manifest)
        self.aux_card = self.train_aux = self.val_aux = None

    @classmethod
    def model_for(
        cls, build_model, settings: Settings, value_scale: float = 1.0, units: str = "m", patch: int = 0, aux=None
    ):
        """The raster model; with AUX its network also takes the static predictors (util.data.static).

        ``aux``: their card (the training patches' statistics); None with AUX: a placeholder card of
        the same channels (0 and 1), for timing the model (util.training.speed).
        """
        sources = static.parse_aux(settings.aux)
        if not sources:
            return super().model_for(build_model, settings, value_scale, units, patch)
        from util.models.layers import model_info, raster_model

        if "extra_channels" not in inspect.signature(build_model).parameters:
            raise UserError(
                f"AUX={settings.aux}: this script's model takes no extra input channels; train static predictors "
                "with edsr_lite.py"
            )
        aux = aux or static.card(sources, [], None, parse_task(settings.task).scale)
        extra = static.channels_of(aux)
        network = build_model(settings.task, channels=1, extra_channels=extra, **settings.model_kwargs)
        if model_info(network)["input_kind"] != "lr":
            raise UserError(f"AUX={settings.aux}: static predictors need a model at LR resolution, not hr-space")
        return raster_model(network, value_scale, units, patch, conserve=settings.conserve, aux=aux)

    def build(self, build_model, settings: Settings):
        return self.model_for(build_model, settings, self.value_scale, self.units, self.patch, self.aux_card)

    def load(self, settings: Settings) -> None:
        """The raster pairs, and with AUX the static predictors at each training and validation patch."""
        super().load(settings)
        sources = static.parse_aux(settings.aux)
        if not sources:
            return
        fields, how = static.stack_fields(self.manifest, sources, self.folder)
        patch, val_stop = self.train_hr.shape[1], self.val_start + len(self.val_hr)
        self.train_aux = static.patch_fields(self.manifest, "train", fields, patch, 0, self.n_loaded)
        self.val_aux = static.patch_fields(self.manifest, "train", fields, patch, self.val_start, val_stop)
        self.aux_card = static.card(sources, how, self.train_aux, parse_task(settings.task).scale)

    def prepare_inputs(self, prepare) -> None:
        super().prepare_inputs(prepare)
        if self.val_aux is not None:
            self.val_x = np.concatenate([self.val_x, static.lr_channels(self.val_aux, self.aux_card["scale"])], -1)

    def training(self, settings: Settings, info: dict, seed: int, share=None):
        if self.train_aux is None:
            return super().training(settings, info, seed, share)
        arrays = self.train_x, self.train_hr, self.train_mask, self.train_aux
        x, hr, mask, aux = arrays if share is None else (a[share] for a in arrays)
        return pipelines.make_raster_dataset(x, hr, mask, settings.batch, seed, settings.augment, aux, info["scale"])

    @classmethod
    def random_pairs(cls, settings: Settings, info: dict, rng: np.random.Generator, count: int) -> dict:
        """The rasters' random pairs; with static predictors, random fields beside them (speed)."""
        pairs = super().random_pairs(settings, info, rng, count)
        if not info.get("aux"):
            return pairs
        side, scale = pairs["hr"].shape[1], info["scale"]
        aux = rng.normal(0.0, 1.0, (count, side, side, len(info["aux"]["fields"]))).astype(np.float32)
        train = pipelines.make_raster_dataset(
            pairs["lr"], pairs["hr"], pairs["mask"], settings.batch, 0, settings.augment, aux, scale
        )
        return {**pairs, "lr": np.concatenate([pairs["lr"], static.lr_channels(aux, scale)], -1), "train": train}

    def score(self, model, settings: Settings, folder_out: Path, meta: dict, ensemble=False) -> dict:
        """The rasters' scores; a model with static predictors gets them at each test patch (its card's sources)."""
        from util.evaluation.pair_scores import score_raster_test_pairs
        from util.models.layers import model_info

        card = model_info(model).get("aux")
        if not card:
            return super().score(model, settings, folder_out, meta, ensemble)
        if ensemble:
            raise UserError("--ensemble: flips and rotations would scramble a model's static predictors; drop it")
        sources = static.card_sources(card, None, str(self.folder))
        fields, _ = static.stack_fields(self.manifest, sources, self.folder)
        patch = int(self.manifest["settings"]["patch_size"])
        aux = static.patch_fields(self.manifest, "test", fields, patch, 0, settings.test_patches or None)
        inputs = static.lr_channels(aux, card["scale"])
        return score_raster_test_pairs(
            model, settings, self.folder, folder_out, meta, ensemble, self.test_split, aux_inputs=inputs
        )


def _not_rotatable(manifest: dict) -> str:
    """Why the stacks of ``manifest`` must not be rotated ("" when all are projected grids of square cells)."""
    for entry in manifest.get("stacks", []):
        if entry.get("latitudes"):
            return f"{entry['name']}'s latitude-longitude grid"
        dy, dx = entry.get("cell_m", (1.0, 1.0))
        if abs(dy - dx) > 0.01 * max(dy, dx):
            return f"{entry['name']}'s {dy:g} x {dx:g} m cells"
    return ""


HANDLES: dict[str, type[Pairs]] = {kinds.PHOTO: PhotoPairs, kinds.RASTER: RasterPairs, kinds.STACK: StackPairs}
