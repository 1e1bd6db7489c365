"""Export a saved model of the suite for another runtime, check it against Keras, write its model card.

    python3 export.py assets/models/sr4.keras --format onnx          # -> assets/models/sr4.onnx (+ sr4.onnx.json)
    python3 export.py assets/models/denoise.keras --format litert    # -> denoise.tflite, for phones (LiteRT)
    python3 export.py assets/models/dem_x4.keras --format openvino   # -> dem_x4.xml + dem_x4.bin
    python3 export.py runs/<run>/model.keras --format saved_model --out served/model

Formats: onnx (ONNX Runtime and others), openvino (.xml + .bin), litert (.tflite) and
saved_model (a TensorFlow SavedModel folder). Their packages are optional extras:
pip install -r requirements-export.txt, or make setup EXPORT=1.

The exported model takes float32 NHWC of any batch, height and width (multiples of the
model's size multiple): photos RGB in [0, 1], rasters one channel in the data's units,
as the .keras model does; SR models whose input is "lr" return the image scale times
larger. The export is Keras' Model.export; every layer of the suite is made of ops that
all four runtimes have. export.py then runs the exported file in its runtime on a test
image, prints the largest difference from Keras (the check fails above 1/255 for photos,
1e-4 of the height scale for rasters) and writes the model card, <file>.json: the
model's SuiteInfo (task, scale, input kind, units, ...) and what goes in and comes out,
because the exported graph keeps none of it. util/models/export.py's load_exported runs an
exported file with the calls of a Keras model (predict_on_batch, predict).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from util.models.export import FORMATS, INSTALL, exported_format

# ---- Constants: edit these -------------------------------------------------
FORMAT = "onnx"  # onnx | openvino | litert | saved_model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a saved model.keras of the suite")
    parser.add_argument("--format", default=FORMAT, choices=sorted(FORMATS), help=f"default: {FORMAT} ({INSTALL})")
    parser.add_argument(
        "--out", type=Path, help="exported file (a folder for saved_model); default: beside the model, its stem"
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from util.io.files import UserError
    from util.models.export import (
        card_path,
        check_exported,
        default_output,
        export_model,
        load_exported,
        model_card,
        require_runtime,
        tolerance,
        write_card,
    )

    fmt = FORMATS[args.format]
    out = args.out or default_output(args.model, fmt)
    if fmt.suffix and out.suffix.lower() != fmt.suffix:
        raise UserError(f"--out {out}: {fmt.name} files end in {fmt.suffix}; give --out NAME{fmt.suffix}")
    require_runtime(fmt)  # before TensorFlow loads: a missing package is said at once
    if exported_format(args.model) is None and out.resolve() == args.model.resolve():
        raise UserError(f"--out {out}: that is the model itself; give another path")
    from util.models.loading import load_model

    model, info = load_model(args.model)
    export_model(model, info, out, fmt)
    difference = check_exported(model, info, load_exported(out))
    limit = tolerance(info)
    print(f"{out}: {fmt.runtime} output differs from Keras by at most {difference:.3g} (tolerance {limit:.3g})")
    if not difference <= limit:
        raise UserError(f"{out}: differs from Keras by {difference:.3g} > {limit:.3g}; the export is not faithful")
    write_card(out, model_card(info, fmt, args.model.name, difference, limit))
    print(f"model card: {card_path(out)}")


if __name__ == "__main__":
    from util.io.files import run_cli

    sys.exit(run_cli(main))
