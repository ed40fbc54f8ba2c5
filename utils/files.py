"""Atomic writes (temporary file, then rename) and checksums."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

TEMP_SUFFIX = ".tmp"
_TEMP_PID = re.compile(r"\.(\d+)\.[^.]*\.tmp$")  # ".{name}.{pid}.{random}.tmp" from atomic_path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space left on the device (or the quota is used up) where a file was being written."""

    def __init__(self, folder: str | Path, name: str = ""):
        writing = f" while writing {name}" if name else ""
        self.message = (f"no space left on the device of {folder}{writing}; nothing was half-written "
                        f"(finished files are kept); free space there or write to another folder")
        super().__init__(errno.ENOSPC, self.message, str(folder))

    def __str__(self) -> str:
        return self.message


def disk_full(error: OSError, path: str | Path) -> OSError:
    """``error`` as a :class:`DiskFullError` naming ``path``'s folder when it is ENOSPC/EDQUOT, else
    ``error`` itself (for ``raise disk_full(error, path) from None``)."""
    if isinstance(error, DiskFullError) or error.errno not in DISK_FULL:
        return error
    return DiskFullError(Path(path).parent, Path(path).name)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A full disk, in the block or in creating the temporary, is a :class:`DiskFullError` naming
    ``path``'s folder; the temporary is always removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX,
                                             dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise disk_full(error, path) from None
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp creates 0600 files
        os.replace(temporary, path)
    except OSError as error:
        raise disk_full(error, path) from None
    finally:
        temporary.unlink(missing_ok=True)


def torch_save(obj: object, path: str | Path) -> None:
    """``torch.save(obj, path)`` through memory: torch's own file writer reports a full disk as a
    RuntimeError; written from memory, it is an ``OSError`` (ENOSPC) like every other write."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with open(path, "wb") as handle:
        handle.write(buffer.getbuffer())


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` when the block ends cleanly."""
    with atomic_path(path) as temporary, open(temporary, mode) as handle:
        yield handle


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


def file_digest(path: str | Path, algorithm: str, chunk_size: int = 1 << 20) -> str:
    """Hex digest (``hashlib`` algorithm name, e.g. ``"md5"``, ``"sha256"``) of a file's bytes."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 of a file's bytes."""
    return file_digest(path, "md5", chunk_size)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def process_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def owner_pid(name: str) -> int | None:
    """The process id in a temporary name written by :func:`atomic_path` (None if absent)."""
    match = _TEMP_PID.search(name)
    return int(match.group(1)) if match else None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``*.tmp`` files in ``folder`` (not recursive) left by processes that no longer run.

    Temporaries of a live process (a concurrent run) are kept; names without a process id (older
    versions) count as stale. Returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if not path.name.endswith(TEMP_SUFFIX) or not path.is_file():
            continue
        pid = owner_pid(path.name)
        if pid is not None and process_alive(pid):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def remove_tree(path: str | Path) -> None:
    """Delete a folder and everything in it; a missing folder is fine."""
    shutil.rmtree(path, ignore_errors=True)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digest(path, "sha256", chunk_size)
