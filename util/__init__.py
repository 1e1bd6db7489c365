"""What the scripts of the suite share, one module a concern.

- ``util.files``: UserError, ``run_cli`` and atomic writes;
- ``util.images``: reading any image file as uint8 HWC RGB;
- ``util.resize``: MATLAB-compatible bicubic resizing;
- ``util.metrics``: PSNR / SSIM with explicit protocols;
- ``util.data``, ``util.models``, ``util.train``, ``util.report``, ``util.inference``:
  the TensorFlow parts (imported on their own, so that the data step never loads
  TensorFlow).

The light helpers are re-exported here (``util.psnr``, ``util.load_image_rgb``...).
Nothing runs at import time.
"""

from util.files import UserError, atomic_path, run_cli, save_npy_atomic, write_json_atomic, write_text_atomic
from util.images import IMAGE_SUFFIXES, ImageError, list_images, load_image_rgb, to_uint8_rgb
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
    "rgb_to_y",
    "run_cli",
    "save_npy_atomic",
    "ssim",
    "to_uint8_rgb",
    "write_json_atomic",
    "write_text_atomic",
]
