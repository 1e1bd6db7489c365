"""Inference: tiles and self-ensemble over any image size (``tiles``), enhancing photo files
(``photos``) and raster files in strips (``raster_enhance``)."""
