"""Benchmarks of the suite, one subcommand each; ``python3 benchmark.py SUBCOMMAND --help`` lists its flags.

    python3 benchmark.py models [MODEL.keras ...]             # SR models beside bicubic: quality, speed, memory
    python3 benchmark.py restoration --task noise25           # denoising / deblurring models beside CBM3D, Wiener ...
    python3 benchmark.py raster [MODEL.keras ...]             # the raster (DEM) models
    python3 benchmark.py runtimes [MODEL.keras ...]           # each model in Keras, ONNX Runtime, OpenVINO, LiteRT
    python3 benchmark.py training                             # training speed of the model scripts
    python3 benchmark.py scaling                              # 1 worker against 2 (tf.distribute), one core each
    python3 benchmark.py data-sizes 10000,100000              # peak memory of download and training vs data size

Each prints a Markdown table and writes it, with a JSON of the same rows, into --out
(runs/benchmark/). The measurements live in util/benchmarks/, one module per subcommand.
"""

from __future__ import annotations

import argparse
import sys

import util
from util.benchmarks import data_sizes, models, raster, restoration, runtimes, scaling, training

# The model scripts, each registering itself on import (util.training.roles.model_script); a new one is one more name.
MODEL_SCRIPTS = ("edsr_lite", "inception2", "unet_autoencoder")

SUBCOMMANDS = {
    "models": models,
    "restoration": restoration,
    "raster": raster,
    "runtimes": runtimes,
    "training": training,
    "scaling": scaling,
    "data-sizes": data_sizes,
}


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line (naming the subcommand and where to read its flags), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="subcommand", required=True, parser_class=OneLineParser)
    for name, module in SUBCOMMANDS.items():
        subparser = subcommands.add_parser(
            name,
            help=module.__doc__.splitlines()[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.main, model_scripts=model_scripts)
    return parser.parse_args(argv)


def model_scripts() -> dict:
    """The model scripts of MODEL_SCRIPTS by name (util.training.roles.ModelScript), imported on first use."""
    import importlib

    from util.training.roles import MODEL_SCRIPTS as REGISTERED

    for name in MODEL_SCRIPTS:
        importlib.import_module(name)
    return {name: REGISTERED[name] for name in MODEL_SCRIPTS}


def main(argv=None) -> None:
    args = parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(util.run_cli(main))
