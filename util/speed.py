"""Training speed on this machine: samples/s of ``model.fit`` as a run trains (``--minutes``, benchmark.py)."""

from __future__ import annotations

import time

import numpy as np

from util.models import model_info
from util.settings import Settings


def training_speed(build_model, settings: Settings, seconds: float, validation_patches: int = 0) -> dict:
    """Samples/s of training ``build_model(task, **model_kwargs)`` with the settings' recipe, on random patches.

    The patches are of the settings' data set's kind: 128x128 RGB photo patches, or for a
    raster data set one-channel float32 patches of its patch size through the raster model.

    The steps run as in ``util.training.train``: ``model.fit`` on the training's own tf.data
    pipeline and precision, timed from the end of the second step (tracing, oneDNN's first
    calls) for at least ``seconds`` and 3 steps. ``validation_patches``: also time one
    validation pass over that many pairs (after a warm-up pass), as ``validation_seconds``.
    """
    import keras

    from util import data
    from util.pairs import build_for_data, model_input, photo_training
    from util.training import configure_precision, make_optimizer

    precision = configure_precision(settings.precision)
    keras.utils.set_random_seed(0)
    kind = data.dataset_kind(settings.dataset)
    model = build_for_data(build_model, settings, kind, value_scale=100.0)
    info = model_info(model)
    model.compile(optimizer=make_optimizer(settings, 10_000), loss=settings.loss)
    rng = np.random.default_rng(0)
    count = 4 * settings.batch
    if kind == "raster":  # float32 one-channel patches of the data set's size, with masks
        side = data.manifest_of(data.dataset_dir(settings.dataset)).get("settings", {}).get("patch_size", 64)
        size = side // info["scale"]
        lr = model_input(info)(rng.normal(500.0, 100.0, (count, size, size, 1)).astype(np.float32))
        hr = rng.normal(500.0, 100.0, (count, side, side, 1)).astype(np.float32)
        mask = np.ones(hr.shape, np.uint8)
        train_ds = data.make_raster_dataset(lr, hr, mask, settings.batch, 0, settings.augment)
    else:
        size = 128 // info["scale"]
        lr = model_input(info)(rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))
        hr = rng.integers(0, 256, (count, 128, 128, 3), dtype=np.uint8)
        train_ds = photo_training(lr, hr, settings, info, seed=0)

    class StepTimer(keras.callbacks.Callback):
        """Stops ``fit`` once ``seconds`` and 3 steps have passed after two warm-up steps."""

        seen, steps, start, elapsed = 0, 0, 0.0, 0.0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            now = time.perf_counter()
            if self.seen == 2:
                self.start = now
            elif self.seen > 2:
                self.steps, self.elapsed = self.seen - 2, now - self.start
                if self.steps >= 3 and self.elapsed >= seconds:
                    self.model.stop_training = True

    timer = StepTimer()
    model.fit(
        train_ds,
        epochs=1,
        steps_per_epoch=10**9,  # until the timer stops it
        callbacks=[timer],
        shuffle=False,  # tf.data already shuffles
        verbose=0,
    )
    result = {
        "architecture": info["architecture"],
        "parameters": int(model.count_params()),
        "task": settings.task,
        "batch": settings.batch,
        "precision": precision,
        "steps": timer.steps,
        "seconds": round(timer.elapsed, 1),
        "samples_per_second": round(timer.steps * settings.batch / timer.elapsed, 2),
    }
    if validation_patches:
        index = rng.integers(0, len(lr), validation_patches)
        val_ds = (
            data.raster_validation_dataset(lr[index], hr[index], mask[index])
            if kind == "raster"
            else data.validation_dataset(lr[index], hr[index])
        )
        model.evaluate(val_ds, verbose=0)
        start = time.perf_counter()
        model.evaluate(val_ds, verbose=0)
        result["validation_seconds"] = round(time.perf_counter() - start, 2)
    keras.backend.clear_session()
    return result
