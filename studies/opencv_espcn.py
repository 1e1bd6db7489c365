"""OpenCV's ESPCN for ``benchmark.py runtimes --opencv-models``, written here because the published files cannot be
fetched offline.

OpenCV's dnn_superres runs ESPCN from a frozen TensorFlow graph, ``ESPCN_x<s>.pb``; the published
files (github.com/fannymonori/TF-ESPCN) come from GitHub, which no package mirrors. This script
writes a file of the same network (Shi et al. 2016 as published there: 5x5x64 tanh, 3x3x32 tanh,
3x3x(s*s) convolutions and depth_to_space, on the luma in [0, 1], the chroma by OpenCV's
bicubic), trained here for ``--minutes`` on the luma of the built-in training photos
(download_module/builtin.py's TRAIN_IMAGES, bicubic LR by util.data.resize), so that OpenCV's
speed on this machine is measured in the same run as the suite's models. Its speed is that of the
published file (the same layers in the same runtime); its PSNR is that of these weights, not of
the published ones (docs/runtimes.md says both).

    python3 -m studies.opencv_espcn --out runs/opencv_models                # ESPCN_x4.pb, ESPCN_x2.pb
    python3 benchmark.py runtimes --opencv-models runs/opencv_models

FSRCNN is not written (its published file is slower than ESPCN's, which is the faster peer).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from util.io.files import atomic_path, run_cli
from util.training.folders import REPO

SCALES = (4, 2)
LR_SIDE = 24  # LR crop side of the training batches
BATCH = 16
SEED = 0


def luma(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's Y of YCrCb (what dnn_superres gives ESPCN) of uint8 RGB, in [0, 1]."""
    return (rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0


def training_lumas() -> list[np.ndarray]:
    from download_module.builtin import TRAIN_IMAGES, _pixels

    images = []
    for name in TRAIN_IMAGES:
        pixels = _pixels(name)
        images.append(luma(pixels) if pixels.ndim == 3 else pixels.astype(np.float32) / 255.0)
    return images


def batches(images: list[np.ndarray], scale: int, rng: np.random.Generator):
    """Endless (LR, HR) batches of random luma crops, LR by MATLAB's bicubic."""
    from util.data.resize import bicubic_downscale

    side = LR_SIDE * scale
    while True:
        hr = np.empty((BATCH, side, side), np.float32)
        for i in range(BATCH):
            image = images[rng.integers(len(images))]
            y, x = rng.integers(image.shape[0] - side), rng.integers(image.shape[1] - side)
            hr[i] = image[y : y + side, x : x + side]
        lr = np.clip(bicubic_downscale(hr[..., None], scale, batch=True), 0, 1)
        yield lr.astype(np.float32), hr[..., None]


def train(scale: int, minutes: float, rng: np.random.Generator) -> list[np.ndarray]:
    """ESPCN's weights [w1, b1, w2, b2, w3, b3] after ``minutes`` of Adam on MSE."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(64, 5, padding="same", activation="tanh")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="tanh")(x)
    x = keras.layers.Conv2D(scale * scale, 3, padding="same")(x)
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, scale))(x))
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    data, end, steps = batches(training_lumas(), scale, rng), time.monotonic() + 60 * minutes, 0
    while time.monotonic() < end:
        lr, hr = next(data)
        loss = model.train_on_batch(lr, hr)
        steps += 1
    print(f"ESPCN x{scale}: {steps} steps of {BATCH}, last loss {float(loss):.5f}", file=sys.stderr)
    return model.get_weights()


def write_pb(weights: list[np.ndarray], path: Path, scale: int) -> Path:
    """The frozen graph OpenCV reads: Placeholder (1, H, W, 1) -> the three convolutions -> DepthToSpace."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w1, b1, w2, b2, w3, b3 = (tf.constant(w) for w in weights)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32)])
    def espcn(x):
        x = tf.tanh(tf.nn.bias_add(tf.nn.conv2d(x, w1, 1, "SAME"), b1))
        x = tf.tanh(tf.nn.bias_add(tf.nn.conv2d(x, w2, 1, "SAME"), b2))
        return tf.nn.depth_to_space(tf.nn.bias_add(tf.nn.conv2d(x, w3, 1, "SAME"), b3), scale)

    graph = convert_variables_to_constants_v2(espcn.get_concrete_function()).graph.as_graph_def()
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(graph.SerializeToString())
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "opencv_models", help="folder of the .pb files")
    parser.add_argument("--minutes", type=float, default=4.0, help="training time of each scale")
    parser.add_argument("--scales", default=",".join(map(str, SCALES)), help="comma-separated, of 2, 3, 4")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    for scale in (int(s) for s in args.scales.split(",")):
        path = write_pb(train(scale, args.minutes, rng), args.out / f"ESPCN_x{scale}.pb", scale)
        print(path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
