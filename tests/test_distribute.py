"""DISTRIBUTE: MultiWorkerMirroredStrategy over two local worker processes, MirroredStrategy over two CPUs, bad input.

The two-worker runs use real processes on 127.0.0.1, each with the TF_CONFIG that names
both, as on two machines. They are the slowest tests here (about a minute each).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import photo_pairs

import util
from util.training import distribute

REPO = Path(__file__).resolve().parents[1]
TINY = ["--train-patches", "48", "--val-patches", "16", "--filters", "8", "--precision", "float32"]
RUN = "edsr_lite-sr4-48-tiny"
NO_CLUSTER = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}  # TensorFlow cannot parse an empty one


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """64 train / 8 test photo patches in download.py's layout (sr4 only)."""
    return photo_pairs(tmp_path_factory.mktemp("datasets") / "tiny", train=64, test=8, factors=(4,), noise64=False)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_env(ports: list[int], index: int, scratch: Path, **extra) -> dict:
    config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    return {**os.environ, "TF_CONFIG": json.dumps(config), "TMPDIR": str(scratch), **extra}


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "edsr_lite.py"), *map(str, args)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finish(procs: list[subprocess.Popen], timeout=300) -> list[int]:
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            codes.append(proc.wait())
    return codes


def error_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("error: ")]


def test_two_workers_match_one_process_only_the_chief_writes_and_a_killed_worker_resumes(tiny, tmp_path):
    args = ["--dataset", tiny, *TINY, "--epochs", "6", "--backprops", "1920"]
    single = subprocess.run(
        [sys.executable, str(REPO / "edsr_lite.py"), *map(str, args), "--out", tmp_path / "one"],
        capture_output=True,
        text=True,
        timeout=300,
        env=NO_CLUSTER,
    )
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-2000:]
    one = json.loads((tmp_path / "one" / RUN / "results.json").read_text())
    assert (one["strategy"], one["replicas"]) == ("none", 1)

    out, scratch = tmp_path / "two", tmp_path / "scratch"
    scratch.mkdir()
    run = out / RUN
    ports = free_ports(2)
    env = [cluster_env(ports, i, scratch, SUITE_COLLECTIVE_SECONDS="120") for i in (0, 1)]
    logs = [tmp_path / f"w{i}.log" for i in (0, 1)]
    procs = [start([*args, "--out", out], env[i], logs[i]) for i in (0, 1)]
    metadata = run / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (metadata.exists() and json.loads(metadata.read_text())["epoch"] >= 2):
        assert all(p.poll() is None for p in procs), logs[0].read_text()[-3000:]
        time.sleep(0.5)
    assert json.loads(metadata.read_text())["epoch"] >= 2
    os.killpg(procs[1].pid, signal.SIGKILL)  # worker 1 dies mid-run
    codes = finish(procs, timeout=200)
    assert codes[0] == 1 and codes[1] == -signal.SIGKILL
    lost = error_lines(logs[0])
    assert len(lost) == 1 and "another worker of the cluster was lost" in lost[0] and "resumes" in lost[0], lost
    done_epochs = len((run / "training.csv").read_text().splitlines()) - 1
    assert done_epochs >= 2 and not (run / "model.keras").exists()

    ports = free_ports(2)
    env = [cluster_env(ports, i, scratch, SUITE_COLLECTIVE_SECONDS="120") for i in (0, 1)]
    procs = [start([*args, "--out", out], env[i], logs[i]) for i in (0, 1)]
    assert finish(procs) == [0, 0], logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]
    rows = (run / "training.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(6)), rows  # resumed: no epoch twice, none missing
    two = json.loads((run / "results.json").read_text())
    assert (two["strategy"], two["replicas"], two["workers"], two["cluster_task"]) == ("multiworker", 2, 2, "worker/0")
    assert two["backprops"] == one["backprops"] == 1920
    # The same global batch and backprops: the same training, up to the order of the samples.
    final = [
        float(r.split(",")[2])
        for r in (rows[-1], (tmp_path / "one" / RUN / "training.csv").read_text().splitlines()[-1])
    ]
    assert abs(final[0] - final[1]) < 0.1 * final[1], final
    assert abs(two["model_scores"]["psnr"] - one["model_scores"]["psnr"]) < 0.3
    assert sorted(p.name for p in out.iterdir()) == [RUN]  # only the chief wrote, and only its run folder
    assert not (run / "backup").exists()
    # Worker 1 trains in a temporary folder it deletes at the end; only the killed attempt's one is left.
    assert len([p for p in scratch.iterdir() if p.name.startswith(RUN)]) == 1
    assert "the chief writes" in logs[1].read_text()


def test_mirrored_over_two_cpus_trains_with_two_replicas(tiny, tmp_path):
    code = (
        "import sys, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import edsr_lite, util\n"
        "sys.exit(util.run_cli(edsr_lite.main, sys.argv[1:]))\n"
    )
    args = ["--dataset", tiny, *TINY, "--epochs", "2", "--backprops", "320", "--distribute", "mirrored"]
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args), "--out", tmp_path],
        capture_output=True,
        text=True,
        timeout=300,
        env=NO_CLUSTER,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((tmp_path / RUN / "results.json").read_text())
    assert (results["strategy"], results["replicas"], len(results["devices"])) == ("mirrored", 2, 2)
    assert results["model_scores"]["psnr"] > 20


def test_a_worker_that_never_joins_is_a_timeout_message_not_a_hang(tiny, tmp_path):
    ports = free_ports(2)
    env = cluster_env(ports, 0, tmp_path, SUITE_CONNECT_SECONDS="8")
    log = tmp_path / "w0.log"
    started = time.time()
    [code] = finish([start(["--dataset", tiny, *TINY, "--out", tmp_path / "out"], env, log)], timeout=120)
    assert code == 1 and time.time() - started < 90  # the watchdog's SIGHUP: a C handler's _exit(1)
    lines = error_lines(log)
    assert len(lines) == 1 and "TF_CONFIG" in lines[0] and f"127.0.0.1:{ports[1]}" in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("tf_config", "argv", "named"),
    [
        ("{not json", [], "TF_CONFIG is not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', [], 'TF_CONFIG has no "cluster"'),
        ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', [], "is not"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', [], "index 2"),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', [], '"chief" and/or "worker"'),
        ("", ["--distribute", "multiworker"], "DISTRIBUTE=multiworker needs TF_CONFIG"),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}',
            ["--batch", "3"],
            "BATCH=3",
        ),
        ("", ["--distribute", "sideways"], "DISTRIBUTE='sideways' is unknown"),
        ("", ["--precision", "mixed_float16"], "PRECISION=mixed_float16 needs a GPU"),
    ],
)
def test_bad_cluster_settings_are_one_line_errors_before_anything_is_written(
    tiny, tmp_path, monkeypatch, capsys, tf_config, argv, named
):
    import edsr_lite

    if tf_config:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    else:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distribute, "_PLACEMENT", None)
    code = util.run_cli(edsr_lite.main, ["--dataset", str(tiny), *TINY, "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and named in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_chief_is_worker_0_or_the_chief_task():
    worker = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    assert distribute.is_chief(None) and distribute.is_chief(worker)
    assert not distribute.is_chief({**worker, "task": {"type": "worker", "index": 1}})
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    assert not distribute.is_chief(with_chief)
    assert distribute.is_chief({**with_chief, "task": {"type": "chief", "index": 0}})


def fake_gpus(monkeypatch, capabilities):
    """Make TensorFlow report GPUs of these compute capabilities (the runtime still computes on the CPU)."""
    import tensorflow as tf

    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(len(capabilities))]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else real(kind))
    details = {g.name: {"compute_capability": c} for g, c in zip(gpus, capabilities, strict=True)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details[device.name])


@pytest.mark.parametrize(
    "capabilities, expected",
    [
        ([(9, 0)], "mixed_bfloat16"),  # Hopper
        ([(8, 0), (8, 6)], "mixed_bfloat16"),  # Ampere
        ([(8, 0), (7, 5)], "mixed_float16"),  # the slowest GPU decides
        ([(7, 0)], "mixed_float16"),  # Volta
        ([(6, 1)], "float32"),  # Pascal: no fast half precision
    ],
)
def test_precision_auto_picks_half_precision_by_the_gpus_compute_capability(monkeypatch, capabilities, expected):
    import keras

    from util.training.run import configure_precision

    fake_gpus(monkeypatch, capabilities)
    try:
        assert configure_precision("auto") == expected
        assert keras.mixed_precision.global_policy().name == expected
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_float16_training_scales_the_loss_and_saves_a_float32_model(tiny, tmp_path, monkeypatch):
    """What a Volta/Turing GPU gets from PRECISION=auto, run here on the CPU: the whole script, end to end."""
    import keras

    import edsr_lite

    fake_gpus(monkeypatch, [(7, 5)])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distribute, "_PLACEMENT", None)
    args = ["--dataset", str(tiny), *TINY[:-2], "--epochs", "1", "--backprops", "160", "--out", str(tmp_path)]
    optimizers = []
    real_compile = keras.Model.compile

    def compile_and_note(self, **kwargs):
        real_compile(self, **kwargs)
        optimizers.append(self.optimizer)

    monkeypatch.setattr(keras.Model, "compile", compile_and_note)
    try:
        assert util.run_cli(edsr_lite.main, args) == 0
    finally:
        keras.mixed_precision.set_global_policy("float32")
    results = json.loads((tmp_path / RUN / "results.json").read_text())
    assert results["precision"] == "mixed_float16" and results["strategy"] == "none"
    assert optimizers and all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in optimizers)
    model = keras.models.load_model(tmp_path / RUN / "model.keras", compile=False)
    assert {w.dtype for w in model.weights} == {"float32"} and model.compute_dtype == "float32"
    assert results["model_scores"]["psnr"] > 20


@pytest.mark.parametrize("gpus, expected", [(0, "none"), (1, "none"), (2, "mirrored")])
def test_distribute_auto_mirrors_over_several_local_gpus(monkeypatch, gpus, expected):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    fake_gpus(monkeypatch, [(8, 0)] * gpus)
    assert distribute.choose("auto", 8) == expected
