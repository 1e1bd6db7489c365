"""Inception-Unet+SRCNN535: the Japanese prototype's model for little training data.

output = input + U-Net(input) + SRCNN535(input), trained with MSE on 128x128 pairs
whose input is the LR image bicubic-upsampled back to 128x128 (or the noisy image).

    python3 download.py          # the built-in images, no network
    python3 inception2.py        # train, score against bicubic, plot
    python3 inception2.py --train-patches 100 --task sr8
    python3 inception2.py --role test --dataset mars
    python3 inception2.py --role predict --input my_photos/

Outputs go to runs/inception2-<task>-<train patches>/ (see README.md).
"""

import sys

# ---- Constants: edit these (each is also a flag: TRAIN_PATCHES -> --train-patches) ----
DATASET = "builtin"  # builtin | div2k | mars | unsplash | a folder's name under datasets/
TASK = "sr4"  # sr2 | sr4 | sr8 | noise64 | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # prototype: 10000 (its study: 100 / 1000 / 10000)
BACKPROPS = 6000  # samples shown in all; prototype: 100_000 (hours on a CPU)
BATCH = 16  # prototype: 2 (slow on a CPU)
LEARNING_RATE = 5e-4  # prototype: 5e-4
EPOCHS = 10  # validations / checkpoints; prototype: BACKPROPS / 10000
VAL_PATCHES = 100  # prototype: validated on the test pairs; we keep those for scoring only
TEST_PATCHES = 0  # 0 = all test pairs; prototype: all
OUT = "runs"  # prototype: saves/ and outputs/
SEED = 0
PRECISION = "auto"  # auto | float32 | mixed_bfloat16; prototype: float32
# ----------------------------------------------------------------------------------------

from util.files import run_cli
from util.models import keras, suite_input  # Keras, with TensorFlow imported quietly
from util.train import run_script

layers = keras.layers


def unet(x, dim=64):
    """Four 5x5 stride-2 convolutions down, four 5x5 stride-2 transposed ones up.

    Each transposed convolution takes the sum of the previous output and the
    encoder output of the same size; dropout 0.2 after every layer but the last.
    """
    skips = []
    for _ in range(4):
        x = layers.Conv2D(dim, 5, 2, padding="same", activation="relu")(x)
        x = layers.Dropout(0.2)(x)
        skips.append(x)
    x = layers.Conv2D(dim, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    for skip in reversed(skips):
        x = layers.Conv2DTranspose(dim, 5, 2, padding="same", activation="relu")(layers.Add()([x, skip]))
        x = layers.Dropout(0.2)(x)
    x = layers.Conv2D(dim // 2, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Conv2D(3, 5, padding="same")(x)


def srcnn535(x, dim=64):
    """SRCNN with 5x5, 3x3, 5x5 kernels (64, 32, 3 filters)."""
    x = layers.Conv2D(dim, 5, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv2D(dim // 2, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Conv2D(3, 5, padding="same")(x)


def build_model(task=TASK, args=None):
    # Four stride-2 levels: height and width must be multiples of 16.
    inputs, x = suite_input(task, "upsampled", 16, "Inception-Unet+SRCNN535")
    # The sum is kept in float32 so that bfloat16 training does not round the image.
    outputs = layers.Add(dtype="float32")([x, unet(x), srcnn535(x)])
    return keras.Model(inputs, outputs, name="inception_unet_srcnn535")


def main(argv=None):
    constants = {k: v for k, v in globals().items() if k.isupper()}
    run_script("inception2", constants, build_model, argv, __doc__)


if __name__ == "__main__":
    sys.exit(run_cli(main))
