"""What the scripts of the suite share, laid out by concern (a folder each, the README's verbs).

- ``util.io``: files in and out (atomic writes and one-line errors, photos, rasters and grids,
  the one photo/raster rule per file, the provenance an output carries);
- ``util.data``: the pairs handles (one per kind of data), tf.data pipelines, degradations,
  MATLAB bicubic, task names;
- ``util.models``: layers and the model card ``SuiteInfo``, loading and averaging, export;
- ``util.training``: a script's settings and roles, one run and its folder, tf.distribute,
  studies, training speed;
- ``util.evaluation``: protocols, metrics, raster scores, classical peers, test-pair scores,
  tables and figures;
- ``util.inference``: tiles and self-ensemble, enhancing photo and raster files;
- ``util.benchmarks``: benchmark.py's subcommands, one module each, and what they share.

TensorFlow is imported only by the modules that need it, so the data step never loads it.
The light helpers are re-exported here (``util.psnr``, ``util.load_image_rgb``...).
Nothing runs at import time. ``__version__`` is the suite's version (set once, util.io.provenance.VERSION;
``util.io.provenance.suite_version`` adds the git commit where there is one).
"""

from util.data.resize import bicubic_downscale, bicubic_upscale, imresize, modcrop
from util.evaluation.metrics import psnr, rgb_to_y, ssim
from util.io.files import UserError, atomic_path, run_cli, save_npy_atomic, write_json_atomic, write_text_atomic
from util.io.images import IMAGE_SUFFIXES, ImageError, list_images, load_image_rgb, round_to_dtype, to_uint8_rgb
from util.io.provenance import VERSION as __version__

__all__ = [
    "__version__",
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
