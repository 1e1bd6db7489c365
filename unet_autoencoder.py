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
DATASET = "builtin"  # pairs written by download.py: builtin | div2k | mars | unsplash | a folder under datasets/
TASK = "sr4"  # sr2 | sr4 | sr8 | noiseS (noise25) | noise (blind) | defocusR | defocus | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # train on the first N training pairs; prototype: all of its Kaggle pairs
BACKPROPS = 2000  # samples shown in all, whatever TRAIN_PATCHES is; 31M parameters make each slow on a CPU
BATCH = 8  # patches per gradient step; prototype: 16 (Kaggle GPU)
LEARNING_RATE = 1e-3  # Adam's learning rate; prototype: Adam's default, 1e-3
EPOCHS = 5  # validations / checkpoints during training (BACKPROPS split evenly)
VAL_PATCHES = 100  # validation pairs from the end of the training split
TEST_PATCHES = 0  # 0 = all test pairs
OUT = "runs"  # folder of the run folders <script>-<task>-<patches>, relative to the repository
SEED = 0  # seed of the weights, the shuffling, dropout and augmentations
PRECISION = "auto"  # auto (half precision where GPU/CPU has it natively) | float32 | mixed_bfloat16 | mixed_float16
DISTRIBUTE = "auto"  # auto | none | mirrored (local GPUs) | multiworker (TF_CONFIG); BATCH stays the global batch
NOISY = "8bit"  # noise tasks: train on noise clipped and rounded as an 8-bit image, or float (unclipped: the papers)
LOSS = "mse"  # mse | mae (L1); prototype: mse
AUGMENT = "none"  # none | auto | a comma list of flips, channels, shifts (see edsr_lite.py); prototype: none
SCHEDULE = "constant"  # constant | cosine (Adam's rate decayed to 0 over the run); prototype: constant
EMA = 0.0  # momentum of the weights' moving average, validated and saved; 0 = the raw weights (prototype)
AUX = ""  # stacks: static predictors as extra inputs, a comma list of latitude and raster files (elevation, land mask)
INIT_FROM = ""  # fine-tune this saved model.keras (same script, task and kind of data); "" = from scratch
CONSERVE = False  # rasters, stacks: keep the LR block means (needs the LR grid as input: edsr_lite.py, not this)
# ----------------------------------------------------------------------------------------

from util.io.files import run_cli
from util.models.layers import keras, suite_input  # Keras, with TensorFlow imported quietly
from util.training.roles import model_script

layers = keras.layers

LEVEL_FILTERS = (64, 128, 256, 512, 1024)  # the five levels, as the prototype


def conv_block(x, filters):
    """Two 3x3 ReLU convolutions with BatchNorm between them, as the prototype."""
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu")(x)


def build_model(task=TASK, *, channels=3):
    """The prototype's U-Net on ``channels`` channels (3: RGB photos, 1: rasters, set by the data)."""
    # Four 2x2 poolings: height and width must be multiples of 16.
    inputs, x = suite_input(task, "upsampled", 16, "U-Net autoencoder", channels)
    skips = []
    for filters in LEVEL_FILTERS[:-1]:
        x = conv_block(x, filters)
        skips.append(x)
        x = layers.Dropout(0.2)(layers.MaxPooling2D(2)(x))
    x = conv_block(x, LEVEL_FILTERS[-1])
    for filters, skip in zip(reversed(LEVEL_FILTERS[:-1]), reversed(skips), strict=True):
        x = layers.Dropout(0.2)(layers.UpSampling2D(2)(x))
        x = conv_block(layers.Concatenate()([x, skip]), filters)
    # The prototype ended in Conv2D(num_classes, activation="softmax"), left over from
    # the car-segmentation example it was adapted from; restoration needs the three
    # colour channels (or the raster's one) with a linear activation. Kept in float32 for bfloat16 training.
    outputs = layers.Conv2D(channels, 3, padding="same", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="unet_autoencoder")


main = model_script(__name__, build_model, prototype=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
