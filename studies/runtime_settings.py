"""Which settings of each runtime run the suite's models fastest on this CPU (docs/runtimes.md).

Keras: an eager call, ``predict_on_batch`` (Keras's compiled predict function), a ``tf.function``
on the tile's fixed shape, and the same with XLA (``jit_compile``). ONNX Runtime: its graph
optimisation levels, one thread or all, with and without spinning threads. OpenVINO: the model
compiled for any shape or for the tile's, one thread or all, the latency or throughput hint.
LiteRT: one thread (its default) or all. "(default)" marks the suite's choice. Each on the
512x512-output tile of ``benchmark.py runtimes``, all timed in turn, round after round, so a
machine busy with other work slows them alike; the median and the fastest round of each, in ms
per output megapixel.

    python3 -m studies.runtime_settings                           # sr4, denoise, dem_x4, 9 rounds
    python3 -m studies.runtime_settings --models sr2,sr8 --rounds 15

Needs requirements-export.txt. Writes ``<out>/runtime_settings.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from util.io.files import run_cli, write_json_atomic, write_text_atomic
from util.training.folders import REPO

MODELS = REPO / "assets" / "models"
ORT_LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def keras_variants(model, x) -> dict:
    import tensorflow as tf

    spec = [tf.TensorSpec(x.shape, tf.float32)]
    compiled = tf.function(lambda t: model(t, training=False), input_signature=spec)
    xla = tf.function(lambda t: model(t, training=False), input_signature=spec, jit_compile=True)
    return {
        "keras eager call": lambda: model(x, training=False),
        "keras predict_on_batch (default)": lambda: model.predict_on_batch(x),
        "keras tf.function, fixed shape": lambda: compiled(tf.constant(x)).numpy(),
        "keras tf.function + XLA": lambda: xla(tf.constant(x)).numpy(),
    }


def onnx_variants(path: Path, x) -> dict:
    import onnxruntime as ort

    def session(level="all", threads=0, spinning=True):
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[level])
        options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        run = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda: run.run(None, {run.get_inputs()[0].name: x})

    variants = {}
    for level in ORT_LEVELS:
        variants[f"onnx optimisation {level}, spinning threads"] = session(level)
        mark = " (default)" if level == "all" else ""
        variants[f"onnx optimisation {level}, no spinning{mark}"] = session(level, spinning=False)
    variants["onnx 1 thread"] = session(threads=1)
    return variants


def openvino_variants(path: Path, x) -> dict:
    import openvino

    core = openvino.Core()

    def compiled(static=True, **config):
        model = core.read_model(str(path))
        if static:
            model.reshape({model.inputs[0]: list(x.shape)})
        run = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", **config})
        return lambda: run(x)

    return {
        "openvino any shape": compiled(static=False),
        "openvino tile's shape (default)": compiled(),
        "openvino 1 thread": compiled(INFERENCE_NUM_THREADS=1),
        "openvino throughput hint": compiled(PERFORMANCE_HINT="THROUGHPUT"),
    }


def litert_variants(path: Path, x) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    from util.models.export import cpu_threads

    def interpreter(threads=None):
        run = Interpreter(model_path=str(path), **({} if threads is None else {"num_threads": threads}))
        index = run.get_input_details()[0]["index"]
        run.resize_tensor_input(index, x.shape)
        run.allocate_tensors()
        return lambda: (run.set_tensor(index, x), run.invoke())

    every = f"litert {cpu_threads()} threads (default)"
    return {"litert its default threads": interpreter(), every: interpreter(cpu_threads())}


def measure_model(name: str, rounds: int) -> dict:
    """{variant: [ms per output MP of each round]} for the shipped model ``name``."""
    from util.benchmarks.runtimes import speed_input
    from util.inference.runtimes import open_model

    path = MODELS / f"{name}.keras"
    model, info = open_model(path, "keras")
    x, megapixels = speed_input(info)
    variants = keras_variants(model, x)
    for runtime, build in (("onnx", onnx_variants), ("openvino", openvino_variants), ("litert", litert_variants)):
        variants.update(build(open_model(path, runtime)[0].path, x))
    for run in variants.values():
        run(), run()
    times = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant, run in variants.items():
            start = time.perf_counter()
            run()
            times[variant].append(1000 * (time.perf_counter() - start) / megapixels)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="sr4,denoise,dem_x4", help="shipped models, comma-separated")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (each variant once a round)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "studies")
    args = parser.parse_args(argv)
    result, lines = {}, ["| model | setting | median ms / output MP | fastest round |", "|---|---|---:|---:|"]
    for name in args.models.split(","):
        print(f"timing {name} ...", file=sys.stderr)
        result[name] = measure_model(name, args.rounds)
        for variant, values in result[name].items():
            lines.append(f"| {name} | {variant} | {np.median(values):.0f} | {np.min(values):.0f} |")
    table = "\n".join(lines)
    print(table)
    write_text_atomic(args.out / "runtime_settings.md", table + "\n")
    write_json_atomic(args.out / "runtime_settings.json", {"rounds": args.rounds, "ms_per_mp": result})


if __name__ == "__main__":
    sys.exit(run_cli(main))
