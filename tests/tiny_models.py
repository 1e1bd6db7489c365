"""Tiny real suite models for the tests: a few convolutions, saved and loaded like trained ones."""

from __future__ import annotations

from pathlib import Path

import keras

from util.models.layers import DepthToSpace, SuiteInfo


def upsampled_model(task="sr4", scale=4, size_multiple=16, seed=0) -> keras.Model:
    """Two 3x3 convolutions on the bicubic-upsampled input, plus the input (a residual)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = SuiteInfo(task=task, scale=scale, input_kind="upsampled", size_multiple=size_multiple, architecture="tiny")(
        inputs
    )
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    residual = keras.layers.Conv2D(3, 3, padding="same")(features)
    outputs = keras.layers.Add()([x, keras.layers.Rescaling(0.1)(residual)])
    return keras.Model(inputs, outputs, name="tiny_upsampled")


def lr_model(task="sr4", scale=4, seed=0) -> keras.Model:
    """Two 3x3 convolutions in LR space, then sub-pixel upsampling by ``scale``."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = SuiteInfo(task=task, scale=scale, input_kind="lr", size_multiple=1, architecture="tiny-lr")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(3 * scale * scale, 3, padding="same", activation="sigmoid")(x)
    outputs = DepthToSpace(scale)(x)
    return keras.Model(inputs, outputs, name="tiny_lr")


def save(model: keras.Model, folder: Path, name="model.keras") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    model.save(path)
    return path
