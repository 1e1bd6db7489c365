"""Files in and out: atomic writes and one-line errors (``files``), photos (``images``), rasters and
grids (``rasters``), grids at several time steps (``stacks``), the one photo/raster rule per file
(``kinds``), and the record of the model that made an output (``provenance``). No TensorFlow here."""
