"""Errors the user can fix, command-line entry points and atomic file writes."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# ---- 1. Errors and command-line entry points --------------------------------


class UserError(Exception):
    """Bad input the user can fix; the message names the file or setting and the fix."""


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn a UserError into one line on stderr and exit code 1."""
    try:
        main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (oneDNN, absl) kept off stderr.

    They are printed before TF_CPP_MIN_LOG_LEVEL is read, so only hiding file
    descriptor 2 during the import keeps a script's stderr to what it has to say.
    An import error is raised as usual, with stderr restored.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_hidden():
        import tensorflow
    return tensorflow


@contextlib.contextmanager
def stderr_hidden():
    """File descriptor 2 goes to /dev/null inside (what C++ libraries print there); restored on any exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ---- 2. Files written atomically ---------------------------------------------


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    A crash or an exception leaves ``path`` as it was (absent or the old file) and
    removes the temporary file, so no half-written file ever has the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends with the real suffix, for writers that check it (Keras).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file owner-only (0600); give it the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npy_atomic(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def write_json_atomic(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
