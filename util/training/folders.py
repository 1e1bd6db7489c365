"""Run folders: their names, the lock while a run trains into one, and resuming an interrupted run.

A run trains into ``<OUT>/<script>-<task>-<train patches>[-<dataset>]`` (or ``-2``, ``-3``
... beside a folder of other settings); ``run.lock`` holds it while a process trains there.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import itertools
import json
import os
import socket
from pathlib import Path

from util.io.files import UserError, write_json_atomic
from util.training.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def run_name(script: str, settings: Settings) -> str:
    """``<script>-<task>-<train patches>``, and ``-<dataset>`` unless it is the builtin one."""
    name = f"{script}-{settings.task}-{settings.train_patches}"
    return name if settings.dataset == "builtin" else f"{name}-{Path(settings.dataset).name}"


def run_dir(script: str, settings: Settings) -> Path:
    """The run folder of these settings: ``<OUT>/<run_name>``, or ``<run_name>-2``, ``-3`` ... (see run_folder)."""
    return run_folder((REPO / settings.out / run_name(script, settings)).resolve(), settings)


def run_folder(base: Path, settings: Settings) -> Path:
    """The first of ``base``, ``base-2``, ``base-3`` ... whose settings.json holds these settings, or that is free.

    A folder holding other settings (or files but no settings.json) is never written into:
    runs with different settings get numbered folders beside it.
    """
    wanted = settings.to_json()
    for n in itertools.count(1):  # ends at the first free folder
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        saved = folder / "settings.json"
        if saved.exists():
            if saved_json(saved) == wanted:  # an unreadable settings.json is another run's: never written into
                return folder
        elif not folder.exists() or not any(folder.iterdir()):
            if n > 1:
                print(f"note: {base} holds a run with other settings; this one is {folder.name}")
            return folder


def saved_json(path: Path):
    """The JSON in ``path``, or None when it cannot be read (cut short, edited by hand)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def resume_state(folder: Path) -> tuple[float | None, float]:
    """(best val_loss so far, training seconds so far) of an interrupted run in ``folder``; (None, 0) when new."""
    if not (folder / "backup").exists():
        return None, 0.0
    best = None
    if (folder / "best.weights.h5").exists() and (folder / "training.csv").exists():
        with open(folder / "training.csv") as f:
            try:
                losses = [float(row["val_loss"]) for row in csv.DictReader(f) if row.get("val_loss")]
            except ValueError:
                raise UserError(
                    f"{folder / 'training.csv'}: a val_loss is not a number; delete {folder} to train again"
                ) from None
        best = min(losses) if losses else None
    clock = saved_json(folder / "train_seconds.json")
    seconds = clock["seconds"] if isinstance(clock, dict) and isinstance(clock.get("seconds"), int | float) else 0.0
    return best, seconds


LOCK = "run.lock"  # in a run folder while a process trains into it


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc), to tell a reused PID from its first owner."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _holder_runs(holder: dict) -> bool:
    """Whether the process that wrote the lock record ``holder`` still runs (on this host)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid < 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    ticks = _start_ticks(pid)
    return holder.get("start_ticks") is None or ticks is None or ticks == holder["start_ticks"]


def _read_lock(lock: Path) -> dict | None:
    """The record of ``lock``; None when it has gone; a UserError when it is not one this suite wrote."""
    try:
        holder = json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = None
    if not isinstance(holder, dict) or "pid" not in holder:
        raise UserError(f"{lock}: not a lock this suite wrote; delete it if no training writes this run folder")
    return holder


def _refuse(lock: Path, holder: dict):
    where = f"PID {holder['pid']} on host {holder.get('host')}, since {holder.get('since')}"
    here = holder.get("host") == socket.gethostname()
    fix = (
        "wait for it to end or give another OUT (--out)"
        if here
        else (f"wait for it to end, give another OUT (--out), or delete {lock} if that run is over")
    )
    return UserError(f"{lock.parent}: another training ({where}) writes this run folder; {fix}")


def _link_or_create(record: str, lock: Path) -> bool:
    """Create ``lock`` holding ``record`` whole, only if it does not exist; False when it does."""
    tmp = lock.with_name(f".{lock.name}.{os.getpid()}")
    tmp.write_text(record)
    try:
        os.link(tmp, lock)  # atomic, and the lock is never seen half-written
        return True
    except FileExistsError:
        return False
    except OSError as err:  # a file system without hard links: exclusive creation instead
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(record)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(lock: Path, holder: dict) -> None:
    """Remove the stale ``lock`` of ``holder``, unless another process replaced it meanwhile."""
    stale = lock.with_name(f".{lock.name}.stale.{os.getpid()}")
    try:
        os.rename(lock, stale)
    except FileNotFoundError:  # another process took it over first
        return
    try:
        if json.loads(stale.read_text()) != holder:  # a live lock taken over between our read and rename
            _link_or_create(stale.read_text(), lock)
            raise _refuse(lock, _read_lock(lock) or holder)
    finally:
        stale.unlink(missing_ok=True)
    print(
        f"note: {lock}: left by PID {holder['pid']} (since {holder.get('since')}), which no longer runs; "
        "taking the run folder over"
    )


@contextlib.contextmanager
def run_lock(folder: Path, settings: Settings):
    """Hold ``folder/run.lock`` (this PID, host and start) while training into ``folder``; write settings.json.

    A second process that trains into the same folder would resume the first's live backup
    and interleave their logs: it gets a UserError instead. A lock whose process no longer
    runs on this host (a killed run) is stale and taken over with a note; one from another
    host is refused, naming the file to delete. The lock goes on exit, exceptions included;
    a folder this call made and that holds nothing but settings.json then goes too.
    """
    new = not folder.exists() or not any(folder.iterdir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # OUT is a file, lies below one, or cannot be written
        in_the_way = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        reason = f"{in_the_way} is a file, not a folder" if in_the_way else (err.strerror or str(err)).lower()
        raise UserError(
            f"OUT={settings.out}: cannot make the run folder {folder}: {reason}; give --out a folder you can write"
        ) from None
    lock = folder / LOCK
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
        "start_ticks": _start_ticks(os.getpid()),
    }
    for _ in range(5):  # a few tries: other processes may take over or release at the same moment
        if _link_or_create(json.dumps(record), lock):
            break
        holder = _read_lock(lock)
        if holder is None:
            continue
        if holder.get("host") != socket.gethostname() or _holder_runs(holder):
            raise _refuse(lock, holder)
        _take_over(lock, holder)
    else:
        raise _refuse(lock, _read_lock(lock) or record)
    try:
        write_json_atomic(folder / "settings.json", settings.to_json())
        yield folder
    finally:
        with contextlib.suppress(OSError, UserError):
            if _read_lock(lock) == record:
                lock.unlink()
        if new and {p.name for p in folder.iterdir()} <= {"settings.json"}:
            (folder / "settings.json").unlink(missing_ok=True)
            folder.rmdir()
