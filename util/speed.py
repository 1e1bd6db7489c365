"""Training speed on this machine: samples/s of ``model.fit`` as a run trains (``--minutes``, benchmark.py)."""

from __future__ import annotations

import time

import numpy as np

from util.models import model_info
from util.settings import Settings


def training_speed(build_model, settings: Settings, seconds: float, validation_patches: int = 0) -> dict:
    """Samples/s of training ``build_model(task, **model_kwargs)`` with the settings' recipe, on random patches.

    The steps run as in ``util.training.train``: ``model.fit`` on the training's own tf.data
    pipeline and precision, timed from the end of the second step (tracing, oneDNN's first
    calls) for at least ``seconds`` and 3 steps. ``validation_patches``: also time one
    validation pass over that many pairs (after a warm-up pass), as ``validation_seconds``.
    """
    import keras

    from util import data
    from util.training import configure_precision, make_optimizer, stored_input, training_dataset

    precision = configure_precision(settings.precision)
    keras.utils.set_random_seed(0)
    model = build_model(settings.task, **settings.model_kwargs)
    info = model_info(model)
    model.compile(optimizer=make_optimizer(settings, 10_000), loss=settings.loss)
    rng = np.random.default_rng(0)
    size = 128 // info["scale"]
    count = 4 * settings.batch
    lr = stored_input(info)(rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))
    hr = rng.integers(0, 256, (count, 128, 128, 3), dtype=np.uint8)

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
        training_dataset(lr, hr, settings, info, seed=0),
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
        val_ds = data.validation_dataset(lr[index], hr[index])
        model.evaluate(val_ds, verbose=0)
        start = time.perf_counter()
        model.evaluate(val_ds, verbose=0)
        result["validation_seconds"] = round(time.perf_counter() - start, 2)
    keras.backend.clear_session()
    return result
