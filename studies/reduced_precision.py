"""What bfloat16 and int8 cost and bring on the shipped photo models: speed and Set5 PSNR (docs/runtimes.md).

For each model: Keras and OpenVINO in float32, OpenVINO in bfloat16 (``INFERENCE_PRECISION_HINT``,
what ``enhance.py --precision bfloat16`` runs), and int8: the ONNX file quantised by ONNX
Runtime's static quantisation (QDQ, weights int8 per channel, activations uint8, min-max
calibration on 48x48 LR crops of the built-in training photos, not on Set5), run by ONNX Runtime
and by OpenVINO. Each on the 512x512-output tile of ``benchmark.py runtimes``, all timed in turn
round after round (median ms per output MP), then Set5 PSNR by the model's protocol.

    python3 -m studies.reduced_precision                          # sr4; needs requirements-export.txt
    python3 -m studies.reduced_precision --models sr4,sr2,denoise --rounds 15

Writes ``<out>/reduced_precision.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from util.benchmarks import measure
from util.io.files import run_cli
from util.training.folders import REPO

MODELS = REPO / "assets" / "models"
CALIBRATION_TILES = 64
CROP = 48


def calibration(info: dict) -> list[np.ndarray]:
    """LR crops of the built-in training photos (download_module/builtin.py), degraded by the benchmark
    protocol of the model's task (util.evaluation.protocols.degrade), as the model takes them."""
    from download_module.builtin import TRAIN_IMAGES, _pixels
    from util.benchmarks.models import benchmark_task_of
    from util.evaluation.protocols import degrade
    from util.models.loading import prepare_input

    task, tiles = benchmark_task_of(info), []
    for name in TRAIN_IMAGES:
        pixels = _pixels(name)
        rgb = (pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1))[..., :3]
        lr = degrade(rgb, task, key=name)[1]
        for y in range(0, lr.shape[0] - CROP, 5 * CROP):
            for x in range(0, lr.shape[1] - CROP, 5 * CROP):
                tiles.append(prepare_input(lr[y : y + CROP, x : x + CROP], info)[None])
    return tiles[:: max(1, len(tiles) // CALIBRATION_TILES)][:CALIBRATION_TILES]


def quantised(onnx_path: Path, tiles: list[np.ndarray]) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(onnx_path)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.tiles = iter(tiles)

        def get_next(self):
            tile = next(self.tiles, None)
            return None if tile is None else {name: tile.astype(np.float32)}

    out = onnx_path.with_name(f"{onnx_path.stem}_int8.onnx")
    quantize_static(
        str(onnx_path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def measure_model(name: str, rounds: int, work: Path, folder: Path) -> list[dict]:
    from util.benchmarks.models import benchmark_task_of, quality
    from util.benchmarks.runtimes import interleaved_ms, speed_input
    from util.inference.runtimes import open_model
    from util.inference.tiles import enhance_array
    from util.models.export import BFLOAT16, FORMATS, ExportedModel, export_model

    model, info = open_model(MODELS / f"{name}.keras", "keras")
    onnx_path = export_model(model, info, work / f"{name}.onnx", FORMATS["onnx"])
    int8 = quantised(onnx_path, calibration(info))
    variants = {  # OpenVINO reads the .onnx files itself
        "keras float32": model,
        "openvino float32": ExportedModel(onnx_path, "openvino"),
        "openvino bfloat16": ExportedModel(onnx_path, "openvino", BFLOAT16),
        "onnx int8": ExportedModel(int8, "onnx"),
        "openvino int8": ExportedModel(int8, "openvino"),
    }
    x, megapixels = speed_input(info)
    ms = interleaved_ms({k: functools.partial(m.predict_on_batch, x) for k, m in variants.items()}, 2, rounds)
    expected = np.asarray(model.predict_on_batch(x))
    folders, rows = [folder], []
    for label, runner in variants.items():
        enhance = functools.partial(enhance_array, runner, info, progress=False)
        scores = quality(benchmark_task_of(info), folders, enhance)
        difference = float(np.abs(runner.predict_on_batch(x) - expected).max())
        rows.append({"model": name, "variant": label, "ms_per_mp": ms[label] / megapixels})
        rows[-1] |= {"max_diff_vs_keras": difference, "psnr": scores[folder.name]["psnr"]}
    return rows


def main(argv=None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="sr4", help="shipped photo models, comma-separated")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (each variant once a round)")
    parser.add_argument("--data", type=Path, default=REPO / "datasets" / "benchmark" / "Set5", help="HR images")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "studies")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="precision-") as work:
        for name in args.models.split(","):
            print(f"measuring {name} ...", file=sys.stderr)
            rows += measure_model(name, args.rounds, Path(work), args.data)
    lines = [f"| model | runtime, precision | ms / output MP | max abs diff vs Keras | {args.data.name} PSNR (dB) |"]
    lines.append("|---|---|---:|---:|---:|")
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['ms_per_mp']:.0f} | {r['max_diff_vs_keras']:.1e} | {r['psnr']:.3f} |"
        )
    table = "\n".join(lines)
    print(table)
    result = {"machine": measure.machine_name(), "rounds": args.rounds, "rows": rows}
    measure.write_tables(args.out, "reduced_precision", f"bfloat16 and int8 on {result['machine']}", table, result)


if __name__ == "__main__":
    sys.exit(run_cli(main))
