"""EDSR-lite: the suite's own model for little data on a CPU.

A small EDSR (residual blocks without batch norm) that works at LR resolution and
upsamples once at the end with a sub-pixel convolution (depth-to-space), on top of
bicubic upsampling: the network only learns what bicubic misses. At x4 each layer
sees 16x fewer pixels than the prototypes' 128x128 pre-upsampled input.
The output layer starts at zero, so the untrained model is exactly bicubic, and the
weights kept are their moving average (EMA). Trained with L1 loss at a constant
learning rate, with three augmentations that keep
each pair exact (the eight flips/rotations, the six RGB channel orders, and the
scale**2 sub-pixel phases of the LR sampling), and no batch norm or dropout (the
ablation in README.md measures what each choice brings). Narrow (32 filters), shallow
(4 blocks) and trained long: on a 2-core CPU, size costs time that more backprops use
about as well.

    python3 download.py && python3 edsr_lite.py
    python3 edsr_lite.py --task sr2 --train-patches 100

Outputs go to runs/edsr_lite-<task>-<train patches>/ (see README.md).
"""

import sys

# ---- Constants: edit these (each is also a flag: TRAIN_PATCHES -> --train-patches) ----
DATASET = "builtin"  # builtin | div2k | mars | unsplash | a folder's name under datasets/
TASK = "sr4"  # sr2 | sr4 | sr8 | noise64 | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # the prototype's study: 100 / 1000 / 10000
BACKPROPS = 180_000  # samples shown in all (x4, float32: ~20 min on one core of a 2-core Xeon; or --minutes)
BATCH = 8  # 8 learnt more per sample than 16 and 4 (2-min runs), ~10% slower per sample than 16
LEARNING_RATE = 1e-3  # Adam
EPOCHS = 10  # validations / checkpoints
VAL_PATCHES = 100  # validation pairs from the end of the training split
TEST_PATCHES = 0  # 0 = all test pairs
OUT = "runs"
SEED = 0
PRECISION = "auto"  # auto | float32 | mixed_bfloat16
FILTERS = 32  # feature channels
BLOCKS = 4  # residual blocks (8 scored 0.09 dB more on Set5 in the same ~20 min, at 1.7x the time per sample)
LOSS = "mae"  # mae (L1) | mse
AUGMENT = "flips,channels,shifts"  # flips (8 flips/rotations), channels (RGB order), shifts (sub-pixel), invert
SCHEDULE = "constant"  # constant | cosine (decayed to 0 over the run)
EMA = 0.99  # validate and keep the weights' moving average (Keras' Adam use_ema); 0 = the raw weights
OUTPUT_INIT = "zeros"  # zeros: the untrained model is exactly bicubic | glorot_uniform (Keras' default)
BICUBIC_SKIP = 1  # 1: learn only what bicubic upsampling misses; 0: predict the whole image
INPUT_KIND = "lr"  # lr: layers at LR resolution, sub-pixel upsampling at the end; upsampled: the prototypes' way
NORM = "none"  # none | batch (batch normalization in each residual block)
DROPOUT = 0.0  # dropout rate in each residual block (the prototypes: 0.2)
# ----------------------------------------------------------------------------------------

from types import SimpleNamespace

from util.files import UserError, run_cli
from util.models import BicubicUpsample, DepthToSpace, keras, suite_input, task_scale
from util.train import run_script

layers = keras.layers


def res_block(x, filters, norm="none", dropout=0.0):
    """conv-ReLU-conv with an identity shortcut (EDSR: no batch norm, no dropout by default)."""
    y = layers.Conv2D(filters, 3, padding="same")(x)
    y = layers.BatchNormalization()(y) if norm == "batch" else y
    y = layers.Activation("relu")(y)
    y = layers.Dropout(dropout)(y) if dropout else y
    y = layers.Conv2D(filters, 3, padding="same")(y)
    y = layers.BatchNormalization()(y) if norm == "batch" else y
    return layers.Add()([x, y])


def build_model(task=TASK, args=None):
    c = args or SimpleNamespace(**{k: v for k, v in globals().items() if k.isupper()})
    if c.INPUT_KIND not in ("lr", "upsampled") or c.NORM not in ("none", "batch") or not 0 <= c.DROPOUT < 1:
        raise UserError(
            f"INPUT_KIND={c.INPUT_KIND!r}, NORM={c.NORM!r}, DROPOUT={c.DROPOUT}: use lr or upsampled, "
            "none or batch, and a rate in [0, 1)"
        )
    if c.OUTPUT_INIT not in ("zeros", "glorot_uniform"):
        raise UserError(f"OUTPUT_INIT={c.OUTPUT_INIT!r} is unknown; use zeros or glorot_uniform")
    scale = task_scale(task)
    lr_space = c.INPUT_KIND == "lr"
    notes = [f"sub-pixel x{scale}" if lr_space else "HR-space input"]
    notes += ["bicubic skip"] * bool(c.BICUBIC_SKIP) + ["batch norm"] * (c.NORM == "batch")
    notes += [f"dropout {c.DROPOUT:g}"] * bool(c.DROPOUT)
    architecture = f"EDSR-lite ({c.BLOCKS} blocks x {c.FILTERS} filters, {', '.join(notes)})"
    inputs, image = suite_input(task, c.INPUT_KIND, 1, architecture)
    head = layers.Conv2D(c.FILTERS, 3, padding="same")(layers.Rescaling(1.0, offset=-0.5)(image))
    x = head
    for _ in range(c.BLOCKS):
        x = res_block(x, c.FILTERS, c.NORM, c.DROPOUT)
    x = layers.Add()([head, layers.Conv2D(c.FILTERS, 3, padding="same")(x)])
    up = scale if lr_space else 1
    x = layers.Conv2D(3 * up * up, 3, padding="same", kernel_initializer=c.OUTPUT_INIT)(x)
    if up > 1:
        x = DepthToSpace(up)(x)
    if not c.BICUBIC_SKIP:  # the output layer alone makes the image (centred like the input)
        return keras.Model(inputs, layers.Rescaling(1.0, offset=0.5, dtype="float32")(x), name="edsr_lite")
    skip = BicubicUpsample(up)(image) if up > 1 else image
    outputs = layers.Add(dtype="float32")([skip, x])
    return keras.Model(inputs, outputs, name="edsr_lite")


def main(argv=None):
    constants = {k: v for k, v in globals().items() if k.isupper()}
    run_script("edsr_lite", constants, build_model, argv, __doc__)


if __name__ == "__main__":
    sys.exit(run_cli(main))
