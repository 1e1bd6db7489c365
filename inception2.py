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
DATASET = "builtin"  # pairs written by download.py: builtin | div2k | mars | unsplash | a folder under datasets/
TASK = "sr4"  # sr2 | sr4 | sr8 | noiseS (noise25) | noise (blind) | defocusR | defocus | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # train on the first N training pairs; prototype: 10000 (its study: 100 / 1000 / 10000)
BACKPROPS = 6000  # samples shown in all, whatever TRAIN_PATCHES is; prototype: 100_000 (hours on a CPU)
BATCH = 16  # patches per gradient step; prototype: 2 (slow on a CPU)
LEARNING_RATE = 5e-4  # Adam's learning rate; prototype: 5e-4
EPOCHS = 10  # validations / checkpoints during training (BACKPROPS split evenly); prototype: BACKPROPS/10000
VAL_PATCHES = 100  # validation pairs from the end of the training split; prototype: the test pairs
TEST_PATCHES = 0  # 0 = all test pairs; prototype: all
OUT = "runs"  # folder of the run folders <script>-<task>-<patches> (below the repository); prototype: saves/
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


def unet(x, dim=64, channels=3):
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
    return layers.Conv2D(channels, 5, padding="same")(x)


def srcnn535(x, dim=64, channels=3):
    """SRCNN with 5x5, 3x3, 5x5 kernels (64, 32, 3 filters)."""
    x = layers.Conv2D(dim, 5, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv2D(dim // 2, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Conv2D(channels, 5, padding="same")(x)


def build_model(task=TASK, *, channels=3):
    """Inception-Unet+SRCNN535 on ``channels`` channels (3: RGB photos, 1: rasters, set by the data)."""
    # Four stride-2 levels: height and width must be multiples of 16.
    inputs, x = suite_input(task, "upsampled", 16, "Inception-Unet+SRCNN535", channels)
    # The sum is kept in float32 so that bfloat16 training does not round the image.
    outputs = layers.Add(dtype="float32")([x, unet(x, channels=channels), srcnn535(x, channels=channels)])
    return keras.Model(inputs, outputs, name="inception_unet_srcnn535")


main = model_script(__name__, build_model, prototype=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
