"""Exclusive locks on files or folders that a run writes, naming the run that holds them.

``with hold_locks([path, ...], "training the target and shadow models"):`` takes, for each path,
the lock file ``.{name}.lock`` beside it (an OS lock, ``fcntl.flock``, released by the kernel when
the holder ends, however it ends) and writes into it the holder's pid, process start time, host,
command line and purpose. A second process asking for a held lock gets a one-line
:class:`LockHeldError` naming that pid (after waiting up to ``wait_s`` seconds, default not at all).
A lock file left by a process that no longer holds it (a killed run) is detected, taken over and
reported in one warning naming the dead pid. The lock file is deleted when the lock is released.
A process that only reads a path takes no lock; :func:`refuse_if_held` stops it (one line naming
the writer's pid) while a running process holds the path's lock.

Without ``fcntl`` (not POSIX) the lock file is created exclusively and a file whose pid is no
longer running (or runs with another start time) counts as stale.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

from utils.files import disk_full, process_alive

log = logging.getLogger(__name__)
LOCK_SUFFIX = ".lock"
POLL_S = 0.2


class LockHeldError(RuntimeError):
    """Another running process holds the lock; the message names its pid."""

    def __init__(self, message: str, owner: "LockOwner | None"):
        super().__init__(message)
        self.owner = owner


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a lock: what its lock file records."""

    pid: int
    started: float | None     # process start time, seconds since the epoch (None where unknown)
    host: str
    purpose: str
    command: str

    def describe(self) -> str:
        when = (time.strftime(", started %Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
                if self.started else "")
        return f"pid {self.pid}{when}, {self.purpose}"

    def running(self) -> bool:
        """Whether this very process still runs on this host (pid alive with the same start time)."""
        if self.host and self.host != socket.gethostname():
            return True  # another host's process: assume it runs
        if not process_alive(self.pid):
            return False
        started = process_start_time(self.pid)
        return started is None or self.started is None or abs(started - self.started) < 2.0


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: ``.{name}.lock`` in the same folder."""
    target = Path(target)
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def read_owner(path: str | Path) -> LockOwner | None:
    """The owner recorded in lock file ``path`` (None when it is missing, empty or unreadable)."""
    try:
        recorded = json.loads(Path(path).read_text())
        return LockOwner(int(recorded["pid"]), recorded.get("started"), str(recorded.get("host", "")),
                         str(recorded.get("purpose", "")), str(recorded.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _this_process(purpose: str) -> LockOwner:
    return LockOwner(os.getpid(), process_start_time(os.getpid()), socket.gethostname(), purpose,
                     " ".join(sys.argv)[:500])


def _held_message(target: Path, owner: LockOwner | None, fix: str) -> str:
    holder = f"another run ({owner.describe()})" if owner else "another run"
    return f"{target} is being written by {holder}; this run stopped before writing it; {fix}"


@contextmanager
def file_lock(target: str | Path, purpose: str, fix: str = "wait for that run to finish",
              wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` (a file or folder this process will write) for the block.

    Parameters
    ----------
    purpose : what the holder does, e.g. ``"training the target and shadow models"`` (recorded
        in the lock file; named in the other run's error)
    fix : what a refused run should do, ending its error message
    wait_s : how long to wait for a held lock before refusing (0: refuse at once)

    Raises
    ------
    LockHeldError
        One line naming ``target`` and the holder's pid, start time and purpose.
    """
    target = Path(target)
    path = lock_path(target)
    created = not path.parent.exists()  # removed again if the run leaves it empty
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    acquire = _acquire_flock if fcntl is not None else _acquire_exclusive
    while True:
        handle, previous = acquire(path)
        if handle is not None:
            break
        if time.monotonic() >= deadline:
            raise LockHeldError(_held_message(target, previous, fix), previous)
        time.sleep(POLL_S)
    if previous is not None:
        log.warning("taking over the lock on %s left by pid %d, which %s", target, previous.pid,
                    "no longer runs" if not previous.running() else "no longer holds it")
    try:
        try:
            os.ftruncate(handle, 0)
            os.write(handle, json.dumps(asdict(_this_process(purpose))).encode())
            os.fsync(handle)
        except OSError as error:
            raise disk_full(error, path) from None
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still holding it: a waiting process re-checks the inode
        os.close(handle)
        if created:
            with suppress(OSError):
                path.parent.rmdir()


def _acquire_flock(path: Path) -> tuple[int | None, LockOwner | None]:
    """``(descriptor, previous owner or None)`` once locked; ``(None, holder)`` while another holds it."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None, _owner_soon(path)
    try:
        same_file = os.fstat(handle).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same_file = False
    if not same_file:  # the holder released (and deleted) it between our open and our lock
        os.close(handle)
        return _acquire_flock(path)
    return handle, read_owner(path)


def _acquire_exclusive(path: Path) -> tuple[int | None, LockOwner | None]:
    """The fallback without ``fcntl``: create the file exclusively; a dead owner's file is stale."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), None
    except FileExistsError:
        owner = _owner_soon(path)
        if owner is not None and not owner.running():
            path.unlink(missing_ok=True)
            handle, _ = _acquire_exclusive(path)
            return handle, owner if handle is not None else None
        return None, owner


def _owner_soon(path: Path, tries: int = 5) -> LockOwner | None:
    """The holder's record; a lock file is written just after it is locked, so retry briefly."""
    for _ in range(tries):
        owner = read_owner(path)
        if owner is not None:
            return owner
        time.sleep(0.02)
    return None


def live_holder(target: str | Path) -> LockOwner | None:
    """The running process that holds ``target``'s lock, per its lock file (None when no lock file
    or its process has ended); for runs that only read ``target`` and take no lock."""
    owner = read_owner(lock_path(target))
    return owner if owner is not None and owner.pid != os.getpid() and owner.running() else None


def refuse_if_held(targets: Iterable[str | Path], fix: str = "wait for that run to finish") -> None:
    """Raise :class:`LockHeldError` (one line naming the holder's pid) when a running process
    holds the lock of any of ``targets``: a reader would see them change under it."""
    for target in sorted({Path(t) for t in targets}):
        owner = live_holder(target)
        if owner is not None:
            raise LockHeldError(f"{target} is being written by another run ({owner.describe()}); this run "
                                f"stopped before reading it; {fix}", owner)


@contextmanager
def hold_locks(targets: Iterable[str | Path], purpose: str, fix: str = "wait for that run to finish",
               wait_s: float = 0.0) -> Iterator[list[Path]]:
    """:func:`file_lock` on every path of ``targets`` (in sorted order, so two runs never deadlock),
    all held for the block; the locks taken are released if one is refused."""
    with ExitStack() as stack:
        yield [stack.enter_context(file_lock(target, purpose, fix, wait_s))
               for target in sorted({Path(t) for t in targets})]
