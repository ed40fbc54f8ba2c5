"""A watchdog that ends the local Ray cluster's processes when the run that started them dies.

After ``ray.init`` starts a local cluster, some of its helpers (the dashboard and runtime-env agents)
outlive a run killed with SIGKILL and ignore SIGTERM. :func:`guard_processes` starts this file as a
tiny separate process holding the read end of a pipe; the run keeps the write end. The watchdog
records the run's descendants every second (and any pid the run sends it). When the run exits,
however it exits, the pipe closes and the watchdog SIGKILLs every process it was told about
that still has the same start time (so a reused pid is never touched), and their descendants
(workers the raylet started since), then exits itself.
The watchdog imports nothing from the package (it runs as a plain script).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of ``/proc/pid/stat``), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (from ``/proc/*/stat`` parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.extend(children)
        frontier.extend(children)
    return found


class ProcessGuard:
    """The watchdog of one cluster: :meth:`add` records processes, :meth:`close` (or the run's death)
    makes the watchdog kill the ones still alive."""

    def __init__(self, exclude: list[int] = ()):
        """``exclude``: processes of the run that are not the cluster's (e.g. multiprocessing's resource
        tracker, started before it); the watchdog never records or kills them."""
        self._process = None
        self._excluded = set(exclude)
        if not os.path.isdir("/proc"):
            return  # no /proc (macOS, Windows): Ray's own shutdown only
        self._process = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         text=True, close_fds=True)
        for pid in self._excluded:
            started = start_time(pid)
            if started is not None:
                self._process.stdin.write(f"-{pid} {started}\n")
        self._process.stdin.flush()

    def add(self, pids: list[int]) -> None:
        if self._process is None:
            return
        for pid in pids:
            started = start_time(pid)
            if started is not None and pid != self._process.pid and pid not in self._excluded:
                self._process.stdin.write(f"{pid} {started}\n")
        self._process.stdin.flush()

    def close(self, wait_s: float = 5.0) -> None:
        if self._process is None:
            return
        try:
            self._process.stdin.close()
            self._process.wait(timeout=wait_s)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()


def _watch() -> None:
    """Until EOF on stdin (the run ended): record ``pid start_time`` lines and, every second, the run's
    descendants; then kill what is still alive (and what those started since)."""
    import select

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: outlive the run
    run = os.getppid()
    recorded: dict[int, str] = {}
    excluded: dict[int, str] = {}     # "-pid start" lines: the run's processes that are not the cluster's
    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 1.0)
        if readable:
            data = os.read(0, 65536)
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    pid, started = line.split()
                    if pid.startswith(b"-"):
                        excluded[int(pid[1:])] = started.decode()
                    else:
                        recorded[int(pid)] = started.decode()
        for pid in descendants(run):
            started = start_time(pid)
            if started is not None and pid != os.getpid() and excluded.get(pid) != started:
                recorded.setdefault(pid, started)
    time.sleep(0.5)   # a clean ray.shutdown has usually ended them by now
    alive = [pid for pid, started in recorded.items() if start_time(pid) == started]
    targets = {pid: recorded[pid] for pid in alive}
    for pid in alive:                 # and what they started since (e.g. workers of the raylet)
        targets.update({child: start_time(child) for child in descendants(pid)})
    for pid, started in targets.items():
        if pid != os.getpid() and started is not None and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    _watch()
