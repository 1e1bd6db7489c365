"""Sources of HR images for ``download.py``, one module each, and the shared steps.

- ``builtin``, ``div2k``, ``mars``, ``unsplash``, ``folder``: each only finds or
  fetches HR images and splits them by image (``find_images(out, url)`` ->
  ``pairs.SourceImages``);
- ``fetch``: resumable HTTP downloads and safe zip extraction;
- ``pairs``: 128x128 crops, degradations, the ``.npy`` files and the manifest.

A new source is a module with ``NAME`` and ``find_images`` plus one line in SOURCES.
"""

from download_module import builtin, div2k, mars, unsplash

SOURCES = {module.NAME: module for module in (builtin, div2k, mars, unsplash)}
