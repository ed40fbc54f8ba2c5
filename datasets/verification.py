"""Checksums of data on disk (files, folders as the paper hashed them) and their mismatches: an
error by default, a warning with ``--no_verify``.

A builder that finds a file or folder whose checksum differs from the published one calls
:func:`checksum_mismatch`. With verification on (``DataRequest.verify_checksums``,
default True) that raises a one-line :class:`ChecksumError`; with ``--no_verify`` it logs a warning
and the message is kept for the run's manifest (see :func:`recording_accepted_mismatches`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from datasets.errors import ChecksumError, DataNotFoundError
from utils.files import md5_file, write_json

log = logging.getLogger(__name__)
NO_VERIFY_FLAG = "--no_verify"
_SINKS: list[list[str]] = []  # open recordings (innermost last)


def checksum_mismatch(message: str, verify: bool, fix: str) -> None:
    """Report data whose checksum differs from the published one.

    Parameters
    ----------
    message : what differs, e.g. ``"AFHQ Dogs: folder data/afhq has md5 X, expected Y"``
    verify : True raises, False warns and records the message
    fix : what to do instead, e.g. ``"unzip afhq.zip again"``

    Raises
    ------
    ChecksumError
        When ``verify``: ``"{message}; {fix}, or pass --no_verify to use this copy"``.
    """
    if verify:
        raise ChecksumError(f"{message}; {fix}, or pass {NO_VERIFY_FLAG} to use this copy")
    log.warning("%s; using it anyway (%s)", message, NO_VERIFY_FLAG)
    for sink in _SINKS:
        sink.append(message)


@contextmanager
def recording_accepted_mismatches() -> Iterator[list[str]]:
    """Collect, in the yielded list, every mismatch accepted (``--no_verify``) inside the block."""
    sink: list[str] = []
    _SINKS.append(sink)
    try:
        yield sink
    finally:
        _SINKS.remove(sink)


def verify_files(set_name: str, folder: Path, files: Sequence[tuple[str, str | None]],
                 how_to_get: str, verify: bool = True) -> None:
    """Raise DataNotFoundError naming every missing file; a file whose MD5 differs is a
    ChecksumError (``verify``) or a recorded warning (``--no_verify``, :func:`checksum_mismatch`)."""
    folder = Path(folder)
    missing = [name for name, _ in files if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(f"{set_name}: missing {', '.join(missing)} in {folder}; {how_to_get}")
    for name, expected in files:
        if expected and (actual := md5_file(folder / name)) != expected:
            checksum_mismatch(f"{set_name}: {folder / name} has md5 {actual}, expected {expected}", verify,
                              f"delete it and {how_to_get}")


def _walk_sorted(folder: Path):
    """``os.walk`` top-down with sub-folders and files sorted: yields file paths."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def paper_folder_md5(folder: str | Path, chunk_size: int = 4096) -> str:
    """The paper's folder checksum (``_check_folder_integrity`` in its ``datasets/*.py``).

    Walk ``folder`` top-down, sub-folders and file names sorted; for every 4,096-byte chunk of
    every file, feed ``md5(chunk).digest()`` into one running MD5. Paths are not hashed, so the
    value depends only on file contents in walk order. Used to compare with the paper's values.
    """
    digest = hashlib.md5()
    for path in _walk_sorted(Path(folder)):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_size), b""):
                digest.update(hashlib.md5(chunk).digest())
    return digest.hexdigest()


def folder_md5(folder: str | Path, chunk_size: int = 1 << 20) -> str:
    """This package's folder checksum: names and contents.

    Files are taken in order of their POSIX path relative to ``folder``; for each, the MD5 is fed
    the UTF-8 path, a NUL byte, the size as 8 little-endian bytes, then the file's bytes. Renamed,
    added, removed or changed files all change the value.
    """
    folder = Path(folder)
    digest = hashlib.md5()
    for relative, path in sorted((p.relative_to(folder).as_posix(), p) for p in _walk_sorted(folder)):
        digest.update(relative.encode("utf-8") + b"\0" + path.stat().st_size.to_bytes(8, "little"))
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_size), b""):
                digest.update(chunk)
    return digest.hexdigest()


def folder_signature(folder: str | Path) -> str:
    """Cheap fingerprint (relative path, size, mtime of every file) deciding when to re-hash."""
    folder = Path(folder)
    digest = hashlib.md5()
    for path in _walk_sorted(folder):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
                      .encode("utf-8"))
    return digest.hexdigest()


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def verify_folder(folder: Path, expected: str, stamp: Path, set_name: str, fix: str,
                  verify: bool = True) -> None:
    """Check that :func:`paper_folder_md5` of ``folder`` equals ``expected``: a ChecksumError
    otherwise (``verify``), or a recorded warning (``--no_verify``, :func:`checksum_mismatch`).

    The folder's checksum is remembered in the JSON ``stamp`` (kept outside ``folder``) with
    :func:`folder_signature`; the folder is hashed again only when that signature changes.
    """
    signature = folder_signature(folder)
    cached = read_json(stamp)
    actual = cached.get("paper_folder_md5") if cached.get("signature") == signature else None
    if actual is None:
        actual = paper_folder_md5(folder)
        try:
            write_json(stamp, {"folder": str(folder), "paper_folder_md5": actual, "signature": signature})
        except OSError:
            pass  # a read-only data folder is hashed again next time
    if actual != expected:
        checksum_mismatch(f"{set_name}: folder {folder} has md5 {actual} (paper's folder checksum), "
                          f"expected {expected}", verify, fix)
