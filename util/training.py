"""One training run: pairs -> tf.data -> model.fit -> the best weights -> scores -> report.

``train(script, settings, build_model, run_dir)`` trains on the first TRAIN_PATCHES
training pairs for BACKPROPS samples, keeps the best weights on validation, saves a
float32 ``model.keras``, scores it and the baseline on the test pairs (the prototype's
protocol) and writes the run folder (README.md, "What a run leaves").
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import errno
import itertools
import json
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from util.files import UserError, atomic_path, write_json_atomic
from util.models import model_info
from util.settings import Settings
from util.tasks import parse_task

REPO = Path(__file__).resolve().parent.parent


def run_name(script: str, settings: Settings) -> str:
    """``<script>-<task>-<train patches>``, and ``-<dataset>`` unless it is the builtin one."""
    name = f"{script}-{settings.task}-{settings.train_patches}"
    return name if settings.dataset == "builtin" else f"{name}-{Path(settings.dataset).name}"


def with_available_patches(settings: Settings) -> Settings:
    """``settings`` with TRAIN_PATCHES no larger than the data set's training pairs (the run's real count)."""
    import dataclasses

    from util import data

    folder = data.dataset_dir(settings.dataset)
    available = len(np.load(folder / "train_hr.npy", mmap_mode="r"))
    if settings.train_patches <= available:
        return settings
    print(f"note: TRAIN_PATCHES={settings.train_patches}, but {folder} has {available} training pairs: all are used")
    return dataclasses.replace(settings, train_patches=available)


def run_dir(script: str, settings: Settings) -> Path:
    """The run folder of these settings: ``<OUT>/<run_name>``, or ``<run_name>-2``, ``-3`` ... (see run_folder)."""
    return run_folder((REPO / settings.out / run_name(script, settings)).resolve(), settings)


def run_folder(base: Path, settings: Settings) -> Path:
    """The first of ``base``, ``base-2``, ``base-3`` ... whose settings.json holds these settings, or that is free.

    A folder holding other settings (or files but no settings.json) is never written into:
    runs with different settings get numbered folders beside it.
    """
    wanted = settings.to_json()
    for n in itertools.count(1):  # ends at the first free folder
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        saved = folder / "settings.json"
        if saved.exists():
            if saved_json(saved) == wanted:  # an unreadable settings.json is another run's: never written into
                return folder
        elif not folder.exists() or not any(folder.iterdir()):
            if n > 1:
                print(f"note: {base} holds a run with other settings; this one is {folder.name}")
            return folder


def saved_json(path: Path):
    """The JSON in ``path``, or None when it cannot be read (cut short, edited by hand)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def resume_state(folder: Path) -> tuple[float | None, float]:
    """(best val_loss so far, training seconds so far) of an interrupted run in ``folder``; (None, 0) when new."""
    if not (folder / "backup").exists():
        return None, 0.0
    best = None
    if (folder / "best.weights.h5").exists() and (folder / "training.csv").exists():
        with open(folder / "training.csv") as f:
            try:
                losses = [float(row["val_loss"]) for row in csv.DictReader(f) if row.get("val_loss")]
            except ValueError:
                raise UserError(
                    f"{folder / 'training.csv'}: a val_loss is not a number; delete {folder} to train again"
                ) from None
        best = min(losses) if losses else None
    clock = saved_json(folder / "train_seconds.json")
    seconds = clock["seconds"] if isinstance(clock, dict) and isinstance(clock.get("seconds"), int | float) else 0.0
    return best, seconds


LOCK = "run.lock"  # in a run folder while a process trains into it


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc), to tell a reused PID from its first owner."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _holder_runs(holder: dict) -> bool:
    """Whether the process that wrote the lock record ``holder`` still runs (on this host)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid < 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    ticks = _start_ticks(pid)
    return holder.get("start_ticks") is None or ticks is None or ticks == holder["start_ticks"]


def _read_lock(lock: Path) -> dict | None:
    """The record of ``lock``; None when it has gone; a UserError when it is not one this suite wrote."""
    try:
        holder = json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = None
    if not isinstance(holder, dict) or "pid" not in holder:
        raise UserError(f"{lock}: not a lock this suite wrote; delete it if no training writes this run folder")
    return holder


def _refuse(lock: Path, holder: dict):
    where = f"PID {holder['pid']} on host {holder.get('host')}, since {holder.get('since')}"
    here = holder.get("host") == socket.gethostname()
    fix = (
        "wait for it to end or give another OUT (--out)"
        if here
        else (f"wait for it to end, give another OUT (--out), or delete {lock} if that run is over")
    )
    return UserError(f"{lock.parent}: another training ({where}) writes this run folder; {fix}")


def _link_or_create(record: str, lock: Path) -> bool:
    """Create ``lock`` holding ``record`` whole, only if it does not exist; False when it does."""
    tmp = lock.with_name(f".{lock.name}.{os.getpid()}")
    tmp.write_text(record)
    try:
        os.link(tmp, lock)  # atomic, and the lock is never seen half-written
        return True
    except FileExistsError:
        return False
    except OSError as err:  # a file system without hard links: exclusive creation instead
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(record)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(lock: Path, holder: dict) -> None:
    """Remove the stale ``lock`` of ``holder``, unless another process replaced it meanwhile."""
    stale = lock.with_name(f".{lock.name}.stale.{os.getpid()}")
    try:
        os.rename(lock, stale)
    except FileNotFoundError:  # another process took it over first
        return
    try:
        if json.loads(stale.read_text()) != holder:  # a live lock taken over between our read and rename
            _link_or_create(stale.read_text(), lock)
            raise _refuse(lock, _read_lock(lock) or holder)
    finally:
        stale.unlink(missing_ok=True)
    print(
        f"note: {lock}: left by PID {holder['pid']} (since {holder.get('since')}), which no longer runs; "
        "taking the run folder over"
    )


@contextlib.contextmanager
def run_lock(folder: Path, settings: Settings):
    """Hold ``folder/run.lock`` (this PID, host and start) while training into ``folder``; write settings.json.

    A second process that trains into the same folder would resume the first's live backup
    and interleave their logs: it gets a UserError instead. A lock whose process no longer
    runs on this host (a killed run) is stale and taken over with a note; one from another
    host is refused, naming the file to delete. The lock goes on exit, exceptions included;
    a folder this call made and that holds nothing but settings.json then goes too.
    """
    new = not folder.exists() or not any(folder.iterdir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # OUT is a file, lies below one, or cannot be written
        in_the_way = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        reason = f"{in_the_way} is a file, not a folder" if in_the_way else (err.strerror or str(err)).lower()
        raise UserError(
            f"OUT={settings.out}: cannot make the run folder {folder}: {reason}; give --out a folder you can write"
        ) from None
    lock = folder / LOCK
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
        "start_ticks": _start_ticks(os.getpid()),
    }
    for _ in range(5):  # a few tries: other processes may take over or release at the same moment
        if _link_or_create(json.dumps(record), lock):
            break
        holder = _read_lock(lock)
        if holder is None:
            continue
        if holder.get("host") != socket.gethostname() or _holder_runs(holder):
            raise _refuse(lock, holder)
        _take_over(lock, holder)
    else:
        raise _refuse(lock, _read_lock(lock) or record)
    try:
        write_json_atomic(folder / "settings.json", settings.to_json())
        yield folder
    finally:
        with contextlib.suppress(OSError, UserError):
            if _read_lock(lock) == record:
                lock.unlink()
        if new and {p.name for p in folder.iterdir()} <= {"settings.json"}:
            (folder / "settings.json").unlink(missing_ok=True)
            folder.rmdir()


def configure_precision(precision: str) -> str:
    """Set Keras's global dtype policy; return the one in force.

    ``auto`` picks half precision only where the hardware computes it natively: on GPUs
    bfloat16 from compute capability 8 (Ampere), float16 from 7 (Volta, Turing; Keras
    wraps the optimizer in a LossScaleOptimizer), and on CPUs bfloat16 where they have
    AMX or AVX512-BF16 (twice the training speed measured on such a Xeon; elsewhere bf16
    is emulated and slower than float32). Variables and the model output stay float32.
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if precision == "mixed_float16" and not gpus:
        raise UserError("PRECISION=mixed_float16 needs a GPU and this machine has none; use auto (--precision auto)")
    if precision == "auto" and gpus:
        capability = min(tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus)
        precision = "mixed_bfloat16" if capability >= (8, 0) else "mixed_float16" if capability >= (7, 0) else "float32"
    elif precision == "auto":
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        precision = "mixed_bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def make_optimizer(settings: Settings, total_steps: int):
    """Adam at LEARNING_RATE, constant or cosine-decayed to zero; EMA of the weights if EMA > 0."""
    import keras

    rate = settings.learning_rate
    if settings.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total_steps)
    if settings.ema:
        return keras.optimizers.Adam(learning_rate=rate, use_ema=True, ema_momentum=settings.ema)
    return keras.optimizers.Adam(learning_rate=rate)


def stored_input(info: dict):
    """Degraded patches -> patches in the model's input kind (upsampled once, up front).

    uint8 photo patches stay uint8 (rounded as MATLAB); float raster patches stay float32.
    """
    if info["input_kind"] == "upsampled" and info["scale"] > 1:
        from util.resize import bicubic_upscale

        def upsample(lr):
            up = bicubic_upscale(lr, info["scale"], batch=True)
            return up if up.dtype == np.uint8 else up.astype(np.float32)

        return upsample
    return lambda lr: lr


def streamed(folder: Path, settings: Settings) -> bool:
    """Whether the training pairs of a photo data set are too large to load (util.data.IN_MEMORY_BYTES)."""
    from util import data

    if data.dataset_kind(folder) == "raster":  # raster data sets are small grids cut in patches: in memory
        return False
    files = data.patch_files(folder, settings.task, "train", settings.train_patches)
    return sum(f.nbytes for f in files if f is not None) > data.IN_MEMORY_BYTES


def build_for_data(build_model, settings: Settings, kind: str, value_scale: float = 1.0, units: str = "m"):
    """The script's model for this kind of data: RGB for photos, a one-channel raster model in data units."""
    from util.models import raster_model

    if kind == "raster":
        return raster_model(build_model(settings.task, channels=1, **settings.model_kwargs), value_scale, units)
    return build_model(settings.task, **settings.model_kwargs)


def initial_model(path: str, model, kind: str):
    """The saved model at ``path`` (INIT_FROM), checked to be of ``model``'s task, kind and architecture."""
    from util.models import load_model

    saved, saved_info = load_model(Path(path).expanduser())
    info = model_info(model)
    for key, what in (("task", "TASK"), ("data_kind", "kind of data"), ("architecture", "architecture")):
        if saved_info.get(key, "photo" if key == "data_kind" else None) != info[key]:
            raise UserError(
                f"INIT_FROM={path}: a model for {what} {saved_info.get(key)!r}, this run needs {info[key]!r}; "
                "give a model.keras of the same script, task and kind of data"
            )
    shapes = [w.shape for w in saved.get_weights()]
    if shapes != [w.shape for w in model.get_weights()]:
        raise UserError(f"INIT_FROM={path}: its layers differ from this run's ({kind}); give the same script and sizes")
    return saved, saved_info


def raster_value_scale(folder: Path, hr: np.ndarray, mask: np.ndarray) -> float:
    """The data set's height scale: manifest ``value_scale``, else the std of each patch's deviations from its mean."""
    from util.data import manifest_of

    value = manifest_of(folder).get("value_scale")
    if value:
        return float(value)
    valid = mask.astype(bool)
    means = np.array([patch[m].mean() if m.any() else 0.0 for patch, m in zip(hr, valid, strict=True)])
    return float(np.std((hr - means[:, None, None, None])[valid]))


def training_dataset(inputs, targets, settings: Settings, info: dict, seed: int):
    """The training's tf.data pipeline (util.data.make_dataset) with the settings' batch and augmentations."""
    from util import data

    task = parse_task(settings.task)
    if task.synthetic:
        return data.make_synthetic_dataset(
            targets, settings.batch, seed, task, augment=settings.augment, as_float=settings.noisy == "float"
        )
    return data.make_dataset(
        inputs,
        targets,
        settings.batch,
        seed,
        augment=settings.augment,
        shift_scale=info["scale"] if parse_task(settings.task).is_bicubic_sr else 0,
        upsampled=info["input_kind"] == "upsampled",
    )


def _training_clock():
    import keras

    class TrainingClock(keras.callbacks.Callback):
        """Writes the training seconds of the finished epochs (with ``start`` seconds before them) to ``path``."""

        def __init__(self, path: Path, start: float):
            super().__init__()
            self.path, self.start = path, start

        def on_train_begin(self, logs=None):
            self.began = time.time()

        def on_epoch_end(self, epoch, logs=None):
            write_json_atomic(self.path, {"seconds": self.start + time.time() - self.began, "epochs": epoch + 1})

    return TrainingClock


def train(
    script: str, settings: Settings, build_model, folder_out: Path, minutes_asked: float | None = None, ensemble=False
) -> Path:
    """Train one run into ``folder_out``; return it. ``build_model(task, **settings.model_kwargs)``.

    ``ensemble``: also score the test pairs with the self-ensemble.
    """
    import keras

    from util import data, distribute

    started = time.time()
    saved_settings = folder_out / "settings.json"
    if saved_settings.exists() and saved_json(saved_settings) != settings.to_json():
        raise UserError(f"{folder_out}: holds a run with other settings ({saved_settings}); give another OUT")
    if saved_settings.exists() and (folder_out / "results.json").exists() and not (folder_out / "backup").exists():
        print(f"{script}: already trained with these settings in {folder_out}; delete that folder to train again")
        return folder_out
    data.dataset_dir(settings.dataset)  # a missing data set is an error before TensorFlow starts
    place = distribute.placement(settings.distribute, settings.batch)  # before any other TensorFlow op
    precision = configure_precision(settings.precision)
    keras.utils.set_random_seed(settings.seed)
    if not place.chief:  # only the chief writes (and locks) the run folder
        return _train(script, settings, build_model, folder_out, minutes_asked, ensemble, started, place, precision)
    with run_lock(folder_out, settings):
        if (folder_out / "results.json").exists() and not (folder_out / "backup").exists():
            print(f"{script}: already trained with these settings in {folder_out} (by a run that has just ended)")
            return folder_out
        return _train(script, settings, build_model, folder_out, minutes_asked, ensemble, started, place, precision)


def _train(script, settings, build_model, folder_out, minutes_asked, ensemble, started, place, precision) -> Path:
    """The body of ``train``, from the data to the report, once the placement and the run folder are settled."""
    import keras

    from util import data, distribute, report

    folder = data.dataset_dir(settings.dataset)
    kind = data.dataset_kind(folder)
    n_train_total = len(np.load(folder / "train_hr.npy", mmap_mode="r"))
    val_start = max(0, n_train_total - settings.val_patches)
    if kind == "raster":
        train_lr, train_hr, train_mask, _ = data.load_raster_split(
            folder, settings.task, "train", settings.train_patches
        )
        val_lr, val_hr, val_mask, _ = data.load_raster_split(
            folder, settings.task, "train", settings.val_patches, start=val_start
        )
        value_scale = raster_value_scale(folder, train_hr, train_mask)
    elif streamed(folder, settings):  # larger than IN_MEMORY_BYTES: read from disk as training runs
        train_lr, train_hr = data.patch_files(folder, settings.task, "train", settings.train_patches)
        val_lr, val_hr = data.load_split(folder, settings.task, "train", settings.val_patches, start=val_start)
        value_scale = 1.0
        print(f"note: {len(train_hr)} training pairs are read from disk as training runs (more than fit in memory)")
    elif parse_task(settings.task).synthetic:  # degraded afresh in tf.data: only the HR patches are needed
        train_hr = data.load_hr(folder, "train", settings.train_patches)
        train_lr = None
        val_lr, val_hr = data.load_split(folder, settings.task, "train", settings.val_patches, start=val_start)
        value_scale = 1.0
    else:
        train_lr, train_hr = data.load_split(folder, settings.task, "train", settings.train_patches)
        val_lr, val_hr = data.load_split(folder, settings.task, "train", settings.val_patches, start=val_start)
        value_scale = 1.0
    units = data.manifest_of(folder).get("units", "m")
    if settings.init_from:  # fine-tuning keeps the saved model's normalisation
        probe = build_for_data(build_model, settings, kind, value_scale, units)
        saved, saved_info = initial_model(settings.init_from, probe, kind)
        value_scale = saved_info.get("value_scale", value_scale)
    with place.strategy.scope():
        model = build_for_data(build_model, settings, kind, value_scale, units)
    if settings.init_from:
        model.set_weights(saved.get_weights())
        print(f"{script}: starting from the weights of {settings.init_from}")
    info = model_info(model)
    if val_start < len(train_hr):
        print(f"note: the {settings.val_patches} validation pairs overlap the {len(train_hr)} training pairs")
    prepare = stored_input(info)
    if isinstance(train_lr, data.PatchFile):  # the input kind applied to each patch as it is read
        train_lr.prepare = lambda patch: prepare(patch[None])[0]
        train_x = train_lr
    else:
        train_x = None if train_lr is None else prepare(train_lr)
    val_x = prepare(val_lr)

    steps_total = max(1, settings.backprops // settings.batch)
    epochs = min(settings.epochs, steps_total)
    steps_per_epoch = math.ceil(steps_total / epochs)
    if kind == "raster":
        val_ds = data.raster_validation_dataset(val_x, val_hr, val_mask)
        if place.workers == 1:
            train_ds = data.make_raster_dataset(
                train_x, train_hr, train_mask, settings.batch, settings.seed, settings.augment
            )
    else:
        val_ds = data.validation_dataset(val_x, val_hr)
        if place.workers == 1:
            train_ds = training_dataset(train_x, train_hr, settings, info, seed=settings.seed)
    if place.workers > 1:
        # Each worker builds (and augments) only its share of the training pairs, in batches of
        # one replica's share of BATCH; the small validation set is split batch by batch.
        def worker_share(context):
            share = np.s_[context.input_pipeline_id :: context.num_input_pipelines]
            local = dataclasses.replace(settings, batch=context.get_per_replica_batch_size(settings.batch))
            seed = settings.seed + context.input_pipeline_id
            x = None if train_x is None else train_x[share]
            if kind == "raster":
                return data.make_raster_dataset(x, train_hr[share], train_mask[share], local.batch, seed, local.augment)
            return training_dataset(x, train_hr[share], local, info, seed=seed)

        train_ds = place.strategy.distribute_datasets_from_function(worker_share)
        val_ds = val_ds.with_options(distribute.shard_by_data())

    backup = folder_out / "backup"  # the chief's: every worker resumes from it
    best_so_far, seconds_so_far = resume_state(folder_out)
    if place.chief:  # run_lock made the folder and wrote settings.json
        if best_so_far is None:  # a new run: no rows of an earlier attempt in its log
            (folder_out / "training.csv").unlink(missing_ok=True)
    else:  # the other workers write their logs and checkpoints where no user looks, and delete them
        chief_folder = folder_out
        folder_out = Path(tempfile.mkdtemp(prefix=f"{folder_out.name}-{place.task.replace('/', '')}-"))
    best = folder_out / "best.weights.h5"
    # With EMA, SwapEMAWeights puts the averaged weights in the model for validation and for
    # ModelCheckpoint (after it in the list); the backup before it keeps the raw ones to resume.
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if settings.ema else []
    TrainingClock = _training_clock()
    callbacks = [
        distribute.backup_and_restore(str(backup), place.chief),
        *swap,
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far,  # a resumed run keeps the best of its first part
        ),
        keras.callbacks.CSVLogger(str(folder_out / "training.csv"), append=True),
        TrainingClock(folder_out / "train_seconds.json", seconds_so_far),
        keras.callbacks.TensorBoard(str(folder_out / "tensorboard"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    with place.strategy.scope():
        model.compile(optimizer=make_optimizer(settings, steps_per_epoch * epochs), loss=settings.loss)
    replicas = f", {place.replicas} replicas ({place.name}, {place.workers} workers)" if place.replicas > 1 else ""
    print(
        f"{script}: {info['architecture']}, {model.count_params():,} parameters, {precision}{replicas}; "
        f"{len(train_hr)} training pairs from {folder}, {epochs} epochs x {steps_per_epoch} steps "
        f"x batch {settings.batch}"
    )
    fit_started = time.time()
    with distribute.worker_lost(place):
        model.fit(
            train_ds,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            callbacks=callbacks,
            shuffle=False,  # tf.data already shuffles
            verbose=2,
        )
        train_seconds = seconds_so_far + (time.time() - fit_started)
        if not np.isfinite(model.evaluate(val_ds, verbose=0)):
            raise UserError(f"training diverged (loss is not finite); lower LEARNING_RATE={settings.learning_rate}")
    if best.exists():
        model.load_weights(best)
    if not place.chief:
        shutil.rmtree(folder_out, ignore_errors=True)
        print(f"{script}: worker {place.task} done; the chief writes {chief_folder}")
        return chief_folder

    # Save in float32 whatever the training precision, so that the model runs fast
    # on any CPU: rebuild the same architecture under the float32 policy.
    keras.mixed_precision.set_global_policy("float32")
    saved = build_for_data(build_model, settings, kind, value_scale, units)
    saved.set_weights(model.get_weights())
    with atomic_path(folder_out / "model.keras") as tmp:
        keras.saving.save_model(saved, tmp)
    best.unlink(missing_ok=True)
    (folder_out / "train_seconds.json").unlink(missing_ok=True)

    backprops = steps_per_epoch * epochs * settings.batch
    meta = {
        "model": script,
        "architecture": info["architecture"],
        "parameters": int(saved.count_params()),
        "dataset": settings.dataset,
        "task": settings.task,
        "train_patches": len(train_hr),
        "backprops": backprops,
        "batch": settings.batch,
        "learning_rate": settings.learning_rate,
        "settings": settings.to_json(),
        "seed": settings.seed,
        "precision": precision,
        **place.describe(),
        "data_kind": kind,
        "init_from": settings.init_from,
        "train_seconds": round(train_seconds, 1),
        "train_samples_per_second": round(backprops / train_seconds, 2),
    }
    if minutes_asked:
        meta["minutes_asked"] = minutes_asked
    score = score_raster_test_pairs if kind == "raster" else score_test_pairs
    results = score(saved, settings, folder, folder_out, meta, ensemble)
    report.training_curve(folder_out / "training.csv", folder_out / "training_curve.png")
    report.model_diagram(saved, folder_out / "model.png")
    results["wall_seconds"] = round(time.time() - started, 1)
    write_json_atomic(folder_out / "results.json", results)
    report.results_markdown(results, folder_out / "results.md")
    print(f"{report.summary_line(results)}; wall time {results['wall_seconds']:.0f} s; outputs in {folder_out}")
    return folder_out


def score_test_pairs(model, settings: Settings, folder: Path, folder_out: Path, meta: dict, ensemble=False) -> dict:
    """Score ``model`` and the baseline on the test pairs (the prototype's protocol); write comparison.png."""
    from util import data, report
    from util.evaluation import PROTOTYPE_PROTOCOL, baseline, score_patches
    from util.inference import predict_patches

    info = model_info(model)
    task = parse_task(settings.task)
    test_lr, test_hr = data.load_split(folder, settings.task, "test", settings.test_patches or None)
    started = time.time()
    outputs = predict_patches(model, info, test_lr)
    infer_seconds = time.time() - started
    base = baseline(test_lr, task)
    results = dict(meta)
    results.update(
        n_test=len(test_hr),
        protocol=PROTOTYPE_PROTOCOL,
        baseline_name=task.baseline_name,
        baseline=score_patches(base, test_hr),
        model_scores=score_patches(outputs, test_hr),
        test_patches_per_second=round(len(test_hr) / infer_seconds, 2),
    )
    if ensemble:
        started = time.time()
        results["ensemble_scores"] = score_patches(predict_patches(model, info, test_lr, ensemble=True), test_hr)
        results["ensemble_patches_per_second"] = round(len(test_hr) / (time.time() - started), 2)
    report.comparison_figure(test_lr, base, outputs, test_hr, results, folder_out / "comparison.png")
    return results


def score_raster_test_pairs(model, settings: Settings, folder: Path, folder_out: Path, meta: dict, ensemble=False):
    """Score a raster model, bicubic and cubic spline on the raster test pairs in data units; write comparison.png.

    Over the valid cells only: RMSE, MAE, bias, slope RMSE (degrees, Horn, each patch's
    cell size) and PSNR on range-normalised heights (util.raster_metrics.raster_scores).
    """
    from util import data, raster_eval, raster_metrics
    from util.raster_enhance import predict_raster_patches

    info = model_info(model)
    scale = info["scale"]
    lr, hr, mask, cells = data.load_raster_split(folder, settings.task, "test", settings.test_patches or None)
    started = time.time()
    outputs = predict_raster_patches(model, info, lr)
    infer_seconds = time.time() - started
    valid = mask[..., 0].astype(bool)
    targets = hr[..., 0]
    methods = {
        "bicubic": np.stack([raster_metrics.upsample_bicubic(p, scale) for p in lr[..., 0]]),
        "cubic spline": np.stack([raster_metrics.upsample_spline(p, scale) for p in lr[..., 0]]),
        "model": outputs[..., 0],
    }
    if ensemble:
        methods["model + self-ensemble"] = predict_raster_patches(model, info, lr, ensemble=True)[..., 0]
    results = dict(meta)
    results.update(
        n_test=len(hr),
        protocol="raster: valid cells of the test patches (spatially disjoint from training), data units",
        units=data.manifest_of(folder).get("units", "m"),
        raster_scores={
            name: raster_metrics.raster_scores(values, targets, valid, cells) for name, values in methods.items()
        },
        test_patches_per_second=round(len(hr) / infer_seconds, 2),
    )
    raster_eval.raster_comparison_figure(
        targets[:4],
        valid[:4],
        lr[:4, ..., 0],
        {k: v[:4] for k, v in methods.items()},
        cells[:4],
        folder_out / "comparison.png",
        results["units"],
    )
    return results
