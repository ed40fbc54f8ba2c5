"""A watchdog that ends the local Ray cluster's processes when the run that started them dies.

After ``ray.init`` starts a local cluster, some of its helpers (the dashboard and runtime-env agents)
outlive a run killed with SIGKILL and ignore SIGTERM. :func:`guard_processes` starts this file as a
tiny separate process holding the read end of a pipe; the run keeps the write end. When the run
exits, however it exits, the pipe closes and the watchdog SIGKILLs every process it was told about
that still has the same start time (so a reused pid is never touched), then exits itself.
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

    def __init__(self):
        self._process = None
        if not os.path.isdir("/proc"):
            return  # no /proc (macOS, Windows): Ray's own shutdown only
        self._process = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         text=True, close_fds=True)

    def add(self, pids: list[int]) -> None:
        if self._process is None:
            return
        for pid in pids:
            started = start_time(pid)
            if started is not None and pid != self._process.pid:
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
    """Read ``pid start_time`` lines until EOF (the run ended), then kill what is still alive."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group: outlive the run
    recorded = []
    for line in sys.stdin:
        pid, started = line.split()
        recorded.append((int(pid), started))
    time.sleep(0.5)   # a clean ray.shutdown has usually ended them by now
    for pid, started in recorded:
        if start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    _watch()
