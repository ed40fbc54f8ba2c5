"""Figure plumbing shared by every plot: Agg canvases, atomic PNG saves, file-name-safe names.

Figures are built as :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through
``pyplot``: no global backend switch, no figure registry to leak, safe in worker processes.
The plotting functions themselves live in :mod:`reporting.roc`, :mod:`reporting.distributions`,
:mod:`reporting.false_positives` and :mod:`reporting.tradeoff` (and :mod:`reporting`).
"""
from __future__ import annotations

import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.files import atomic_path

DPI = 150




def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches drawn by the Agg backend."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG atomically (temporary file beside ``path``, then rename); free it.

    Returns
    -------
    Path
        ``path``; its parent folder is created when missing.
    """
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=DPI)
    finally:
        figure.clear()
    return path



def safe_name(name: str) -> str:
    """``name`` reduced to letters, digits, ``.``, ``-`` and ``_`` for use in a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("_")
    return cleaned or "unnamed"
