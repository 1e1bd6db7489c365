"""Hostile input around run folders, tf.distribute, settings, download.py and benchmark.py arguments.

Each test feeds one input that used to end in a traceback, a hang or a silent wrong result,
and checks for one line on stderr that names the file or setting, and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import photo_pairs

import util

REPO = Path(__file__).resolve().parents[1]
TINY = ["--train-patches", "16", "--backprops", "32", "--batch", "8", "--epochs", "2", "--val-patches", "8"]
TINY += ["--filters", "8", "--blocks", "1", "--precision", "float32"]


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory):
    """24 train / 8 test photo patches in download.py's layout (sr4 only)."""
    return photo_pairs(tmp_path_factory.mktemp("datasets") / "tiny", train=24, test=8, factors=(4,), noise64=False)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---- Run folders: one training at a time -------------------------------------


def run_folder_of(argv) -> tuple[Path, object]:
    """The run folder and settings that edsr_lite.py would train with for ``argv``."""
    import edsr_lite  # noqa: F401  (registers the script)
    from util import roles
    from util.training import run_dir, with_available_patches

    settings, _ = roles.MODEL_SCRIPTS["edsr_lite"].settings(argv)
    settings = with_available_patches(settings)
    return run_dir("edsr_lite", settings), settings


def write_lock(folder: Path, pid: int, settings) -> Path:
    """What a training of ``settings`` by process ``pid`` leaves in its run folder while it runs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings.to_json()))
    lock = folder / "run.lock"
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00"}))
    return lock


def test_a_second_training_into_a_live_run_folder_is_refused_in_one_line(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    argv = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    folder, settings = run_folder_of(argv)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = write_lock(folder, live.pid, settings)
        code = util.run_cli(edsr_lite.main, argv)
        line = one_error_line(capsys)
    finally:
        live.kill()
        live.wait()
    assert code == 1 and str(lock.parent) in line and f"PID {live.pid}" in line and "another training" in line
    assert sorted(p.name for p in folder.iterdir()) == ["run.lock", "settings.json"]  # nothing of the first touched


def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_note(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    argv = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    folder, settings = run_folder_of(argv)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(folder, gone.pid, settings)
    assert util.run_cli(edsr_lite.main, argv) == 0
    out = capsys.readouterr().out
    assert f"PID {gone.pid}" in out and "no longer runs" in out
    assert (folder / "results.json").exists() and not (folder / "run.lock").exists()


def test_the_run_lock_goes_on_an_exception_and_an_unused_folder_with_it(tiny_pairs, tmp_path):
    from util.training import run_lock

    _, settings = run_folder_of(["--dataset", str(tiny_pairs), *TINY])
    folder = tmp_path / "run"
    with pytest.raises(RuntimeError), run_lock(folder, settings):
        assert json.loads((folder / "run.lock").read_text())["pid"] == os.getpid()
        raise RuntimeError("training failed")
    assert not folder.exists()
    with run_lock(folder, settings):
        (folder / "training.csv").write_text("epoch\n")
        with pytest.raises(util.UserError, match="another training"), run_lock(folder, settings):
            pass  # the same folder twice, even from one process
    assert sorted(p.name for p in folder.iterdir()) == ["settings.json", "training.csv"]
