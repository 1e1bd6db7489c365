"""Hostile input around run folders, tf.distribute, settings, download.py and benchmark.py arguments.

Each test feeds one input that used to end in a traceback, a hang or a silent wrong result,
and checks for one line on stderr that names the file or setting, and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import signal
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
    from util.data.pairs import open_pairs
    from util.training import roles
    from util.training.folders import run_dir

    settings, _ = roles.MODEL_SCRIPTS["edsr_lite"].settings(argv)
    settings = open_pairs(settings.dataset).with_available(settings)
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
    from util.training.folders import run_lock

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


# ---- tf.distribute: a worker that never joins ----------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lonely_worker(tiny_pairs, tmp_path, seconds: int) -> tuple[subprocess.Popen, Path]:
    """Worker 0 of a two-worker cluster whose worker 1 never starts, waiting ``seconds`` for it."""
    config = {
        "cluster": {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]},
        "task": {"type": "worker", "index": 0},
    }
    env = {**os.environ, "TF_CONFIG": json.dumps(config), "SUITE_CONNECT_SECONDS": str(seconds)}
    log = tmp_path / "worker0.log"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "edsr_lite.py"), "--dataset", str(tiny_pairs), "--out", str(tmp_path / "out")]
        + TINY,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # A foreground job takes Ctrl-C; a test run in the background (`make test &`) ignores SIGINT,
        # and its children inherit that, so the worker gets the default back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return proc, log


def watchdogs(pid: int) -> list[int]:
    """The child processes of ``pid`` that run util/training/distribute.py's watchdog (not any other child,
    such as a short-lived helper that TensorFlow starts on import)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) != pid:
                continue
            if b"select.select" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            pass
    return found


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> int | None:

    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def test_ctrl_c_while_waiting_for_a_worker_stops_the_trainer(tiny_pairs, tmp_path):
    import time

    proc, log = start_lonely_worker(tiny_pairs, tmp_path, seconds=300)
    deadline = time.time() + 90
    while not watchdogs(proc.pid) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # until the watchdog runs: TensorFlow now waits for worker 1
    assert watchdogs(proc.pid), log.read_text()[-2000:]
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground process group
    code = wait_or_kill(proc, timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert code == 1, (code, lines[-5:])
    assert lines[-1].startswith("interrupted while waiting for the workers"), lines[-5:]
    assert not (tmp_path / "out").exists()


def test_a_worker_that_never_joins_exits_1_with_one_line(tiny_pairs, tmp_path):
    proc, log = start_lonely_worker(tiny_pairs, tmp_path, seconds=5)
    code = wait_or_kill(proc, timeout=120)
    errors = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
    assert code == 1 and len(errors) == 1 and "TF_CONFIG: not every worker" in errors[0], (code, errors)


# ---- download.py: where the pairs go ----------------------------------------------


def run_download(argv, capsys) -> str:
    import download

    assert util.run_cli(download.main, argv) == 1
    return one_error_line(capsys)


@pytest.mark.parametrize("source", [[], ["dem"], ["benchmarks"]])
def test_download_out_that_is_a_file_or_below_one_is_one_line(tmp_path, capsys, source):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for out in (afile, afile / "sub"):
        line = run_download([*source, "--out", str(out)], capsys)
        assert f"--out {out}" in line and f"{afile} is a file" in line and "give --out a folder" in line
    assert afile.read_text() == "not a folder"


@pytest.mark.parametrize("source", [[], ["dem", "--patch", "32"]])
def test_a_dataset_folder_that_is_a_file_is_one_line(tmp_path, capsys, source):
    name = source[0] if source else "builtin"
    (tmp_path / name).write_text("in the way")
    line = run_download([*source, "--out", str(tmp_path), "--train", "4", "--test", "2"], capsys)
    assert f"dataset folder {tmp_path / name}" in line and "is a file" in line
    assert (tmp_path / name).read_text() == "in the way"


@pytest.mark.parametrize("source", [[], ["dem", "--patch", "32"]])
def test_a_dataset_folder_refusing_writes_is_one_line(tmp_path, capsys, monkeypatch, source):
    """As root no chmod stops a write, so the file system's refusal is simulated where the pairs are written."""
    import errno

    import numpy as np

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(np.lib.format, "open_memmap", refuse)
    name = source[0] if source else "builtin"
    line = run_download([*source, "--out", str(tmp_path), "--train", "4", "--test", "2"], capsys)
    assert f"dataset folder {tmp_path / name}" in line and "permission denied" in line
    assert not (tmp_path / name / "manifest.json").exists() and not list((tmp_path / name).glob("*.npy"))


# ---- Arguments: download.py, benchmark.py, settings ----------------------------------


def test_copernicus_bbox_with_a_negative_west_is_taken_as_written():
    import download

    args = download.parse_args(["copernicus", "--bbox", "-106,39,-104,41", "--max-tiles", "4"])
    assert args.bbox == "-106,39,-104,41" and args.max_tiles == 4
    assert download.parse_args(["copernicus", "--bbox=-106,39,-104,41"]).bbox == "-106,39,-104,41"


@pytest.mark.parametrize(
    "argv, named",
    [
        (["dem", "--patch", "0"], "--patch 0"),
        (["copernicus", "--bbox", "-106,39,-104,41", "--max-tiles", "0"], "--max-tiles 0"),
        (["builtin", "--seed", "-1"], "--seed -1"),
        (["dem", "--seed", "-1"], "--seed -1"),
    ],
)
def test_zero_is_not_a_silent_default_in_download(tmp_path, capsys, argv, named):
    line = run_download([*argv, "--out", str(tmp_path)], capsys)
    assert named in line
    assert not (tmp_path / "raw").exists() and not (tmp_path / "downloads").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["training", "--raster"],
        ["training", "scaling"],
        ["raster", "--task", "noise25"],
        ["raster", "--rounds", "3"],
        ["models", "--noisy", "float"],
        ["scaling", "--seconds", "5"],
        ["data-sizes", "10", "--task", "sr4"],
        ["--training"],
        [],
    ],
)
def test_two_benchmark_modes_are_refused(argv, capsys):
    import benchmark

    with pytest.raises(SystemExit) as exit_:
        benchmark.parse_args(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and ": error: " in err[0], err
    assert "unrecognized arguments" in err[0] or "required: subcommand" in err[0], err


@pytest.mark.parametrize("subcommand", ["training", "scaling"])
def test_benchmark_batch_0_is_an_error_not_each_scripts_default(subcommand, capsys):
    import benchmark

    assert util.run_cli(benchmark.main, [subcommand, "--batch", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --batch 0"), err


def test_noise0_says_the_range_that_is_allowed():
    from util.data.tasks import parse_task

    with pytest.raises(util.UserError, match="sigma 0 adds no noise") as err:
        parse_task("noise0")
    assert "outside 0-255" not in str(err.value) and "above 0 up to 255" in str(err.value)


# ---- More hostile settings ----------------------------------------------------------


def test_training_out_that_is_a_file_is_one_line(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for out in (afile, afile / "sub"):
        assert util.run_cli(edsr_lite.main, ["--dataset", str(tiny_pairs), "--out", str(out), *TINY]) == 1
        line = one_error_line(capsys)
        assert f"OUT={out}" in line and f"{afile} is a file" in line and "give --out a folder" in line
    assert afile.read_text() == "not a folder"


def test_a_run_folder_with_a_corrupt_settings_json_is_left_alone(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    argv = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    folder, _ = run_folder_of(argv)
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text('{"task": "sr4", ')  # cut short
    assert util.run_cli(edsr_lite.main, argv) == 0
    assert (folder / "settings.json").read_text() == '{"task": "sr4", '
    assert (folder.with_name(f"{folder.name}-2") / "results.json").exists()


def test_a_corrupt_training_log_of_an_interrupted_run_is_one_line(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    argv = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    folder, settings = run_folder_of(argv)
    (folder / "backup").mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps(settings.to_json()))
    (folder / "best.weights.h5").write_bytes(b"")
    (folder / "training.csv").write_text("epoch,loss,val_loss\n0,0.1,zzz\n")
    assert util.run_cli(edsr_lite.main, argv) == 1
    line = one_error_line(capsys)
    assert "training.csv" in line and "not a number" in line and not (folder / "run.lock").exists()


def test_role_test_beside_an_unreadable_results_json_scores_anyway(tiny_pairs, tmp_path, capsys):
    from tiny_models import save, upsampled_model

    import edsr_lite

    model = save(upsampled_model(), tmp_path / "run")
    (tmp_path / "run" / "results.json").write_text("{bad")
    argv = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--role", "test", "--model", str(model)]
    assert util.run_cli(edsr_lite.main, argv) == 0
    assert json.loads((tmp_path / "run" / "test_results.json").read_text())["n_test"] == 8


@pytest.mark.parametrize("damaged", ["latest.weights.h5", "training_metadata.json"])
def test_a_damaged_backup_of_an_interrupted_run_is_one_line(tiny_pairs, tmp_path, capsys, damaged):
    import edsr_lite

    argv = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    folder, settings = run_folder_of(argv)
    (folder / "backup").mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps(settings.to_json()))
    (folder / "backup" / damaged).write_text('{"epoch": 1')  # cut short
    assert util.run_cli(edsr_lite.main, argv) == 1
    line = one_error_line(capsys)
    assert str(folder / "backup") in line and "cannot be read" in line and "delete" in line
