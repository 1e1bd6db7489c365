"""An RGB super-resolution model of edsr_lite.py -> the same network with a luma detail (``--luma``), untrained.

    python3 -m studies.luma_detail runs/edsr_lite-sr4-1000/model.keras --out runs/sr4_luma.keras

edsr_lite's last convolution makes, for each sub-pixel phase, a detail for R, G and B that is added to
the bicubic upsampling; a ``--luma`` model makes one detail per phase, added to R, G and B alike
(``BicubicPlusLuma``). The luma of the SR protocol (BT.601, Y = 0.299 R + 0.587 G + 0.114 B up to a
scale and an offset) of the RGB model's output moves by 0.299 d_R + 0.587 d_G + 0.114 d_B; a luma
model whose last convolution (weights and bias, phase by phase) is that combination of the RGB
model's moves it by the same amount. So the luma model gives the RGB model's luma, to float
rounding, with bicubic chroma: the same PSNR and SSIM by the SR protocol (luma only), for a third of
the last convolution and a cheaper way to the output (docs/runtimes.md). The chroma loses whatever
the RGB model added to it, as ESPCN's and FSRCNN's does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from util.io.files import UserError, atomic_path, run_cli

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, the SR protocol's luma (util.evaluation)


def luma_model(model, info: dict):
    """The ``--luma`` edsr_lite model with ``model``'s weights and the luma combination of its last convolution."""
    import keras

    import edsr_lite
    from util.models.layers import BicubicUpsample

    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    phases = info["scale"] ** 2
    plain = info["data_kind"] == "photo" and info["channels"] == 3 and info["input_kind"] == "lr"
    if not plain or "luma" in info["architecture"] or not any(isinstance(x, BicubicUpsample) for x in model.layers):
        raise UserError(
            f"{model.name}: not an RGB super-resolution model of edsr_lite.py with a bicubic skip "
            f"({info['architecture']}, {info['data_kind']}, {info['channels']} channels); give one"
        )
    filters, blocks = convolutions[0].filters, (len(convolutions) - 3) // 2
    luma = edsr_lite.build_model(info["task"], filters, blocks, luma=True)
    targets = [layer for layer in luma.layers if isinstance(layer, keras.layers.Conv2D)]
    shapes = [[w.shape for w in layer.get_weights()] for layer in convolutions[:-1]]
    if shapes != [[w.shape for w in layer.get_weights()] for layer in targets[:-1]]:
        raise UserError(f"{model.name}: its layers are not edsr_lite's {blocks} blocks x {filters} filters")
    for source, target in zip(convolutions[:-1], targets[:-1], strict=True):
        target.set_weights(source.get_weights())
    kernel, bias = convolutions[-1].get_weights()  # output channel phase * 3 + colour (depth_to_space's order)
    kernel = kernel.reshape(*kernel.shape[:3], phases, 3) @ LUMA
    targets[-1].set_weights([kernel, bias.reshape(phases, 3) @ LUMA])
    return luma


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a saved RGB super-resolution model.keras of edsr_lite.py")
    parser.add_argument("--out", type=Path, required=True, help="the luma model's .keras file")
    args = parser.parse_args(argv)
    if args.out.suffix != ".keras":
        raise UserError(f"--out {args.out}: a Keras model file ends in .keras; give --out NAME.keras")
    from util.models.loading import load_model

    model, info = load_model(args.model)
    luma = luma_model(model, info)
    x = np.random.default_rng(0).random((2, 24, 32, 3), dtype=np.float32)
    difference = np.abs((np.asarray(luma(x)) - np.asarray(model(x))) @ LUMA).max()
    print(f"{args.out}: its luma differs from {args.model}'s by at most {difference:.1e}")
    with atomic_path(args.out) as tmp:
        luma.save(tmp)


if __name__ == "__main__":
    sys.exit(run_cli(main))
