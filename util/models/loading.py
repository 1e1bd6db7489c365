"""Loading, checking and averaging saved models, and the input a model takes.

``load_model`` opens a ``.keras`` file with ``safe_mode=True`` and returns the model with its
``SuiteInfo`` (util.models.layers), checked (``check_info``) so that every script that loads a
model refuses a foreign or edited file in one line; ``average_models`` averages the weights of
models of one recipe; ``prepare_input`` turns degraded images into what a model takes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from util.data.resize import bicubic_upscale
from util.data.tasks import parse_task
from util.io.files import UserError
from util.models.export import exported_format
from util.models.layers import SuiteInfo, keras, model_info

AVERAGE_MATCH = ("task", "scale", "input_kind", "data_kind", "channels", "units")  # members must agree on these


def average_models(models: list, names: list[str]) -> keras.Model:
    """One model whose output is the mean of the outputs of ``models`` (all trained for the same task and data).

    Averaging independently trained networks (an ensemble) lowers the error of each: their
    mistakes differ. The members run whole, each with its own normalisation, inside one
    ``.keras`` file whose SuiteInfo says what they share; ``names`` (file names) label the
    members in errors and in the architecture text.
    """
    if len(models) < 2:
        raise UserError("averaging needs at least two models; give --model A.keras,B.keras[,...]")
    infos = [model_info(m) for m in models]
    for name, info in zip(names[1:], infos[1:], strict=True):
        differ = [k for k in AVERAGE_MATCH if info[k] != infos[0][k]]
        if differ:
            first = ", ".join(f"{k}={infos[0][k]!r}" for k in differ)
            this = ", ".join(f"{k}={info[k]!r}" for k in differ)
            raise UserError(f"{name}: {this}, but {names[0]} has {first}; average models of the same task and data")
    size_multiple = int(np.lcm.reduce([i["size_multiple"] for i in infos]))
    architecture = f"average of {len(models)}: " + "; ".join(f"{i['architecture']}" for i in infos)
    inputs = keras.Input(shape=(None, None, infos[0]["channels"]))
    conserve = all(i["conserve"] for i in infos)  # a mean of outputs that each conserve conserves
    info = SuiteInfo(
        **{**infos[0], "size_multiple": size_multiple, "architecture": architecture, "conserve": conserve},
        name="suite_info_average",
        dtype="float32",
    )
    x = info(inputs)
    # Re-wrapped under unique names: two loaded models may share one.
    outputs = [keras.Model(m.inputs[0], m.outputs[0], name=f"member_{k}")(x) for k, m in enumerate(models)]
    average = keras.layers.Average(dtype="float32", name="average")(outputs)
    return keras.Model(inputs, average, name="average")


def check_info(info: dict, where: str) -> None:
    """A one-line UserError unless the SuiteInfo's scale and size multiple are usable (1 or more, as the task says).

    A hand-edited or foreign config with a scale of -4 would otherwise surface as "negative
    dimensions" deep inside the tiling; every script that loads a model shares this check.
    """
    scale, multiple, task = info["scale"], info["size_multiple"], info["task"]
    try:
        task_scale = parse_task(task).scale
    except UserError:
        task_scale = scale  # a task this version does not know: its scale is checked on its own
    if scale < 1 or scale != task_scale:
        raise UserError(
            f"{where}: its SuiteInfo says scale {scale} for task {task}, which needs scale {task_scale}; the file was "
            "edited or not saved by this suite: give the model.keras of a run (runs/<run>/model.keras)"
        )
    if multiple < 1:
        raise UserError(
            f"{where}: its SuiteInfo says size_multiple {multiple}; it must be 1 or more: give the model.keras of a run"
        )


def load_model(path) -> tuple[keras.Model, dict]:
    """Load a ``.keras`` file with ``safe_mode=True``; return the model and its checked info."""
    path = Path(path)
    exported = exported_format(path)
    if exported:
        raise UserError(f"{path}: a model exported for {exported}; give the .keras file it was exported from")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a model file; give the .keras file (e.g. runs/<run>/model.keras)")
    if not path.is_file():
        raise UserError(f"{path}: no such model file; train one first or give --model PATH")
    # Keras says "File not found" for a file that exists but is not a zip archive (text, zero bytes, HDF5).
    if not zipfile.is_zipfile(path):
        raise UserError(
            f"{path}: not a .keras model (a .keras file is a zip archive; this is {path.stat().st_size} bytes of "
            "something else); give a model saved by the suite (runs/<run>/model.keras)"
        )
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for a bad archive
        detail = " ".join(str(err).split())  # Keras's messages span lines; the error is one
        if "safe_mode" in detail:
            raise UserError(
                f"{path}: the model contains a Lambda layer or other arbitrary Python code, which loading with "
                "safe_mode=True refuses; rebuild it with registered layers that have get_config() "
                "(util/models/) and save it again, or give a model trained by the suite's scripts"
            ) from None
        raise UserError(f"{path}: not a loadable .keras model ({type(err).__name__}: {detail[:300]})") from None
    info = model_info(model)
    check_info(info, str(path))
    return model, info


def prepare_input(degraded: np.ndarray, info: dict, batch: bool = False) -> np.ndarray:
    """Degraded image(s) -> what the model takes: float32 in [0, 1].

    ``degraded`` is HWC (or NHWC with ``batch``), uint8, uint16 or float in [0, 1]:
    the LR image for SR tasks, the noisy image for denoising. Models whose
    ``input_kind`` is ``"upsampled"`` get it bicubic-upsampled by the task's scale
    first: uint8 stays uint8 and is rounded, as the stored training inputs are;
    other types are upsampled in float and clipped to [0, 1] (bicubic overshoots); a float
    input that is not upsampled is taken as it is.
    """
    upsampled = info["input_kind"] == "upsampled" and info["scale"] > 1
    if degraded.dtype == np.uint16:
        degraded = degraded.astype(np.float32) / 65535.0
    if upsampled:
        degraded = bicubic_upscale(degraded, info["scale"], batch=batch)
    if degraded.dtype == np.uint8:
        return degraded.astype(np.float32) / 255.0
    if upsampled:
        return np.clip(degraded, 0.0, 1.0).astype(np.float32)
    return degraded.astype(np.float32)  # a float image as it is (a noisy one may stray outside [0, 1])
