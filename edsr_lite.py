"""EDSR-lite: the suite's own model for little data on a CPU.

A small EDSR (residual blocks without batch norm) that works at LR resolution and
upsamples once at the end with a sub-pixel convolution (depth-to-space), on top of
bicubic upsampling: the network only learns what bicubic misses. At x4 each layer
sees 16x fewer pixels than the prototypes' 128x128 pre-upsampled input.
Trained with L1 loss, the eight flips/rotations as augmentation and a cosine
learning-rate schedule (see the ablation in README.md for what each brings).

    python3 download.py && python3 edsr_lite.py
    python3 edsr_lite.py --task sr2 --train-patches 100

Outputs go to runs/edsr_lite-<task>-<train patches>/ (see README.md).
"""

import sys

# ---- Constants: edit these (each is also a flag: TRAIN_PATCHES -> --train-patches) ----
DATASET = "builtin"  # builtin | div2k | mars | unsplash | a folder's name under datasets/
TASK = "sr4"  # sr2 | sr4 | sr8 | noise64 | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # the prototype's study: 100 / 1000 / 10000
BACKPROPS = 100_000  # samples shown in all (about 30 min here)
BATCH = 16
LEARNING_RATE = 1e-3  # Adam, cosine-decayed to 0 over the run
EPOCHS = 10  # validations / checkpoints
VAL_PATCHES = 100  # validation pairs from the end of the training split
TEST_PATCHES = 0  # 0 = all test pairs
OUT = "runs"
SEED = 0
PRECISION = "auto"  # auto | float32 | mixed_bfloat16
FILTERS = 64  # feature channels
BLOCKS = 8  # residual blocks
LOSS = "mae"  # mae (L1) | mse
AUGMENT = 1  # 1: random one of the 8 flips/rotations per patch; 0: none
SCHEDULE = "cosine"  # cosine | constant
BICUBIC_SKIP = 1  # 1: learn only what bicubic upsampling misses; 0: predict the whole image
# ----------------------------------------------------------------------------------------

from util.files import run_cli
from util.models import BicubicUpsample, DepthToSpace, keras, suite_input, task_scale
from util.train import run_script

layers = keras.layers


def res_block(x, filters):
    """conv-ReLU-conv with an identity shortcut (EDSR: no batch norm)."""
    y = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(filters, 3, padding="same")(y)
    return layers.Add()([x, y])


def build_model(task=TASK, args=None):
    filters, blocks = (args.FILTERS, args.BLOCKS) if args else (FILTERS, BLOCKS)
    bicubic_skip = args.BICUBIC_SKIP if args else BICUBIC_SKIP
    scale = task_scale(task)
    skip_note = ", bicubic skip" if bicubic_skip else ""
    architecture = f"EDSR-lite ({blocks} blocks x {filters} filters, sub-pixel x{scale}{skip_note})"
    inputs, lr = suite_input(task, "lr", 1, architecture)
    head = layers.Conv2D(filters, 3, padding="same")(layers.Rescaling(1.0, offset=-0.5)(lr))
    x = head
    for _ in range(blocks):
        x = res_block(x, filters)
    x = layers.Add()([head, layers.Conv2D(filters, 3, padding="same")(x)])
    x = layers.Conv2D(3 * scale * scale, 3, padding="same")(x)
    if scale > 1:
        x = DepthToSpace(scale)(x)
    if not bicubic_skip:  # the output layer alone makes the image (centred like the input)
        return keras.Model(inputs, layers.Rescaling(1.0, offset=0.5, dtype="float32")(x), name="edsr_lite")
    skip = BicubicUpsample(scale)(lr) if scale > 1 else lr
    outputs = layers.Add(dtype="float32")([skip, x])
    return keras.Model(inputs, outputs, name="edsr_lite")


def main(argv=None):
    constants = {k: v for k, v in globals().items() if k.isupper()}
    run_script("edsr_lite", constants, build_model, argv, __doc__)


if __name__ == "__main__":
    sys.exit(run_cli(main))
