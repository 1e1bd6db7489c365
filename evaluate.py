"""Evaluate a saved model (or bicubic) on benchmark folders by the standard SR protocol.

    python3 evaluate.py --model runs/<run>/model.keras                      # Set5 and Set14 at the model's scale
    python3 evaluate.py --model runs/<run>/model.keras --data ../shared/data/benchmark/Set5 --scale 4
    python3 evaluate.py --model bicubic --scale 2                           # the baseline alone
    python3 evaluate.py --model runs/<run>/model.keras --task noise25       # Gaussian denoising, sigma 25

The protocol (modcrop, MATLAB bicubic, Y of BT.601, border = scale, uint8 output;
RGB for denoising) is documented in util/evaluation.py. Prints a Markdown table per
folder (per image and mean, bicubic beside the model) and writes one JSON per folder,
``eval_<folder>_<x4|noise25>.json``, into the model's folder (for bicubic: --out).
The model sees the whole image, through the tiled inference of util/inference.py
when the image is larger than one tile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import util
from util.evaluation import (
    BENCHMARK_DIR,
    STANDARD_SETS,
    Protocol,
    evaluate_folder,
    markdown_table,
    parse_protocol,
    protocol_note,
)

# ---- Constants: edit these -------------------------------------------------
DATA = [BENCHMARK_DIR / name for name in STANDARD_SETS]  # the folders evaluated without --data
BICUBIC_SCALE = 4  # --model bicubic without --scale or --task
BICUBIC_OUT = Path(__file__).resolve().parent / "runs" / "bicubic"  # JSON folder of --model bicubic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved model.keras, or 'bicubic'")
    parser.add_argument("--data", nargs="+", type=Path, default=DATA, help="benchmark folders (default: Set5 Set14)")
    parser.add_argument("--scale", type=int, help="SR scale (default: the model's)")
    parser.add_argument("--task", help="protocol by name: sr2 / x2 ..., or noiseS for denoising (default: the model's)")
    parser.add_argument("--out", type=Path, help="folder of the JSON files (default: the model's folder; runs/bicubic)")
    parser.add_argument(
        "--ensemble", action="store_true", help="self-ensemble (EDSR+): the model averaged over the 8 flips/rotations"
    )
    return parser.parse_args(argv)


def choose_protocol(args, info: dict | None) -> Protocol:
    """The protocol from --task / --scale, else from the model's task; it must match the model's scale."""
    protocol = parse_protocol(args.task) if args.task else None
    if args.scale is not None:
        if args.scale < 2:
            raise util.UserError(f"--scale {args.scale}: give a scale of 2 or more, or --task noiseS for denoising")
        if protocol is not None and protocol.scale != args.scale:
            raise util.UserError(f"--scale {args.scale} contradicts --task {args.task}; give one of them")
        protocol = protocol or Protocol(scale=args.scale)
    if protocol is None:
        protocol = parse_protocol(info["task"]) if info else Protocol(scale=BICUBIC_SCALE)
    if info and protocol.scale != info["scale"]:
        raise util.UserError(
            f"{args.model}: the model's scale is {info['scale']} (task {info['task']}), not {protocol.scale}; "
            f"leave out --scale/--task or give a model trained for {protocol.name}"
        )
    return protocol


def main(argv=None) -> None:
    args = parse_args(argv)
    for folder in args.data:
        if not folder.is_dir():
            raise util.UserError(f"{folder}: no such folder; give --data folders of HR images (e.g. {DATA[0]})")
    info, enhance = None, None
    if args.model != "bicubic":
        model_path = Path(args.model)
        if not model_path.is_file():
            raise util.UserError(f"{model_path}: no such model file; give --model runs/<run>/model.keras or bicubic")
        # TensorFlow takes seconds to import: only now that the arguments are checked.
        from util.inference import enhance_array
        from util.models import load_model

        model, info = load_model(model_path)

        def enhance(degraded):
            return enhance_array(model, info, degraded, progress=False, ensemble=args.ensemble)

    protocol = choose_protocol(args, info)
    out_dir = args.out or (Path(args.model).parent if info else BICUBIC_OUT)
    if args.ensemble and info is None:
        raise util.UserError("--ensemble applies to a model, not to bicubic; give --model PATH.keras")
    label = "model" if info is None else f"{info['architecture'] or 'model'} ({info['task']})"
    label += " + self-ensemble" if args.ensemble else ""
    print(f"# {args.model}: {protocol.name}\n\n{protocol_note(protocol)}\n")
    for folder in args.data:
        result = evaluate_folder(folder, protocol, enhance)
        result.update(model=str(args.model), info=info, ensemble=args.ensemble)
        print(f"## {result['dataset']} {protocol.name}\n\n{markdown_table(result, protocol, label)}\n")
        path = out_dir / f"eval_{result['dataset']}_{protocol.name}{'_ensemble' if args.ensemble else ''}.json"
        util.write_json_atomic(path, result)
        print(f"written: {path}\n")


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
