"""The Korean prototype's U-Net autoencoder, turned from segmentation to restoration.

Five levels of 64-128-256-512-1024 filters (two 3x3 convolutions each, BatchNorm
after the first), 2x2 max pooling and dropout 0.2 on the way down, UpSampling and
concatenation with the encoder output on the way up. Trained with MSE on 128x128
pairs whose input is the LR image bicubic-upsampled back to 128x128.

    python3 download.py && python3 unet_autoencoder.py
    python3 unet_autoencoder.py --task noise64 --train-patches 100

Outputs go to runs/unet_autoencoder-<task>-<train patches>/ (see README.md).
"""

import sys

# ---- Constants: edit these (each is also a flag: TRAIN_PATCHES -> --train-patches) ----
DATASET = "builtin"  # builtin | div2k | mars | unsplash | a folder's name under datasets/
TASK = "sr4"  # sr2 | sr4 | sr8 | noise64 | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # prototype: all of its Kaggle pairs
BACKPROPS = 2000  # samples shown in all; 31M parameters make each one slow on a CPU
BATCH = 8  # prototype: 16 (Kaggle GPU)
LEARNING_RATE = 1e-3  # prototype: Adam's default, 1e-3
EPOCHS = 5  # validations / checkpoints
VAL_PATCHES = 100  # validation pairs from the end of the training split
TEST_PATCHES = 0  # 0 = all test pairs
OUT = "runs"
SEED = 0
PRECISION = "auto"  # auto | float32 | mixed_bfloat16; prototype: float32
# ----------------------------------------------------------------------------------------

from util.files import run_cli
from util.models import keras, suite_input  # Keras, with TensorFlow imported quietly
from util.train import run_script

layers = keras.layers

FILTERS = (64, 128, 256, 512, 1024)


def conv_block(x, filters):
    """Two 3x3 ReLU convolutions with BatchNorm between them, as the prototype."""
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu")(x)


def build_model(task=TASK, args=None):
    # Four 2x2 poolings: height and width must be multiples of 16.
    inputs, x = suite_input(task, "upsampled", 16, "U-Net autoencoder")
    skips = []
    for filters in FILTERS[:-1]:
        x = conv_block(x, filters)
        skips.append(x)
        x = layers.Dropout(0.2)(layers.MaxPooling2D(2)(x))
    x = conv_block(x, FILTERS[-1])
    for filters, skip in zip(reversed(FILTERS[:-1]), reversed(skips), strict=True):
        x = layers.Dropout(0.2)(layers.UpSampling2D(2)(x))
        x = conv_block(layers.Concatenate()([x, skip]), filters)
    # The prototype ended in Conv2D(num_classes, activation="softmax"), left over from
    # the car-segmentation example it was adapted from; restoration needs the three
    # colour channels with a linear activation. Kept in float32 for bfloat16 training.
    outputs = layers.Conv2D(3, 3, padding="same", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="unet_autoencoder")


def main(argv=None):
    constants = {k: v for k, v in globals().items() if k.isupper()}
    run_script("unet_autoencoder", constants, build_model, argv, __doc__)


if __name__ == "__main__":
    sys.exit(run_cli(main))
