"""Sources of HR images for ``download.py``, one module each, and the shared steps.

- ``builtin``, ``div2k``, ``mars``, ``unsplash``, ``folder``: each only finds or
  fetches HR images and splits them by image (``find_images(out, url)`` ->
  ``pairs.SourceImages``);
- ``benchmarks``: not a patch source; the HR images of Set5, Set14, BSD100 and
  Urban100 for evaluation (``fetch_sets(out, url)`` -> ``<out>/benchmark/<set>/``);
- ``fetch``: resumable HTTP downloads with checksums, safe zip and tar extraction;
- ``pairs``: 128x128 crops, degradations, the ``.npy`` files and the manifest.

A new source is a module with ``NAME`` and ``find_images`` plus one line in SOURCES.
"""

from download_module import benchmarks, builtin, div2k, mars, unsplash

__all__ = ["SOURCES", "benchmarks", "builtin", "div2k", "mars", "unsplash"]

SOURCES = {module.NAME: module for module in (builtin, div2k, mars, unsplash)}
