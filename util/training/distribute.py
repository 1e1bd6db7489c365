"""Where a training runs: devices, the tf.distribute strategy (DISTRIBUTE) and which process writes.

``DISTRIBUTE``:
  * ``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names more than one worker,
    else MirroredStrategy over all local GPUs when there are several, else the default
    strategy (one device);
  * ``none``: the default strategy, whatever the machine has;
  * ``mirrored``: MirroredStrategy over the local GPUs (over the logical CPU devices on a
    machine without GPUs, as the tests do);
  * ``multiworker``: MultiWorkerMirroredStrategy over the workers of ``TF_CONFIG``.

``BATCH`` stays the global batch (split evenly over the replicas by tf.distribute), so the
learning rate and BACKPROPS mean the same with any number of replicas. Only the chief
(``chief``, else worker 0) writes the run folder; the other workers train in a
temporary folder that they delete, and resume from the chief's backup.

Two Keras 3 defects stop ``model.fit`` under MultiWorkerMirroredStrategy (keras-team/keras
issue 20585, open): the first batch is MEAN-reduced across workers only to read its shapes,
and every scalar of the step's logs is reduced along an axis 0 it lacks. ``patch_keras_multiworker``
replaces those two reductions (a local replica's batch; a scalar MEAN over the workers)
and nothing else, so Keras' fit, callbacks and checkpoints stay in use.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass

from util.io.files import UserError

DISTRIBUTES = ("auto", "none", "mirrored", "multiworker")
CONNECT_SECONDS = float(os.environ.get("SUITE_CONNECT_SECONDS", "300"))  # waiting for the other workers to join
COLLECTIVE_SECONDS = float(os.environ.get("SUITE_COLLECTIVE_SECONDS", "600"))  # one all-reduce before a worker is lost


@dataclass(frozen=True)
class Placement:
    """The strategy of a run and what results.json records about it."""

    strategy: object
    name: str  # default | mirrored | multiworker
    replicas: int
    workers: int
    member: str  # this process in the cluster: worker/0, chief/0 ... ('' outside one; TF_CONFIG's "task")
    chief: bool
    devices: tuple[str, ...]

    def describe(self) -> dict:
        return {
            "strategy": self.name,
            "replicas": self.replicas,
            "workers": self.workers,
            "cluster_task": self.member,
            "devices": list(self.devices),
        }


def tf_config() -> dict | None:
    """``TF_CONFIG`` parsed and checked (cluster of host:port lists, this process in it); None when unset."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"TF_CONFIG is not JSON ({err.msg} at character {err.pos}); see docs/scale-out.md") from None
    cluster, member = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster:
        raise UserError('TF_CONFIG has no "cluster" ({"worker": ["host:port", ...]}); see docs/scale-out.md')
    for host_type, hosts in cluster.items():
        if host_type not in ("chief", "worker") or not isinstance(hosts, list) or not hosts:
            raise UserError(f'TF_CONFIG cluster "{host_type}": give "chief" and/or "worker" lists of "host:port"')
        for host in hosts:
            name, _, port = str(host).rpartition(":")
            if not name or not port.isdigit():
                raise UserError(f'TF_CONFIG cluster "{host_type}": {host!r} is not "host:port"')
    if not isinstance(member, dict) or member.get("type") not in cluster:
        raise UserError(f'TF_CONFIG "task" must name a host type of the cluster ({", ".join(cluster)}) and an index')
    index = member.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[member["type"]]):
        raise UserError(
            f'TF_CONFIG task index {index!r}: the cluster has {len(cluster[member["type"]])} "{member["type"]}" hosts '
            f"(0 to {len(cluster[member['type']]) - 1})"
        )
    return config


def is_chief(config: dict | None) -> bool:
    """Whether this process writes the run folder: no cluster, the ``chief``, or worker 0 without a chief."""
    if config is None:
        return True
    member = config["task"]
    return member["type"] == "chief" or (
        member["type"] == "worker" and member["index"] == 0 and "chief" not in config["cluster"]
    )


def _local_devices(kind: str) -> list[str]:
    """The logical devices of ``kind`` (this starts TensorFlow's runtime: not before a multi-worker strategy)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices(kind)]


def _gpu_count() -> int:
    """Physical GPUs, without starting the runtime (MultiWorkerMirroredStrategy must come first)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def choose(distribute: str, batch: int) -> str:
    """The strategy DISTRIBUTE asks for on this machine, checked before anything is built or written."""
    if distribute not in DISTRIBUTES:
        raise UserError(f"DISTRIBUTE={distribute!r} is unknown; use {' or '.join(DISTRIBUTES)}")
    config = tf_config()
    workers = sum(len(v) for v in config["cluster"].values()) if config else 1
    if distribute == "multiworker" and config is None:
        raise UserError(
            "DISTRIBUTE=multiworker needs TF_CONFIG (the cluster's workers and this one's index); see docs/scale-out.md"
        )
    if distribute == "auto":
        if workers > 1:
            distribute = "multiworker"
        elif _gpu_count() > 1:
            distribute = "mirrored"
        else:
            distribute = "none"
    if distribute == "multiworker":
        local = max(1, _gpu_count())
        replicas = workers * local
    elif distribute == "mirrored":
        replicas = len(_local_devices("GPU")) or len(_local_devices("CPU"))
    else:
        replicas = 1
    if batch % replicas:
        raise UserError(
            f"BATCH={batch} cannot be split over the {replicas} replicas of DISTRIBUTE={distribute}; "
            f"give a multiple of {replicas} (--batch)"
        )
    return distribute


_PLACEMENT: Placement | None = None


def placement(distribute: str, batch: int) -> Placement:
    """The strategy for DISTRIBUTE (made once per process, as tf.distribute requires); see the module doc."""
    global _PLACEMENT
    name = choose(distribute, batch)
    if _PLACEMENT is not None:
        if _PLACEMENT.name != name:
            raise UserError(f"DISTRIBUTE={distribute}: this process already trains with {_PLACEMENT.name}")
        return _PLACEMENT
    import tensorflow as tf

    config = tf_config()
    member = f"{config['task']['type']}/{config['task']['index']}" if config else ""
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_SECONDS)
        with _deadline(CONNECT_SECONDS, config):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)  # every worker has joined
        patch_keras_multiworker()
        workers = sum(len(v) for v in config["cluster"].values())
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(_local_devices("GPU") or _local_devices("CPU"))
        workers = 1
    else:
        strategy = tf.distribute.get_strategy()
        workers = 1
    devices = tuple(_local_devices("GPU") or _local_devices("CPU"))
    _PLACEMENT = Placement(strategy, name, strategy.num_replicas_in_sync, workers, member, is_chief(config), devices)
    return _PLACEMENT


_WATCHDOG = """
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches it through the parent's wakeup byte instead
pid, seconds, stop, late, interrupted = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
ready, _, _ = select.select([sys.stdin], [], [], seconds)
if ready and not os.read(sys.stdin.fileno(), 1):
    sys.exit()  # stdin closed: the block ended in time (or the parent is gone)
print(interrupted if ready else late, file=sys.stderr, flush=True)
os.kill(pid, stop)
for _ in range(50):  # a parent that outlives the exit signal (no handler) is killed
    time.sleep(0.2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit()
os.kill(pid, signal.SIGKILL)
"""


def _c_signal():
    """libc's ``signal(signum, handler)``, handlers as addresses (None for SIG_DFL)."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    return libc


def _exit_on(signum: int):
    """Make ``signum`` end this process at once with exit code ``signum``; the previous C handler, or False.

    A C-level handler (libc's ``_exit``, whose signature is a signal handler's) runs even while
    TensorFlow's C++ code holds Python's lock, where no Python handler can.
    """
    import ctypes

    try:
        libc = _c_signal()
        previous = libc.signal(signum, ctypes.cast(libc._exit, ctypes.c_void_p).value)
    except (OSError, AttributeError):
        return False
    return False if previous == ctypes.c_void_p(-1).value else previous  # -1: SIG_ERR


class _deadline:
    """Stop this process with a one-line error and exit code 1 if the block has not finished in ``seconds``.

    TensorFlow waits for every worker of TF_CONFIG without end, inside C++ code that holds
    Python's lock (so no Python thread or signal handler runs) and ignores SIGTERM; a worker
    that never answers is a wrong address or a host that is down, which only the user can
    fix. So a small watchdog process, in a session of its own (a Ctrl-C to the terminal's
    process group does not kill it), does it: it exits as soon as this block ends (its stdin
    closes), or prints the error and sends SIGHUP, which a C handler turns into ``_exit(1)``,
    when the time is up. A Ctrl-C (SIGINT) meanwhile writes its byte to the watchdog's stdin
    (``signal.set_wakeup_fd``: Python's C handler does so at once, lock or not), and the
    watchdog stops this process the same way, saying it was interrupted.
    """

    def __init__(self, seconds: float, config: dict):
        hosts = ", ".join(h for v in config["cluster"].values() for h in v)
        self.message = (
            f"error: TF_CONFIG: not every worker of the cluster ({hosts}) joined within {seconds:.0f} s; "
            "start all of them with the same TF_CONFIG cluster, check the addresses and ports "
            "(SUITE_CONNECT_SECONDS sets the wait)"
        )
        self.interrupted = f"interrupted while waiting for the workers of the cluster ({hosts}) to join"
        self.seconds = seconds

    def __enter__(self):
        import signal
        import subprocess

        sys.stdout.flush()  # _exit leaves Python's buffers unwritten
        sys.stderr.flush()
        self.previous_hup = _exit_on(signal.SIGHUP)
        stop = signal.SIGKILL if self.previous_hup is False else signal.SIGHUP
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.seconds), str(int(stop))]
            + [self.message, self.interrupted],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        fd = self.watchdog.stdin.fileno()
        os.set_blocking(fd, False)
        try:
            self.wakeup = signal.set_wakeup_fd(fd)
        except ValueError:  # not the main thread: Ctrl-C is the main thread's to handle
            self.wakeup = None
        return self

    def __exit__(self, *exc):
        import signal

        if self.wakeup is not None:
            signal.set_wakeup_fd(self.wakeup)
        self.watchdog.stdin.close()  # done in time: the watchdog sees its stdin end and exits
        self.watchdog.wait()
        if self.previous_hup is not False:
            _c_signal().signal(signal.SIGHUP, self.previous_hup)
        return False


def patch_keras_multiworker() -> None:
    """Work around keras-team/keras#20585 in Keras' TensorFlow trainer (see the module doc)."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_suite_multiworker", False):
        return
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_multiworker(values, strategy, reduction="auto"):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0), values
            )
        return reduce_per_replica(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tree.map_structure(
                    lambda x: (
                        self.distribute_strategy.experimental_local_results(x)[0]
                        if isinstance(x, tf.distribute.DistributedValues)
                        else x
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_multiworker
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._suite_multiworker = True


@contextlib.contextmanager
def worker_lost(place: Placement):
    """Turn the error of a lost worker (a collective op that fails or times out) into one line that says what to do."""
    if place.workers == 1:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise UserError(
            f"worker {place.member}: another worker of the cluster was lost ({type(err).__name__}: {first}); "
            "start every worker again with the same command and TF_CONFIG: training resumes from the last epoch"
        ) from None


def shard_by_data():
    """tf.data options: each worker keeps every n-th batch (of the validation pairs, in memory)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def backup_and_restore(backup_dir: str, chief: bool):
    """Keras' BackupAndRestore that every worker restores from ``backup_dir`` and only the chief writes.

    The weights are the same on every worker (mirrored), so one copy, the chief's, is the
    state of the whole cluster; a worker writing it too would race with the chief.
    """
    import keras

    class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            try:  # Keras falls back on the previous copy when the latest weights are unreadable
                super().on_train_begin(logs)
            except (OSError, ValueError, KeyError) as err:  # both copies, or the epoch file, are damaged
                raise UserError(
                    f"{backup_dir}: the backup of the interrupted run cannot be read ({type(err).__name__}); "
                    f"delete {backup_dir} to train this run from the start"
                ) from None

        def _save_model(self):
            if chief:
                super()._save_model()

        def on_train_end(self, logs=None):
            if chief:
                super().on_train_end(logs)

    return WorkerBackupAndRestore(backup_dir, double_checkpoint=True)
