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
ablation in docs/experiments.md measures what each choice brings). Narrow (32 filters), shallow
(4 blocks) and trained long: on a 2-core CPU, size costs time that more backprops use
about as well.

Denoising and deblurring get no LR shortcut, so there the layers work on the image
pixel-unshuffled by 2 (FFDNet) as a small U-Net of DRUNet's shape (3 levels of 32, 64 and
128 filters, 2 blocks per level and side), predicting the residual: the same inference time
as 8 plain blocks, more capacity and a wider view (docs/experiments.md, denoising).

    python3 download.py && python3 edsr_lite.py
    python3 edsr_lite.py --task sr2 --train-patches 100

Outputs go to runs/edsr_lite-<task>-<train patches>/ (see README.md).
"""

import sys

# ---- Constants: edit these (each is also a flag: TRAIN_PATCHES -> --train-patches) ----
DATASET = "builtin"  # pairs written by download.py: builtin | div2k | mars | unsplash | dem (rasters) | datasets/<name>
TASK = "sr4"  # sr2 | sr4 | sr8 | noiseS (noise25) | noise (blind) | defocusR | defocus | noise64blur | x4noise64
TRAIN_PATCHES = 1000  # train on the first N training pairs; the prototype's study: 100 / 1000 / 10000
BACKPROPS = 180_000  # samples shown in all, whatever TRAIN_PATCHES is (x4: ~20 min on one core of a 2-core Xeon)
BATCH = 8  # patches per step; 8 learnt more per sample than 16 or 4 (2-min runs), ~10% slower per sample than 16
LEARNING_RATE = 1e-3  # Adam's learning rate
EPOCHS = 10  # validations / checkpoints during training (BACKPROPS split evenly)
VAL_PATCHES = 100  # validation pairs from the end of the training split
TEST_PATCHES = 0  # 0 = all test pairs
OUT = "runs"  # folder of the run folders <script>-<task>-<patches>, relative to the repository
SEED = 0  # seed of the weights, the shuffling, dropout and augmentations
PRECISION = "auto"  # auto (half precision where GPU/CPU has it natively) | float32 | mixed_bfloat16 | mixed_float16
DISTRIBUTE = "auto"  # auto | none | mirrored (local GPUs) | multiworker (TF_CONFIG); BATCH stays the global batch
NOISY = "8bit"  # noise tasks: train on noise clipped and rounded as an 8-bit image, or float (unclipped: the papers)
FILTERS = 32  # feature channels
BLOCKS = 4  # residual blocks (8 scored 0.09 dB more on Set5 in the same ~20 min, at 1.7x the time per sample)
LOSS = "mae"  # mae (L1) | mse
AUGMENT = "auto"  # auto | none | a list of flips, channels, shifts (photos); flips, invert, amplitude (rasters)
SCHEDULE = "constant"  # constant | cosine (decayed to 0 over the run)
EMA = 0.99  # validate and keep the weights' moving average (Keras' Adam use_ema); 0 = the raw weights
LEVELS = 3  # denoising, deblurring: U-Net levels (DRUNet's shape, filters x2 per level; 1 = no U-Net, BLOCKS blocks)
LEVEL_BLOCKS = 2  # U-Net (LEVELS > 1): residual blocks per level, on the way down, at the bottom and on the way up
UNSHUFFLE = 2  # denoising, deblurring: layers on the image unshuffled by this factor (space to depth; 1 = off)
AUX = ""  # stacks: static predictors as extra inputs, a comma list of latitude and raster files (elevation, land mask)
INIT_FROM = ""  # fine-tune this saved model.keras (same script, task and kind of data); "" = from scratch
SR_LEVELS = 1  # super-resolution: U-Net levels at LR resolution, LEVEL_BLOCKS blocks each (1 = BLOCKS plain blocks)
LUMA = False  # photo SR: the network adds one detail channel to R, G and B alike (ESPCN's luma-only output)
CONSERVE = False  # rasters, stacks: correct each s x s block of the output to average exactly to its LR cell
# ----------------------------------------------------------------------------------------

from util.data.tasks import parse_task
from util.io.files import run_cli
from util.models.layers import BicubicPlusLuma, BicubicUpsample, DepthToSpace, SpaceToDepth, keras, suite_input
from util.training.roles import model_script

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


def build_model(
    task=TASK,
    filters=FILTERS,
    blocks=BLOCKS,
    *,
    channels=3,
    extra_channels=0,
    output_init="zeros",
    bicubic_skip=True,
    lr_space=True,
    norm="none",
    dropout=0.0,
    unshuffle=UNSHUFFLE,
    levels=LEVELS,
    level_blocks=LEVEL_BLOCKS,
    luma=LUMA,
    sr_levels=SR_LEVELS,
):
    """EDSR-lite for ``task`` on ``channels`` channels (3: RGB photos, 1: rasters, set by the data).

    ``extra_channels``: inputs after the image's channels that the network sees but does not output
    (a stack's static predictors, util.data.static; set by the data too).

    The other keyword-only arguments are the ablation's (util/training/studies.py):

    ``output_init`` of the last convolution (zeros: the untrained model is bicubic),
    ``bicubic_skip`` (the network adds to bicubic upsampling), ``lr_space`` (layers at LR
    resolution and a sub-pixel upsampler; False: on the bicubic-upsampled input, as the
    prototypes), ``norm`` ("batch" in every block) and a ``dropout`` rate in every block.
    ``unshuffle``: for the full-resolution tasks (denoising, deblurring), the layers work on the
    image pixel-unshuffled by this factor (FFDNet's space-to-depth: unshuffle**2 fewer positions,
    each with unshuffle**2 times the channels) and the output is shuffled back and added to the
    input (residual learning: the network predicts minus the noise). ``levels`` > 1: instead of
    ``blocks`` blocks, a U-Net of that many levels on the unshuffled image (``_unet``; the
    ablation's other arguments apply to the plain network only).
    ``luma``: super-resolution of photos only; the last convolution makes one channel of detail per
    output pixel, added to the bicubic R, G and B alike. That changes the luma (Y = 0.299 R + 0.587 G
    + 0.114 B) by the detail and leaves the chroma bicubic, as ESPCN and FSRCNN do, for a third of
    the last layer's cost; the network still sees all three channels.
    ``sr_levels`` > 1 (super-resolution): the blocks are a U-Net of that many levels at LR resolution,
    ``level_blocks`` blocks per level (``unet_body``): more weights and field of view for the same cost.
    """
    scale = parse_task(task).scale
    unshuffle = unshuffle if scale == 1 else 1
    if scale == 1 and levels > 1:
        return _unet(task, filters, level_blocks, channels, output_init, unshuffle, levels)
    notes = [f"sub-pixel x{scale}" if lr_space else "HR-space input"] if scale > 1 else []
    notes += [f"pixel-unshuffled /{unshuffle}"] * (unshuffle > 1)
    notes += (["bicubic skip"] if scale > 1 else ["residual"]) * bool(bicubic_skip)
    notes += [f"{extra_channels} predictor channels"] * bool(extra_channels)
    luma = bool(luma) and channels == 3 and scale > 1 and lr_space and bicubic_skip
    notes += ["luma detail"] * luma
    notes += ["batch norm"] * (norm == "batch") + [f"dropout {dropout:g}"] * bool(dropout)
    sr_levels = sr_levels if scale > 1 and lr_space else 1
    body = f"{blocks} blocks x {filters} filters"
    if sr_levels > 1:
        widest = filters * 2 ** (sr_levels - 1)
        body = f"{sr_levels}-level U-Net, {level_blocks} blocks per level x {filters}-{widest} filters"
    architecture = f"EDSR-lite ({body}, {', '.join(notes)})"
    kind = "lr" if lr_space else "upsampled"
    inputs, given = suite_input(task, kind, unshuffle * 2 ** (sr_levels - 1), architecture, channels + extra_channels)
    image = given[..., :channels] if extra_channels else given
    x = layers.Rescaling(1.0, offset=-0.5)(given)
    x = SpaceToDepth(unshuffle)(x) if unshuffle > 1 else x
    head = layers.Conv2D(filters, 3, padding="same")(x)
    x = head
    if sr_levels > 1:
        x = unet_body(x, filters, level_blocks, sr_levels)
    else:
        for _ in range(blocks):
            x = res_block(x, filters, norm, dropout)
    x = layers.Add()([head, layers.Conv2D(filters, 3, padding="same")(x)])
    up = (scale if lr_space else 1) * unshuffle
    x = layers.Conv2D((1 if luma else channels) * up * up, 3, padding="same", kernel_initializer=output_init)(x)
    if luma:
        return keras.Model(inputs, BicubicPlusLuma(up)([image, x]), name="edsr_lite")
    if up > 1:
        x = DepthToSpace(up)(x)
    if not bicubic_skip:  # the output layer alone makes the image (centred like the input)
        return keras.Model(inputs, layers.Rescaling(1.0, offset=0.5, dtype="float32")(x), name="edsr_lite")
    skip = BicubicUpsample(up)(image) if scale > 1 and up > 1 else image
    outputs = layers.Add(dtype="float32")([skip, x])
    return keras.Model(inputs, outputs, name="edsr_lite")


def _unet(task, filters, blocks, channels, output_init, unshuffle, levels, extra_channels=0):
    """DRUNet's shape (Zhang et al., TPAMI 2022), small, on the unshuffled image: ``blocks`` residual
    blocks per level on the way down, at the bottom and on the way up; strided 2x2 convolutions down
    (filters doubled per level), transposed ones up, skips added; the output is added to the input.

    Each level has 4x fewer positions and 4x the weights per block, so every level costs the same
    per pixel: the deep levels add capacity and field of view at little cost.
    ``extra_channels``: inputs after the image's channels that only the first layer sees (the
    noise-level map of studies/noise_map.py).
    """
    notes = f"{levels}-level U-Net, {blocks} blocks per level x {filters}-{filters * 2 ** (levels - 1)} filters"
    architecture = f"EDSR-lite ({notes}, pixel-unshuffled /{unshuffle}, residual)"
    inputs, given = suite_input(task, "lr", unshuffle * 2 ** (levels - 1), architecture, channels + extra_channels)
    image = given[..., :channels] if extra_channels else given
    x = layers.Rescaling(1.0, offset=-0.5)(given)
    x = SpaceToDepth(unshuffle)(x) if unshuffle > 1 else x
    x = unet_body(layers.Conv2D(filters, 3, padding="same")(x), filters, blocks, levels)
    x = layers.Conv2D(channels * unshuffle**2, 3, padding="same", kernel_initializer=output_init)(x)
    x = DepthToSpace(unshuffle)(x) if unshuffle > 1 else x
    return keras.Model(inputs, layers.Add(dtype="float32")([image, x]), name="edsr_lite")


def unet_body(x, filters, blocks, levels):
    """The U-Net between the first and the last convolution: ``blocks`` residual blocks per level down, at the
    bottom and up, strided 2x2 convolutions down (filters doubled), transposed ones up, skips added."""
    skips = []
    for level in range(levels - 1):
        for _ in range(blocks):
            x = res_block(x, filters * 2**level)
        skips.append(x)
        x = layers.Conv2D(filters * 2 ** (level + 1), 2, strides=2)(x)
    for _ in range(blocks):
        x = res_block(x, filters * 2 ** (levels - 1))
    for level in reversed(range(levels - 1)):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2)(x)
        x = layers.Add()([x, skips[level]])
        for _ in range(blocks):
            x = res_block(x, filters * 2**level)
    return x


main = model_script(__name__, build_model)
if __name__ == "__main__":
    sys.exit(run_cli(main))
