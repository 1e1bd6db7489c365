"""Each model in Keras, ONNX Runtime, OpenVINO and LiteRT: speed, memory, quality; OpenCV's ESPCN, FSRCNN beside.

    python3 benchmark.py runtimes                               # sr2, sr4, sr8, denoise, dem_x4; all runtimes installed
    python3 benchmark.py runtimes assets/models/sr4.keras --runtimes keras,openvino --skip-memory
    python3 benchmark.py runtimes --opencv-models ~/opencv_sr   # + the ESPCN_x4.pb, FSRCNN_x4.pb ... found there

For each model and runtime (util/inference/runtimes.py: the model converted once, checked and cached):
  * ms per output megapixel: the forward pass on a 512x512-output tile (the default tile), batch 1,
    the runtimes timed in turn, round after round (--repeats rounds after a warm-up, the median),
    so a machine busy with other work slows them alike;
  * the largest difference from Keras on that tile;
  * quality: photo models PSNR (dB) on --data (default Set5) by the protocol of their task (SR: luma,
    border = scale; denoising: RGB), raster models RMSE (m) on --raster-data (default the held-out
    regions of datasets/dem; left out when there are none);
  * peak RSS (MB) of `enhance.py --runtime R` on a synthetic 1024x768 photo (rasters: a 512x512
    DEM), one child process each, unless --skip-memory.
With opencv-contrib-python 4 installed (OpenCV 5 reads no TensorFlow .pb), OpenCV's dnn_superres
runs ESPCN and FSRCNN at the scales of the SR models that both are published for (x2, x3, x4), on
the same tile and images: ESPCN_x<s>.pb (github.com/fannymonori/TF-ESPCN) and FSRCNN_x<s>.pb
(github.com/Saafke/FSRCNN_Tensorflow) from --opencv-models. No Python package ships them, so rows
whose file is missing are left out with a note naming it. OpenCV enhances the luma with the network
and the chroma by bicubic. benchmark_runtimes.md and .json in --out.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import util
from util.benchmarks import measure
from util.benchmarks.measure import MODELS, SPEED_OUTPUT, WARMUP
from util.io import kinds

# ---- Constants: edit these -------------------------------------------------
DEFAULT_MODELS = ("sr2", "sr4", "sr8", "denoise", "dem_x4")  # in MODELS, when none are given
PHOTO_SET = "Set5"  # --data default, in util.evaluation.protocols.BENCHMARK_DIR
MEMORY_PHOTO = (768, 1024)  # height, width of the synthetic photo enhanced for the memory column
MEMORY_DEM = 512  # side in cells of the synthetic DEM enhanced for the memory column
OPENCV_MODELS = {"espcn": "ESPCN", "fsrcnn": "FSRCNN"}  # dnn_superres name -> file name stem (<STEM>_x<s>.pb)
OPENCV_SCALES = (2, 3, 4)  # the scales both are published for


def add_arguments(parser) -> None:
    measure.add_models_argument(parser, "{" + ",".join(DEFAULT_MODELS) + "}.keras")
    parser.add_argument(
        "--runtimes", help="comma-separated, of keras, onnx, openvino, litert (default: every one installed)"
    )
    parser.add_argument("--data", nargs="+", type=Path, help=f"folders of HR images (default: {PHOTO_SET})")
    parser.add_argument("--raster-data", nargs="+", type=Path, help="raster files or folders (default: datasets/dem)")
    parser.add_argument(
        "--opencv-models", type=Path, help="folder of ESPCN_x<s>.pb and FSRCNN_x<s>.pb for OpenCV's rows"
    )
    measure.add_speed_arguments(parser)
    measure.add_out_argument(parser, "benchmark_runtimes.md and benchmark_runtimes.json")


def chosen_runtimes(text: str | None) -> list[str]:
    """--runtimes as a list, each checked (a one-line UserError names what to install); default: those installed."""
    from util.inference.runtimes import RUNTIMES, check_runtime, installed

    if not text:
        return [name for name in RUNTIMES if installed(name)]
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in RUNTIMES:
            raise util.UserError(f"--runtimes {text}: {name!r} is not one of {', '.join(RUNTIMES)}")
        check_runtime(name)
    return names


def interleaved_ms(functions: dict, warmup: int, repeats: int) -> dict:
    """Median wall time (ms) of each function, all timed in turn in each of ``repeats`` rounds after ``warmup``."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * float(np.median(values)) for name, values in times.items()}


def speed_input(info: dict) -> tuple[np.ndarray, float]:
    """The timed tile, as the model takes it (batch 1), and its output's megapixels (a 512x512 output)."""
    from util.benchmarks.models import synthetic_photo
    from util.benchmarks.raster import synthetic_dem
    from util.models.loading import prepare_input

    side = SPEED_OUTPUT // info["scale"]
    if info["data_kind"] == kinds.RASTER:
        return synthetic_dem(side)[None, ..., None], SPEED_OUTPUT**2 / 1e6
    return prepare_input(synthetic_photo(side, side), info)[None], SPEED_OUTPUT**2 / 1e6


def quality(model, info: dict, folders, raster_files) -> dict:
    """``{"psnr", "dataset"}`` for a photo model, ``{"rmse_m"}`` for a raster model (None without data)."""
    from util.benchmarks.models import benchmark_task_of
    from util.benchmarks.models import quality as photo_quality
    from util.inference.tiles import enhance_array

    if info["data_kind"] == kinds.RASTER:
        if not raster_files:
            return {"psnr": None, "rmse_m": None}
        from util.evaluation.raster_eval import evaluate_raster_files
        from util.inference.raster_enhance import enhance_raster_array

        enhance = functools.partial(enhance_raster_array, model, info)
        pooled = evaluate_raster_files(raster_files, info["scale"], enhance)["pooled"]
        return {"psnr": None, "rmse_m": pooled["model"]["rmse"]}
    scores = photo_quality(
        benchmark_task_of(info), folders, lambda degraded: enhance_array(model, info, degraded, progress=False)
    )
    first = folders[0].name
    return {"psnr": scores[first]["psnr"] if first in scores else None, "dataset": first}


def variants(names: list[str], info: dict) -> list[tuple[str, str]]:
    """``(runtime, precision)`` to measure: each runtime in float32, and OpenVINO in bfloat16 too for a photo
    model on a CPU with bfloat16 units (``enhance.py --precision bfloat16``)."""
    from util.models.export import bfloat16_units

    pairs = [(name, "float32") for name in names]
    if "openvino" in names and info["data_kind"] == kinds.PHOTO and bfloat16_units():
        pairs.append(("openvino", "bfloat16"))
    return pairs


def model_rows(path: Path, loaded, names: list[str], args, folders, raster_files, work_dir: Path, peers=None):
    """One row per runtime (and precision) of the model at ``path``, ``loaded`` its ``(Keras model, info)``.
    ``peers``: ``{key: function}`` (OpenCV's networks of the model's scale) timed in the same rounds; their ms
    per output MP are put back in it."""
    from util.benchmarks.models import synthetic_photo
    from util.inference.runtimes import open_model

    keras_model, info = loaded
    opened = {
        (n, p): keras_model if n == "keras" else open_model(path, n, precision=p)[0] for n, p in variants(names, info)
    }
    x, megapixels = speed_input(info)
    expected = np.asarray(keras_model.predict_on_batch(x))
    timed = {k: functools.partial(m.predict_on_batch, x) for k, m in opened.items()}
    if peers:
        lr = synthetic_photo(x.shape[1], x.shape[2])
        timed |= {key: functools.partial(function, lr) for key, function in peers.items()}
    ms = interleaved_ms(timed, WARMUP, args.repeats)
    for key in peers or {}:
        peers[key] = ms[key] / megapixels
    sample = None if args.skip_memory else memory_sample(info, work_dir)
    rows = []
    for (name, precision), model in opened.items():
        print(f"benchmarking {path} in {name} ({precision}) ...", file=sys.stderr)
        row = {"model": shown(path), "task": info["task"], "runtime": name, "precision": precision}
        row["ms_per_mp"] = ms[name, precision] / megapixels
        row["max_diff_vs_keras"] = float(np.abs(np.asarray(model.predict_on_batch(x)) - expected).max())
        row.update(quality(model, info, folders, raster_files))
        command = ["--runtime", name, "--precision", precision]
        row["peak_rss_mb"] = None if sample is None else measure.enhance_peak_rss_mb(path, sample, work_dir, command)
        rows.append(row)
    return rows


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside (the shipped models: assets/models/sr4.keras)."""
    try:
        return str(path.resolve().relative_to(measure.REPO))
    except ValueError:
        return str(path)


def memory_sample(info: dict, work_dir: Path) -> Path:
    """The synthetic photo (or DEM GeoTIFF) that enhance.py enhances for the memory column, written once."""
    from PIL import Image

    from util.benchmarks.models import synthetic_photo
    from util.benchmarks.raster import write_synthetic_dem

    if info["data_kind"] == kinds.RASTER:
        path = work_dir / "synthetic_dem.tif"
        return path if path.is_file() else write_synthetic_dem(path, MEMORY_DEM)
    path = work_dir / "synthetic_photo.png"
    if not path.is_file():
        Image.fromarray(synthetic_photo(*MEMORY_PHOTO)).save(path, compress_level=1)
    return path


# ---- OpenCV's ESPCN and FSRCNN ------------------------------------------------------------

# Runs one OpenCV super-resolution network on one image (argv: .pb, name, scale, image) for the memory column.
OPENCV_RUN = (
    "import sys, cv2; sr = cv2.dnn_superres.DnnSuperResImpl_create(); sr.readModel(sys.argv[1]); "
    "sr.setModel(sys.argv[2], int(sys.argv[3])); sr.upsample(cv2.imread(sys.argv[4]))"
)


def opencv_networks(folder: Path | None, scales: list[int]) -> tuple[dict, list[str]]:
    """``{(algorithm, scale): (path, upsample)}`` of OpenCV's networks found at ``scales``, and the notes on
    those left out (no OpenCV, no folder, a missing file)."""
    scales = [s for s in scales if s in OPENCV_SCALES]
    if not scales:
        return {}, []
    wanted = [f"{stem}_x{s}.pb" for stem in OPENCV_MODELS.values() for s in scales]
    fetch = (
        "ESPCN from github.com/fannymonori/TF-ESPCN or python3 -m studies.opencv_espcn, "
        "FSRCNN from github.com/Saafke/FSRCNN_Tensorflow"
    )
    if not opencv_reads_tensorflow():
        return {}, [
            "OpenCV rows left out: pip install 'opencv-contrib-python-headless<5' (its dnn_superres runs them; "
            "OpenCV 5 reads no TensorFlow .pb)"
        ]
    if folder is None:
        return {}, [f"OpenCV rows left out: put {', '.join(wanted)} ({fetch}) in a folder and give --opencv-models"]
    networks, notes = {}, []
    for algorithm, stem in OPENCV_MODELS.items():
        for scale in scales:
            path = folder / f"{stem}_x{scale}.pb"
            if path.is_file():
                networks[algorithm, scale] = (path, opencv_upsample(path, algorithm, scale))
            else:
                notes.append(f"{stem} x{scale} left out: no {path} ({fetch})")
    return networks, notes


def opencv_reads_tensorflow() -> bool:
    """Whether OpenCV with dnn_superres and the TensorFlow importer (OpenCV 4; 5 has none) is installed."""
    if importlib.util.find_spec("cv2") is None:
        return False
    import cv2

    return hasattr(cv2, "dnn_superres") and hasattr(cv2.dnn, "readNetFromTensorflow")


def opencv_upsample(path: Path, algorithm: str, scale: int):
    """OpenCV's network at ``path`` as a function of an RGB (or grey) uint8 image."""
    import cv2

    network = cv2.dnn_superres.DnnSuperResImpl_create()
    network.readModel(str(path))
    network.setModel(algorithm, scale)

    def upsample(rgb: np.ndarray) -> np.ndarray:
        colour = np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb
        out = network.upsample(np.ascontiguousarray(colour[..., ::-1]))[..., ::-1]
        return out[..., 0] if rgb.ndim == 2 else np.ascontiguousarray(out)

    return upsample


def opencv_row(key: tuple[str, int], network, ms_per_mp: float, args, folders, work_dir: Path) -> dict:
    """The row of OpenCV's network ``(path, upsample)``, timed with the models of its scale (``ms_per_mp``)."""
    from util.benchmarks.models import quality as photo_quality
    from util.evaluation.protocols import benchmark_task

    (algorithm, scale), (path, upsample) = key, network
    scores = photo_quality(benchmark_task(f"sr{scale}"), folders, upsample)
    row = {"model": f"OpenCV {OPENCV_MODELS[algorithm]} x{scale} ({path.name})", "task": f"sr{scale}"}
    row.update(runtime="opencv", precision="float32", ms_per_mp=ms_per_mp, max_diff_vs_keras=None)
    row.update(psnr=scores[folders[0].name]["psnr"], dataset=folders[0].name)
    row["peak_rss_mb"] = None
    if not args.skip_memory:
        sample = memory_sample({"data_kind": kinds.PHOTO}, work_dir)
        command = ["-c", OPENCV_RUN, str(path), algorithm, str(scale), str(sample)]
        row["peak_rss_mb"] = measure.peak_rss_mb([sys.executable, *command])
    return row


# ---- The table and the subcommand ---------------------------------------------------------


def markdown(rows: list[dict], photo_set: str) -> str:
    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    height, width = MEMORY_PHOTO
    header = f"| model | task | runtime | precision | ms / output MP | max abs diff vs Keras | {photo_set} PSNR (dB) | "
    header += f"DEM RMSE (m) | peak RSS (MB), {width}x{height} photo or {MEMORY_DEM}² DEM |"
    lines = [header, "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [r["model"], r["task"], r["runtime"], r.get("precision", "float32"), cell(r["ms_per_mp"], ".0f")]
        cells.append(cell(r["max_diff_vs_keras"], ".1e"))
        cells += [cell(r["psnr"], ".2f"), cell(r.get("rmse_m"), ".3f"), cell(r["peak_rss_mb"], ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checked_inputs(args) -> tuple[list[Path], list[Path], list[Path]]:
    """The models (default: DEFAULT_MODELS in MODELS), photo folders and raster files; UserErrors for missing ones."""
    from util.benchmarks.raster import RASTER_DATA
    from util.evaluation.protocols import BENCHMARK_DIR, FETCH_HINT
    from util.evaluation.raster_eval import raster_files

    models = args.models or [MODELS / f"{name}.keras" for name in DEFAULT_MODELS]
    for path in models:
        if not path.is_file():
            raise util.UserError(f"{path}: no such model file; give saved models (runs/<run>/model.keras)")
    folders = args.data or [BENCHMARK_DIR / PHOTO_SET]
    for folder in folders:
        if not folder.is_dir():
            raise util.UserError(f"{folder}: no such folder; {FETCH_HINT}, or give --data FOLDER")
    raster_data = args.raster_data or ([RASTER_DATA] if RASTER_DATA.is_dir() else [])
    for item in raster_data:
        if not item.exists():
            raise util.UserError(
                f"{item}: no such file or folder; give --raster-data rasters (python3 download.py dem)"
            )
    return models, folders, raster_files(raster_data) if raster_data else []


def main(args) -> None:
    """``benchmark.py runtimes`` (module doc)."""
    measure.check_repeats(args.repeats)
    names = chosen_runtimes(args.runtimes)
    models, folders, rasters = checked_inputs(args)
    if args.opencv_models is not None and not args.opencv_models.is_dir():
        raise util.UserError(f"--opencv-models {args.opencv_models}: no such folder")
    from util.models.loading import load_model

    loaded = {path: load_model(path) for path in models}
    infos = {path: info for path, (_, info) in loaded.items()}
    photo_sr = {p for p, info in infos.items() if info["data_kind"] == kinds.PHOTO and info["task"].startswith("sr")}
    networks, notes = opencv_networks(args.opencv_models, sorted({infos[p]["scale"] for p in photo_sr}))
    notes += [] if rasters else ["DEM RMSE left out: no rasters (python3 download.py dem, or --raster-data)"]
    rows, peer_ms = [], {}
    with tempfile.TemporaryDirectory(prefix="benchmark-") as work:
        for path in models:
            # OpenCV's networks of the model's scale are timed in its rounds (with the first model of that scale).
            scale = infos[path]["scale"]
            peers = {k: n[1] for k, n in networks.items() if path in photo_sr and k[1] == scale and k not in peer_ms}
            rows += model_rows(path, loaded[path], names, args, folders, rasters, Path(work), peers)
            peer_ms |= peers
        rows += [opencv_row(k, networks[k], peer_ms[k], args, folders, Path(work)) for k in sorted(networks)]
    table = markdown(rows, folders[0].name) + "".join(f"\n\n{note}" for note in notes)
    machine = measure.machine_name()
    print(table)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    speed = {"output": SPEED_OUTPUT, "warmup": WARMUP, "repeats": args.repeats, "batch": 1, "interleaved": True}
    result = {"machine": machine, "runtimes": names, "speed": speed, "notes": notes, "rows": rows}
    measure.write_tables(args.out, "benchmark_runtimes", f"Runtimes on {machine}", table, result)
