"""Does the blind denoiser gain from being told sigma? FFDNet's noise-level map, ablated.

FFDNet feeds the network a map of the noise level beside the noisy image. This study trains
the blind task (``noise``: sigma drawn per patch from 0-55) twice, identically (edsr_lite's
U-Net, same data, seed, augmentations, noise draws and backprops); one of the two models also
gets sigma / 255 as a fourth input channel. Both are then scored on a folder of clean images
(CBSD68) at sigma 15, 25 and 50 by the papers' protocol (util.evaluation.protocols, ``noisy="float"``),
the map model given the *true* sigma: the most any noise-level estimate could give it.

    python3 download.py cbsd68
    python3 -m studies.noise_map --backprops 20000 --data datasets/benchmark/CBSD68

Writes ``<out>/noise_map.json`` and ``noise_map.md`` (the table of docs/experiments.md).
The models are not kept: enhance.py and evaluate.py take the plain blind model only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from util.io.files import UserError, run_cli, write_json_atomic, write_text_atomic
from util.training.folders import REPO

SIGMAS = (15, 25, 50)
LEVELS, LEVEL_BLOCKS, FILTERS = 3, 2, 32  # edsr_lite.py's denoiser
BATCH, LEARNING_RATE, EMA, TRAIN_PATCHES = 8, 1e-3, 0.99, 1000


def train_blind(noise_map: bool, backprops: int, dataset: str = "builtin", seed: int = 0):
    """The blind denoiser trained on the data set's first TRAIN_PATCHES patches, with or without the map."""
    import keras

    import edsr_lite
    from util.data import pipelines
    from util.data.tasks import parse_task
    from util.training.run import configure_precision

    configure_precision("auto")
    keras.utils.set_random_seed(seed)
    task = parse_task("noise")
    hr = pipelines.load_hr(pipelines.dataset_dir(dataset), "train", TRAIN_PATCHES)
    ds = pipelines.make_synthetic_dataset(
        hr, BATCH, seed, task, augment=("flips", "channels"), as_float=True, noise_map=noise_map
    )
    model = edsr_lite._unet("noise", FILTERS, LEVEL_BLOCKS, 3, "zeros", 2, LEVELS, extra_channels=int(noise_map))
    optimizer = keras.optimizers.Adam(LEARNING_RATE, use_ema=True, ema_momentum=EMA)
    model.compile(optimizer=optimizer, loss="mae")
    started = time.time()
    model.fit(ds, steps_per_epoch=max(1, backprops // BATCH), epochs=1, verbose=2)
    return model, time.time() - started  # fit ends with the EMA weights in the model (Keras' use_ema)


def score(model, noise_map: bool, folder: Path, sigma: int) -> float:
    """Mean RGB PSNR over the folder's images at ``sigma``, float noise (util.evaluation.protocols's protocol)."""
    from util.data.tasks import parse_task
    from util.evaluation.protocols import degrade, load_reference, measure
    from util.io.images import list_images

    task = parse_task(f"noise{sigma}")
    multiple = 2 * 2 ** (LEVELS - 1)
    scores = []
    for path in list_images(folder):
        target, noisy = degrade(load_reference(path), task, path.stem, noisy="float")
        h, w = noisy.shape[:2]
        padded = np.pad(noisy / 255.0, [(0, -h % multiple), (0, -w % multiple), (0, 0)], mode="reflect")
        if noise_map:
            padded = np.concatenate([padded, np.full(padded.shape[:2] + (1,), sigma / 255.0)], -1)
        out = np.asarray(model(padded[None].astype(np.float32), training=False))[0, :h, :w]
        scores.append(measure(np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8), target, task)["psnr"])
    return float(np.mean(scores))


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backprops", type=int, default=20000, help="training samples of each model (20000)")
    parser.add_argument("--data", default="datasets/benchmark/CBSD68", help="folder of clean test images")
    parser.add_argument("--dataset", default="builtin", help="training patches written by download.py (builtin)")
    parser.add_argument("--out", default="runs/noise-map", help="folder of the results")
    args = parser.parse_args(argv)
    folder = Path(args.data).expanduser()
    from util.io.images import list_images

    if not folder.is_dir() or not list_images(folder):
        raise UserError(f"--data {folder}: no images there; run `python3 download.py cbsd68` or give a folder")
    if args.backprops < BATCH:
        raise UserError(f"--backprops {args.backprops}: give at least one batch ({BATCH})")
    rows = {}
    for noise_map in (False, True):
        model, seconds = train_blind(noise_map, args.backprops, args.dataset)
        name = "true-sigma map" if noise_map else "blind (no map)"
        rows[name] = {
            "train_seconds": round(seconds, 1),
            **{f"psnr_{s}": score(model, noise_map, folder, s) for s in SIGMAS},
        }
        print(name, json.dumps(rows[name]))
    out = REPO / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"backprops": args.backprops, "dataset": args.dataset, "data": str(folder), "noisy": "float", "rows": rows}
    write_json_atomic(out / "noise_map.json", result)
    lines = [
        f"Blind denoiser, {args.backprops} backprops each, {folder.name} PSNR (dB, float noise):",
        "",
        "| model | " + " | ".join(f"σ {s}" for s in SIGMAS) + " | training s |",
        "|---|" + "---:|" * (len(SIGMAS) + 1),
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{row[f'psnr_{s}']:.2f}" for s in SIGMAS) + f" | {row['train_seconds']:.0f} |"
        )
    write_text_atomic(out / "noise_map.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    sys.exit(run_cli(main))
