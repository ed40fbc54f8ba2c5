"""A local worker process of the reference pool, started as a plain script by
:class:`models.pool_executor.ProcessExecutor`: ``python pool_worker.py TASK_FD RESULT_FD PARENT_PID``.

Before it imports anything heavy it asks the kernel to kill it when its parent dies (Linux
``PR_SET_PDEATHSIG``; elsewhere a thread checks the parent every 0.2 s), so it never outlives its run,
even one killed with SIGKILL while this process is still importing torch. Ctrl-C is the run's to
handle (it closes this process). Then it serves chunks (:func:`models.pool_executor.serve`).
"""
import os
import signal
import sys
import threading
import time


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the run) dies, however it dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:      # it died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    die_with_parent(int(sys.argv[3]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the repository, not models/
    from models.pool_executor import serve

    serve(int(sys.argv[1]), int(sys.argv[2]))
