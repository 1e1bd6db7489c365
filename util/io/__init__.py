"""Files in and out: atomic writes and one-line errors (``files``), photos (``images``), rasters and
grids (``rasters``), and the one photo/raster rule per file (``kinds``). No TensorFlow here."""
