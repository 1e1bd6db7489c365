"""Writing a data set folder of .npy pairs: the one writer of photo pairs (pairs.py) and raster pairs (raster_pairs.py).

A run writes ``<out>/<name>/`` in this order, so that an interrupted run is never
mistaken for an up-to-date one and a failed run leaves the old files intact:

1. ``prepare``: the folder is made and probed, temporaries of an interrupted run are
   removed, the free space is checked and the old ``manifest.json`` is removed;
2. ``npy_files``: each .npy is a memory map under a temporary name (``.<stem>.*.part.npy``)
   whose disk blocks are reserved at once, filled by the caller, and renamed onto its
   name when the block completes (removed when it fails);
3. ``write_manifest``: the new ``manifest.json``, last.

``disk_errors`` turns a full disk or an unwritable folder met on the way into one
UserError line naming the folder; ``is_up_to_date`` is the check that skips the work.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import util

SPLITS = ("train", "test")
MANIFEST = "manifest.json"
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


def file_name(split: str, key: str) -> str:
    return f"{split}_{key}.npy"


@dataclass(frozen=True)
class NpyFile:
    """One .npy file of a data set: its name in the folder, the shape of the whole array and its dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def npy_layout(sizes: dict[str, int], keys: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, dict[str, NpyFile]]:
    """split -> key -> NpyFile, for ``sizes[split]`` patches of each file key (key -> (shape of one patch, dtype))."""
    return {
        split: {
            key: NpyFile(file_name(split, key), (sizes[split], *shape), dtype) for key, (shape, dtype) in keys.items()
        }
        for split in SPLITS
    }


def npy_bytes(layout: dict[str, dict[str, NpyFile]]) -> int:
    """Bytes of the arrays of every file of ``layout`` (headers aside)."""
    return sum(int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize for files in layout.values() for f in files.values())


# ---- 1. Before anything is written -------------------------------------------------


def unwritable(folder: Path, what: str, err: OSError) -> util.UserError:
    """The one-line error for ``folder`` (``what``: the flag or setting that names it) that cannot be written."""
    culprit = Path(err.filename) if err.filename else folder
    in_the_way = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        reason = f"{in_the_way} is a file, not a folder"
    else:
        reason = f"{err.strerror.lower() if err.strerror else err} ({culprit})"
    return util.UserError(f"{what} {folder}: cannot write there: {reason}; give --out a folder you can write")


def check_writable(folder: Path, what: str) -> None:
    """Make ``folder`` and write a probe file in it; a UserError before any work when that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:  # whatever the reason, nothing can be stored there
        raise unwritable(folder, what, err) from None


def remove_stale_temporaries(dest: Path) -> None:
    """Remove the temporary .npy files (``.<name>.*.part.npy``) that an interrupted run left in ``dest``."""
    stale = sorted(dest.glob(".*.part.npy"))
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        print(f"note: removed {len(stale)} temporary file(s) of an interrupted run from {dest}", file=sys.stderr)


def check_free_space(dest: Path, needed: int) -> None:
    """A UserError before anything is written when the disk of ``dest`` cannot hold ``needed`` bytes of pairs."""
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise util.UserError(
            f"{dest}: the pairs need {needed / 2**30:.2f} GiB and the disk has {free / 2**30:.2f} GiB free; free "
            "space, lower --train/--test or give --out on another disk"
        )


def prepare(dest: Path, needed: int, quiet_stale: tuple[str, ...] = ()) -> None:
    """The steps before any pair is written; ``quiet_stale``: glob patterns of more temporaries, removed silently."""
    check_writable(dest, "dataset folder")
    remove_stale_temporaries(dest)
    for pattern in quiet_stale:
        for stale in dest.glob(pattern):
            stale.unlink(missing_ok=True)
    check_free_space(dest, needed)
    (dest / MANIFEST).unlink(missing_ok=True)


# ---- 2. The .npy files ------------------------------------------------------------------


def allocate(path: Path) -> None:
    """Reserve the disk blocks of a memory-mapped file, so that a full disk is an OSError here, not a SIGBUS later."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)


@contextlib.contextmanager
def npy_files(dest: Path, files: dict[str, NpyFile]):
    """Yield key -> writable memory map of each of ``files``, under temporary names in ``dest``.

    When the block completes the maps are flushed and closed and each file is renamed
    onto its name; when it fails the temporary files are removed.
    """
    with contextlib.ExitStack() as stack:
        arrays = {}
        for key, f in files.items():
            tmp = stack.enter_context(util.atomic_path(dest / f.name))
            arrays[key] = np.lib.format.open_memmap(tmp, mode="w+", dtype=f.dtype, shape=f.shape)
            allocate(tmp)
        yield arrays
        for array in arrays.values():
            array.flush()
        arrays.clear()  # close the memory maps before the files are renamed


@contextlib.contextmanager
def disk_errors(dest: Path):
    """Turn an OSError of a full disk or an unwritable ``dest`` into a one-line UserError naming ``dest``."""
    try:
        yield
    except OSError as err:
        if err.errno in UNWRITABLE:
            raise unwritable(dest, "dataset folder", err) from None
        if err.errno != errno.ENOSPC:
            raise
        raise util.UserError(
            f"{dest}: the disk is full ({err.strerror}); free space or lower --train/--test, then run again"
        ) from None


# ---- 3. The manifest ----------------------------------------------------------------------


def compact_json(obj) -> str:
    """Indented JSON with each innermost list of numbers on one line (10000 patch rows stay readable)."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[[-\d\s,.]*\]", lambda m: json.dumps(json.loads(m.group())), text) + "\n"


def write_manifest(dest: Path, manifest: dict) -> None:
    util.write_text_atomic(dest / MANIFEST, compact_json(manifest))


def listed_files(dest: Path) -> set[str]:
    """The files the manifest in ``dest`` lists (an earlier run's, to remove those a new run does not write)."""
    try:
        return {entry["file"] for entry in json.loads((dest / MANIFEST).read_text())["files"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def is_up_to_date(dest: Path, settings: dict, expected: Callable[[dict], dict], kind: str | None = None) -> bool:
    """True when ``dest/manifest.json`` has these settings (and ``kind``) and every expected file is there.

    ``expected(manifest)``: file name -> (shape as a list, dtype name) of a .npy file, or
    None for another file, which need only exist.
    """
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
        if kind is not None and manifest.get("kind") != kind:
            return False
        if manifest.get("settings") != json.loads(json.dumps(settings)):
            return False
        for name, spec in expected(manifest).items():
            if spec is None:
                if not (dest / name).is_file():
                    return False
                continue
            array = np.load(dest / name, mmap_mode="r")
            if list(array.shape) != spec[0] or str(array.dtype) != spec[1]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True
