"""Sources of HR images and rasters for ``download.py``, one module each, and the shared steps.

- ``builtin``, ``div2k``, ``mars``, ``unsplash``, ``folder``: each only finds or
  fetches HR images and splits them by image (``find_images(out, url)`` ->
  ``pairs.SourceImages``);
- ``dem``, ``copernicus`` (RASTER_SOURCES): rasters in data units (``find_rasters`` ->
  ``raster_pairs.SourceRasters``); ``raster_pairs`` also finds the rasters of a folder;
- ``climate`` (STACK_SOURCES): stacks, grids at several time steps (``find_stacks`` ->
  ``raster_pairs.SourceRasters``); ``stack_pairs`` also tells the stacks of a folder apart;
- ``benchmarks``: not a patch source; the HR images of Set5, Set14, BSD100 and
  Urban100 for evaluation (``fetch_sets(out, url)`` -> ``<out>/benchmark/<set>/``);
- ``fetch``: resumable HTTP downloads with checksums, safe zip and tar extraction;
- ``pairs``: 128x128 crops, degradations, the ``.npy`` files and the manifest;
- ``raster_pairs``: the same for rasters: float32 patches, masks, cell sizes, a spatial split;
- ``stack_pairs``: the raster pairs of stacks, split in time.

A new source is a module with ``NAME`` and ``find_images`` (or ``find_rasters``,
``find_stacks``) plus one line in SOURCES (or RASTER_SOURCES, STACK_SOURCES); SOURCE_KINDS
says which kind of data set each source writes.
"""

from download_module import benchmarks, builtin, climate, copernicus, dem, div2k, mars, unsplash
from util.io import kinds

__all__ = [
    "RASTER_SOURCES",
    "SOURCES",
    "SOURCE_KINDS",
    "STACK_SOURCES",
    "benchmarks",
    "builtin",
    "climate",
    "copernicus",
    "dem",
    "div2k",
    "mars",
    "unsplash",
]

SOURCES = {module.NAME: module for module in (builtin, div2k, mars, unsplash)}
RASTER_SOURCES = {module.NAME: module for module in (dem, copernicus)}
STACK_SOURCES = {module.NAME: module for module in (climate,)}
SOURCE_KINDS = {
    **dict.fromkeys(SOURCES, kinds.PHOTO),
    **dict.fromkeys(RASTER_SOURCES, kinds.RASTER),
    **dict.fromkeys(STACK_SOURCES, kinds.STACK),
}
