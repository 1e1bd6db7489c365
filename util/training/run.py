"""One training run: pairs -> tf.data -> model.fit -> the best weights -> scores -> report.

``train(script, settings, build_model, run_dir)`` trains on the first TRAIN_PATCHES
training pairs for BACKPROPS samples, keeps the best weights on validation, saves a
float32 ``model.keras``, scores it and the baseline on the test pairs (the prototype's
protocol) and writes the run folder (README.md, "What a run leaves").
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from util.io.files import UserError, atomic_path, write_json_atomic
from util.io.provenance import architecture_text
from util.models.layers import model_info
from util.training.folders import resume_state, run_lock, saved_json
from util.training.settings import Settings


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


def initial_model(path: str, model):
    """The saved model at ``path`` (INIT_FROM), checked to be of ``model``'s task, kind and architecture."""
    from util.models.loading import load_model

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
        raise UserError(
            f"INIT_FROM={path}: its layers differ from this run's ({info['data_kind']}); give the same script and sizes"
        )
    return saved, saved_info


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


@dataclasses.dataclass
class Run:
    """One training run as its steps see it: what it trains, where to, on which devices."""

    script: str
    settings: Settings
    build_model: object  # the script's build_model(task, **model_kwargs)
    folder: Path  # the run folder; a worker other than the chief logs to a temporary one (see fit)
    started: float
    minutes_asked: float | None = None
    ensemble: bool = False
    place: object = None  # util.training.distribute.placement
    precision: str = "float32"


def train(
    script: str, settings: Settings, build_model, folder_out: Path, minutes_asked: float | None = None, ensemble=False
) -> Path:
    """Train one run into ``folder_out``; return it. ``build_model(task, **settings.model_kwargs)``.

    ``ensemble``: also score the test pairs with the self-ensemble.
    """
    import keras

    from util.data.pairs import open_pairs
    from util.training import distribute

    run = Run(script, settings, build_model, folder_out, time.time(), minutes_asked, ensemble)
    if finished(run, settings_too=True):
        print(f"{script}: already trained with these settings in {folder_out}; delete that folder to train again")
        return folder_out
    pairs = open_pairs(settings.dataset)  # a missing data set is an error before TensorFlow starts
    run.place = distribute.placement(settings.distribute, settings.batch)  # before any other TensorFlow op
    run.precision = configure_precision(settings.precision)
    keras.utils.set_random_seed(settings.seed)
    if not run.place.chief:  # only the chief writes (and locks) the run folder
        return train_steps(run, pairs)
    with run_lock(folder_out, settings):
        if finished(run):
            print(f"{script}: already trained with these settings in {folder_out} (by a run that has just ended)")
            return folder_out
        return train_steps(run, pairs)


def finished(run: Run, settings_too: bool = False) -> bool:
    """Whether ``run.folder`` holds this run, trained; a UserError when it holds a run with other settings."""
    saved_settings = run.folder / "settings.json"
    if saved_settings.exists() and saved_json(saved_settings) != run.settings.to_json():
        raise UserError(f"{run.folder}: holds a run with other settings ({saved_settings}); give another OUT")
    done = (run.folder / "results.json").exists() and not (run.folder / "backup").exists()
    return done and (saved_settings.exists() or not settings_too)


def train_steps(run: Run, pairs) -> Path:
    """The run once its placement and folder are settled: pairs -> model -> fit -> float32 model -> scores."""
    pairs.load(run.settings)
    model = run_model(run, pairs)
    info = model_info(model)
    train_ds, val_ds = pairs.tf_data(run.settings, info, run.place)
    chief_folder = run.folder
    backprops, train_seconds = fit(run, model, train_ds, val_ds, pairs)
    if not run.place.chief:
        shutil.rmtree(run.folder, ignore_errors=True)
        print(f"{run.script}: worker {run.place.member} done; the chief writes {chief_folder}")
        return chief_folder
    saved = save_float32(run, pairs, model)
    meta = run_meta(run, pairs, saved, backprops, train_seconds)
    return report_run(run, pairs, saved, meta)


def run_model(run: Run, pairs):
    """The run's model under the distribution strategy, started from INIT_FROM's weights when given.

    Fine-tuning keeps the saved model's normalisation (its ``value_scale``, rasters).
    """
    settings = run.settings
    if settings.init_from:
        saved, saved_info = initial_model(settings.init_from, pairs.build(run.build_model, settings))
        pairs.value_scale = saved_info.get("value_scale", pairs.value_scale)
    with run.place.strategy.scope():
        model = pairs.build(run.build_model, settings)
    if settings.init_from:
        model.set_weights(saved.get_weights())
        print(f"{run.script}: starting from the weights of {settings.init_from}")
    return model


def callbacks(run: Run, backup: Path, best: Path, best_so_far: float | None, seconds_so_far: float) -> list:
    """Backup (to resume), the best weights on validation, the log, the clock, TensorBoard, NaN stop."""
    import keras

    from util.training import distribute

    # With EMA, SwapEMAWeights puts the averaged weights in the model for validation and for
    # ModelCheckpoint (after it in the list); the backup before it keeps the raw ones to resume.
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if run.settings.ema else []
    TrainingClock = _training_clock()
    return [
        distribute.backup_and_restore(str(backup), run.place.chief),
        *swap,
        keras.callbacks.ModelCheckpoint(
            str(best),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far,  # a resumed run keeps the best of its first part
        ),
        keras.callbacks.CSVLogger(str(run.folder / "training.csv"), append=True),
        TrainingClock(run.folder / "train_seconds.json", seconds_so_far),
        keras.callbacks.TensorBoard(str(run.folder / "tensorboard"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]


def fit(run: Run, model, train_ds, val_ds, pairs) -> tuple[int, float]:
    """``model.fit`` for BACKPROPS samples, resumable, the best weights kept; (backprops, training seconds)."""
    from util.training import distribute

    settings, place = run.settings, run.place
    steps_total = max(1, settings.backprops // settings.batch)
    epochs = min(settings.epochs, steps_total)
    steps_per_epoch = math.ceil(steps_total / epochs)
    backup = run.folder / "backup"  # the chief's: every worker resumes from it
    best_so_far, seconds_so_far = resume_state(run.folder)
    if place.chief:  # run_lock made the folder and wrote settings.json
        if best_so_far is None:  # a new run: no rows of an earlier attempt in its log
            (run.folder / "training.csv").unlink(missing_ok=True)
    else:  # the other workers write their logs and checkpoints where no user looks, and delete them
        run.folder = Path(tempfile.mkdtemp(prefix=f"{run.folder.name}-{place.member.replace('/', '')}-"))
    best = run.folder / "best.weights.h5"
    with place.strategy.scope():
        model.compile(optimizer=make_optimizer(settings, steps_per_epoch * epochs), loss=settings.loss)
    info = model_info(model)
    replicas = f", {place.replicas} replicas ({place.name}, {place.workers} workers)" if place.replicas > 1 else ""
    print(
        f"{run.script}: {architecture_text(info)}, {model.count_params():,} parameters, {run.precision}{replicas}; "
        f"{pairs.n_loaded} training pairs from {pairs.folder}, {epochs} epochs x {steps_per_epoch} steps "
        f"x batch {settings.batch}"
    )
    fit_started = time.time()
    with distribute.worker_lost(place):
        model.fit(
            train_ds,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            callbacks=callbacks(run, backup, best, best_so_far, seconds_so_far),
            shuffle=False,  # tf.data already shuffles
            verbose=2,
        )
        train_seconds = seconds_so_far + (time.time() - fit_started)
        if not np.isfinite(model.evaluate(val_ds, verbose=0)):
            raise UserError(f"training diverged (loss is not finite); lower LEARNING_RATE={settings.learning_rate}")
    if best.exists():
        model.load_weights(best)
    return steps_per_epoch * epochs * settings.batch, train_seconds


def save_float32(run: Run, pairs, model):
    """The trained model rebuilt in float32 (fast on any CPU, whatever the training precision), saved as model.keras."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    saved = pairs.build(run.build_model, run.settings)
    saved.set_weights(model.get_weights())
    with atomic_path(run.folder / "model.keras") as tmp:
        keras.saving.save_model(saved, tmp)
    (run.folder / "best.weights.h5").unlink(missing_ok=True)
    (run.folder / "train_seconds.json").unlink(missing_ok=True)
    return saved


def run_meta(run: Run, pairs, saved, backprops: int, train_seconds: float) -> dict:
    """What results.json says of the run besides its scores."""
    settings, info = run.settings, model_info(saved)
    meta = {
        "model": run.script,
        "architecture": info["architecture"],
        "parameters": int(saved.count_params()),
        "dataset": settings.dataset,
        "task": settings.task,
        "train_patches": pairs.n_loaded,
        "backprops": backprops,
        "batch": settings.batch,
        "learning_rate": settings.learning_rate,
        "settings": settings.to_json(),
        "seed": settings.seed,
        "precision": run.precision,
        **run.place.describe(),
        "data_kind": pairs.kind,
        "init_from": settings.init_from,
        "train_seconds": round(train_seconds, 1),
        "train_samples_per_second": round(backprops / train_seconds, 2),
    }
    if run.minutes_asked:
        meta["minutes_asked"] = run.minutes_asked
    return meta


def report_run(run: Run, pairs, saved, meta: dict) -> Path:
    """Score the saved model on the test pairs; write results.json, results.md and the figures."""
    from util.evaluation import report

    folder = run.folder
    results = pairs.score(saved, run.settings, folder, meta, run.ensemble)
    report.training_curve(folder / "training.csv", folder / "training_curve.png")
    report.model_diagram(saved, folder / "model.png")
    results["wall_seconds"] = round(time.time() - run.started, 1)
    write_json_atomic(folder / "results.json", results)
    report.results_markdown(results, folder / "results.md")
    print(f"{report.summary_line(results)}; wall time {results['wall_seconds']:.0f} s; outputs in {folder}")
    return folder
