"""The runtime a model runs in for enhance.py: Keras, or the model converted for ONNX Runtime, OpenVINO or LiteRT.

``open_model(path, runtime)`` returns ``(model, info)`` for the tiling code (util.inference.tiles,
util.inference.raster_enhance), which only calls ``model.predict_on_batch`` on float32 NHWC tiles:

* ``keras``: the ``.keras`` model itself. ``predict_on_batch`` already runs Keras's compiled predict
  function (a ``tf.function``, traced once for the tile shape); an eager call is about twice as
  slow and XLA (``jit_compile``) slower on a CPU (docs/runtimes.md), so nothing is added;
* ``onnx``, ``openvino``, ``litert``: the model exported by ``util.models.export`` and run by
  ``load_exported``. The exported file is cached (``cache_folder``), one folder per model path and
  one entry per runtime, named by the SHA-256 of the ``.keras`` file's content and of the versions
  of TensorFlow, Keras, the converter, the runtime and the export code: a changed ``.keras`` file or
  an upgraded package converts anew, and the entry it replaces is removed. A conversion enters the
  cache atomically, and only once its output matches Keras on a test image within
  ``util.models.export.tolerance`` (1/255 for photos, 1e-4 of the height scale for rasters);
* ``auto`` (enhance.py's default): the first installed runtime of ``PREFERENCE``, the order of the
  measured speeds; a model that cannot be converted then runs in Keras, with a note on stderr.

The precision (``check_precision``): float32 (the default), or bfloat16 in OpenVINO for photo
models, which on a CPU with bfloat16 units runs sr4 about twice as fast for 0.005 dB of Set5 PSNR,
but differs from Keras by up to 6e-3, beyond the 1/255 that ``auto`` and the cache's check ask
(docs/runtimes.md): so only when asked for. Rasters stay float32: bfloat16 keeps 8 bits of a
value (8 m steps at 2000 m). The conversion is checked against Keras in float32 either way.

The tiles, their blending, nodata and the file formats are the same whatever the runtime.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import tempfile
from pathlib import Path

from util.io import kinds
from util.io.files import UserError
from util.models.export import (
    BFLOAT16,
    FLOAT32,
    FORMATS,
    INSTALL,
    check_exported,
    export_model,
    load_exported,
    missing_modules,
    model_card,
    tolerance,
    write_card,
)

RUNTIMES = ("keras", "onnx", "openvino", "litert")
AUTO = "auto"
# auto's order on a 2-core CPU (docs/runtimes.md): OpenVINO is the fastest or within 20 % of the fastest on
# every shipped model; ONNX Runtime's and LiteRT's rank against Keras changes from run to run.
PREFERENCE = ("openvino", "keras")
PACKAGES = {  # the pip packages whose versions key a converted file (TensorFlow and Keras key every one)
    "onnx": ("tf2onnx", "onnx", "onnxruntime"),
    "openvino": ("openvino",),
    "litert": ("ai-edge-litert",),
}
PRECISIONS = (FLOAT32, BFLOAT16)
EXPORT_CODE = Path(__file__).resolve().parents[1] / "models" / "export.py"  # its changes key the cache too


def cache_folder() -> Path:
    """Where converted models are kept: ``$XDG_CACHE_HOME/image-enhancement/runtimes`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "image-enhancement" / "runtimes"


def installed(runtime: str) -> bool:
    return runtime == "keras" or not missing_modules(FORMATS[runtime])


def check_runtime(runtime: str) -> None:
    """A one-line UserError for an unknown runtime, or one whose packages are missing (before TensorFlow loads)."""
    if runtime == AUTO or runtime == "keras":
        return
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime}: unknown; give one of {', '.join((AUTO, *RUNTIMES))}")
    missing = missing_modules(FORMATS[runtime])
    if missing:
        fmt = FORMATS[runtime]
        raise UserError(
            f"--runtime {runtime} needs {', '.join(missing)} ({fmt.runtime}), not installed: {INSTALL}; "
            "or give --runtime keras"
        )


def resolve(runtime: str) -> str:
    """``auto`` -> the first installed runtime of PREFERENCE; any other name as it is."""
    if runtime != AUTO:
        return runtime
    return next(name for name in PREFERENCE if installed(name))


def check_precision(precision: str, runtime: str, info: dict) -> None:
    """A one-line UserError for bfloat16 where it does not run as measured (module doc), or an unknown precision."""
    from util.models.export import bfloat16_units

    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: unknown; give one of {', '.join(PRECISIONS)}")
    if precision == FLOAT32:
        return
    if runtime != "openvino":
        raise UserError(
            f"--precision bfloat16 runs in OpenVINO only, not {runtime}: give --runtime openvino ({INSTALL}) "
            "or drop --precision"
        )
    if info["data_kind"] != kinds.PHOTO:
        raise UserError("--precision bfloat16: rasters run in float32 (bfloat16 keeps 8 bits of a value); drop it")
    if not bfloat16_units():
        raise UserError("--precision bfloat16: this CPU has no bfloat16 units (it would be slower); drop it")


def open_model(path, runtime: str = "keras", cache: Path | None = None, check=None, precision: str = FLOAT32):
    """``(model, info)``: the ``.keras`` model at ``path`` ready to run in ``runtime`` (module doc).

    ``cache``: the folder of converted models (default ``cache_folder()``); ``check``: called with
    the model's info before any conversion (it raises a UserError for a model of the wrong kind);
    ``precision``: ``float32`` or ``bfloat16`` (``check_precision``). A model that
    cannot be converted or whose conversion differs from Keras is a one-line UserError, except
    with ``auto``, which then runs it in Keras.
    """
    from util.models.loading import load_model

    check_runtime(runtime)
    model, info = load_model(path)
    if check is not None:
        check(info)
    chosen = resolve(runtime)
    check_precision(precision, chosen, info)
    if chosen == "keras":
        return model, info
    try:
        return converted(model, info, Path(path), chosen, Path(cache or cache_folder()), precision), info
    except UserError as err:
        if runtime != AUTO:
            raise UserError(f"{err}; give --runtime keras") from None
        print(f"note: {path}: runs in Keras ({err})", file=sys.stderr)
        return model, info


def entry_key(model_path: Path, runtime: str) -> str:
    """The SHA-256 of the ``.keras`` file's content, then of the versions and export code its conversion depends on."""
    import keras
    import tensorflow as tf

    content = hashlib.sha256(model_path.read_bytes()).hexdigest()
    versions = [f"tensorflow {tf.__version__}", f"keras {keras.__version__}"]
    versions += [f"{name} {importlib.metadata.version(name)}" for name in PACKAGES[runtime]]
    tools = hashlib.sha256("\n".join(versions).encode() + EXPORT_CODE.read_bytes()).hexdigest()
    return f"{content[:16]}-{tools[:8]}"


def entry_folder(cache: Path, model_path: Path) -> Path:
    """The cache's folder of one model path: ``<stem>-<SHA-256 of the resolved path, 8 digits>``."""
    path_hash = hashlib.sha256(str(model_path.resolve()).encode()).hexdigest()[:8]
    return cache / f"{model_path.stem}-{path_hash}"


def cached_entries(cache: Path, model_path: Path) -> list[Path]:
    """The converted files kept for ``model_path`` (``.onnx``, ``.xml``, ``.tflite``; without cards and weights)."""
    suffixes = {FORMATS[name].suffix for name in PACKAGES}
    return sorted(p for p in entry_folder(cache, model_path).glob("*") if p.suffix in suffixes)


def converted(model, info: dict, model_path: Path, runtime: str, cache: Path, precision: str = FLOAT32):
    """The model converted for ``runtime`` (checked in float32), run in ``precision``: from the cache, or
    converted, checked and cached now."""
    fmt = FORMATS[runtime]
    folder = entry_folder(cache, model_path)
    entry = folder / f"{runtime}-{entry_key(model_path, runtime)}{fmt.suffix}"
    if entry.is_file():
        return load_exported(entry, precision)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{entry.name}.", dir=folder) as tmp:
            trial = Path(tmp) / entry.name
            try:
                export_model(model, info, trial, fmt)
                difference = check_exported(model, info, load_exported(trial))
            except UserError as err:
                raise UserError(f"{model_path}: not converted for {fmt.runtime}: {err}") from None
            limit = tolerance(info)
            if not difference <= limit:
                raise UserError(f"{model_path}: in {fmt.runtime} differs from Keras by {difference:.3g} > {limit:.3g}")
            write_card(trial, model_card(info, fmt, model_path.name, difference, limit))
            for old in folder.glob(f"{runtime}-*"):  # the entry of an earlier content or version, with its card
                old.unlink()
            # The card and OpenVINO's weights (.bin) first: the entry is there once its main file is.
            for part in sorted(Path(tmp).iterdir(), key=lambda p: p.name == entry.name):
                os.replace(part, folder / part.name)
    except OSError as err:
        raise UserError(
            f"{folder}: cannot keep the converted model there ({err.strerror or err}); "
            "give --runtime-cache a writable folder, or --runtime keras"
        ) from None
    return load_exported(entry, precision)
