"""One place turns user errors, a full disk and Ctrl-C into one line on stderr, for every command."""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

from datasets.errors import ChecksumError, DataNotFoundError, DataSizeError
from utils.files import DISK_FULL, DiskFullError
from utils.locks import LockHeldError

T = TypeVar("T")

USER_ERRORS = (ValueError, FileNotFoundError, DataNotFoundError, ChecksumError, DataSizeError, LockHeldError,
               DiskFullError)
INTERRUPTED = "interrupted; finished checkpoints kept; rerun to continue"


def run_with_one_line_errors(work: Callable[[], T]) -> tuple[int, T | None]:
    """``(0, work())``; or, where ``work`` stops on a user error (:data:`USER_ERRORS`), a full disk or
    Ctrl-C, that one line on stderr and ``(2, None)`` (``130`` for Ctrl-C: :data:`INTERRUPTED`)."""
    try:
        return 0, work()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130, None
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"error: no space left on the device{where}; free space there or write to another folder",
              file=sys.stderr)
    return 2, None
