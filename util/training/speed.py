"""Training speed on this machine: samples/s of ``model.fit`` as a run trains (``--minutes``, benchmark.py training)."""

from __future__ import annotations

import time

import numpy as np

from util.models.layers import model_info
from util.training.settings import Settings


def training_speed(build_model, settings: Settings, seconds: float, validation_patches: int = 0) -> dict:
    """Samples/s of training ``build_model(task, **model_kwargs)`` with the settings' recipe, on random patches.

    The patches are of the settings' data set's kind: 128x128 RGB photo patches, or for a
    raster data set one-channel float32 patches of its patch size through the raster model.

    The steps run as in ``util.training.run.train``: ``model.fit`` on the training's own tf.data
    pipeline and precision, timed from the end of the second step (tracing, oneDNN's first
    calls) for at least ``seconds`` and 3 steps. ``validation_patches``: also time one
    validation pass over that many pairs (after a warm-up pass), as ``validation_seconds``.
    """
    import keras

    from util.data.pairs import pairs_class
    from util.training.run import configure_precision, make_optimizer

    precision = configure_precision(settings.precision)
    keras.utils.set_random_seed(0)
    handle = pairs_class(settings.dataset)
    model = handle.model_for(build_model, settings, value_scale=100.0)
    info = model_info(model)
    model.compile(optimizer=make_optimizer(settings, 10_000), loss=settings.loss)
    rng = np.random.default_rng(0)
    patches = handle.random_pairs(settings, info, rng, count=4 * settings.batch)
    steps, elapsed = timed_fit(model, patches["train"], seconds)
    result = {
        "architecture": info["architecture"],
        "parameters": int(model.count_params()),
        "task": settings.task,
        "batch": settings.batch,
        "precision": precision,
        "steps": steps,
        "seconds": round(elapsed, 1),
        "samples_per_second": round(steps * settings.batch / elapsed, 2),
    }
    if validation_patches:
        index = rng.integers(0, len(patches["lr"]), validation_patches)
        result["validation_seconds"] = validation_seconds(model, patches, index)
    keras.backend.clear_session()
    return result


def timed_fit(model, train_ds, seconds: float) -> tuple[int, float]:
    """(steps, seconds) of ``model.fit`` on ``train_ds`` after two warm-up steps, for ``seconds`` and 3 steps."""
    import keras

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
    return timer.steps, timer.elapsed


def validation_seconds(model, patches: dict, index: np.ndarray) -> float:
    """Seconds of one validation pass over the pairs ``index`` of ``patches``, after a warm-up pass."""
    from util.data import pipelines

    lr, hr, mask = patches["lr"][index], patches["hr"][index], patches["mask"]
    val_ds = (
        pipelines.raster_validation_dataset(lr, hr, mask[index])
        if mask is not None
        else pipelines.validation_dataset(lr, hr)
    )
    model.evaluate(val_ds, verbose=0)
    start = time.perf_counter()
    model.evaluate(val_ds, verbose=0)
    return round(time.perf_counter() - start, 2)
