"""When progress bars are drawn: asked for, and only on a terminal.

tqdm's ``disable=None`` turns a bar off when its stream is not a TTY, so a log file or CI output gets
the run's stage lines (:mod:`pipeline.console`) instead of thousands of carriage-return updates.
"""
from __future__ import annotations


def bar_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the caller wants when ``progress``: off, or off on a non-TTY."""
    return None if progress else True
