"""What the scripts of the suite share, one module a concern.

- ``util.files``: UserError, ``run_cli`` and atomic writes;
- ``util.images``: the one image reader (uint8 RGB, or a photo as stored), PNG writing, rounding;
- ``util.tasks``: task names (sr4, noise25 ...) and what they mean;
- ``util.settings``: a script's constants block -> flags -> one frozen, typed Settings;
- ``util.resize``: MATLAB-compatible bicubic resizing;
- ``util.metrics``: PSNR / SSIM with explicit protocols;
- ``util.evaluation``: the benchmark protocols (evaluate.py, benchmark.py);
- the TensorFlow parts, imported on their own so that the data step never loads
  TensorFlow: ``util.models`` (layers, loading), ``util.data`` (pairs -> tf.data),
  ``util.training`` (one run), ``util.distribute`` (tf.distribute strategy, chief,
  workers), ``util.speed`` (training speed), ``util.studies``
  (sweep, ablation, time budget), ``util.roles`` (a model script's entry point:
  train, test, predict, average), ``util.inference`` (tiles, self-ensemble),
  ``util.photos`` (enhancing photo files), ``util.report`` (tables, figures);
- ``util.benchmarks``: benchmark.py's subcommands, one module each, and what they share.

The light helpers are re-exported here (``util.psnr``, ``util.load_image_rgb``...).
Nothing runs at import time.
"""

from util.files import UserError, atomic_path, run_cli, save_npy_atomic, write_json_atomic, write_text_atomic
from util.images import IMAGE_SUFFIXES, ImageError, list_images, load_image_rgb, round_to_dtype, to_uint8_rgb
from util.metrics import psnr, rgb_to_y, ssim
from util.resize import bicubic_downscale, bicubic_upscale, imresize, modcrop

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "UserError",
    "atomic_path",
    "bicubic_downscale",
    "bicubic_upscale",
    "imresize",
    "list_images",
    "load_image_rgb",
    "modcrop",
    "psnr",
    "round_to_dtype",
    "rgb_to_y",
    "run_cli",
    "save_npy_atomic",
    "ssim",
    "to_uint8_rgb",
    "write_json_atomic",
    "write_text_atomic",
]
