"""Checksum mismatches of data on disk: an error by default, a warning with ``--no_verify``.

A builder that finds a file or folder whose checksum differs from the published one calls
:func:`checksum_mismatch`. With verification on (``DataRequest.options["verify_checksums"]``,
default True) that raises a one-line :class:`ChecksumError`; with ``--no_verify`` it logs a warning
and the message is kept for the run's manifest (see :func:`recording_accepted_mismatches`).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from datasets.errors import ChecksumError

log = logging.getLogger(__name__)
NO_VERIFY_FLAG = "--no_verify"
_SINKS: list[list[str]] = []  # open recordings (innermost last)


def verification_requested(request) -> bool:
    """Whether ``request`` (a DataRequest) asks for checksums to be enforced (default True)."""
    return bool(request.options.get("verify_checksums", True))


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
