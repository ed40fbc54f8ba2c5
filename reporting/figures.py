"""Figure plumbing shared by every plot: Agg canvases, atomic PNG saves, file-name-safe names.

Figures are built as :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through
``pyplot``: no global backend switch, no figure registry to leak, safe in worker processes.
The plotting functions themselves live in :mod:`reporting.roc`, :mod:`reporting.distributions`,
:mod:`reporting.false_positives` and :mod:`reporting.tradeoff` (and :mod:`reporting`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.files import atomic_path

DPI = 150


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure of ``width`` x ``height`` inches drawn by the Agg backend.

    ``layout=None`` for figures that place their axes themselves (in inches): matplotlib's
    constrained layout measures every text twice before drawing, which costs more than the drawing
    in the figures a run writes many of (ROC curves, image grids).
    """
    figure = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(figure)
    return figure


def place_axes(figure: Figure, left: float, bottom: float, width: float, height: float):
    """A new axes at ``left``, ``bottom`` (inches from the figure's lower-left corner), ``width`` x
    ``height`` inches."""
    figure_width, figure_height = figure.get_size_inches()
    return figure.add_axes((left / figure_width, bottom / figure_height, width / figure_width,
                            height / figure_height))


def legend_below(figure: Figure, handles, labels, columns: Sequence[int] = (2, 1), fontsize="small"):
    """A legend under everything in ``figure``: the figure grows at the bottom by the legend's
    measured height and its axes keep their size and place from the top, in inches. The first
    of ``columns`` whose legend fits the figure's width is used (the last one in any case).
    Measuring one legend is cheap; a layout engine would measure every text of the figure."""
    renderer = figure.canvas.get_renderer()
    width, height = figure.get_size_inches()
    for count in columns:
        legend = figure.legend(handles, labels, loc="upper center", ncol=count, fontsize=fontsize, frameon=False)
        box = legend.get_window_extent(renderer)
        if box.width / figure.dpi <= width - 0.2 or count == columns[-1]:
            break
        legend.remove()
    extra = box.height / figure.dpi + 0.2
    figure.set_size_inches(width, height + extra)
    for axes in figure.axes:
        x0, y0, w, h = axes.get_position().bounds
        axes.set_position((x0, (y0 * height + extra) / (height + extra), w, h * height / (height + extra)))
    legend.set_bbox_to_anchor((0.5, (extra - 0.05) / (height + extra)), transform=figure.transFigure)
    return legend


def show_tiles(axes, tiles: Sequence[np.ndarray | None], columns: int, gap: int = 2,
               frame: str | None = "black") -> tuple[int, int]:
    """Draw image tiles ``(H, W)`` (grey) or ``(H, W, 3)`` (colour), values in [0, 1], row by row
    into ``axes`` as one image (a montage: far cheaper to draw than an axes per tile), each framed
    in ``frame`` (``None``: no frame); ``None`` tiles stay empty. Every tile must have the same size.

    The axes keeps pixel coordinates: tile ``i`` spans ``x`` from ``(i % columns) * (W + gap)``
    to that plus ``W`` and ``y`` from ``(i // columns) * (H + gap)`` downwards, each shifted by
    -0.5. Ticks and spines are switched off. Returns ``(H, W)``.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    shapes = {tile.shape[:2] for tile in tiles if tile is not None}
    if len(shapes) > 1:
        raise ValueError(f"image tiles differ in size: {sorted(shapes)}")
    height, width = shapes.pop() if shapes else (1, 1)
    rows = max(1, -(-len(tiles) // columns))
    canvas = np.zeros((rows * (height + gap) - gap, columns * (width + gap) - gap, 4))  # transparent
    frames = []
    for index, tile in enumerate(tiles):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        frames.append(Rectangle((left - 0.5, top - 0.5), width, height))
        if tile is None:
            continue
        tile = np.clip(np.asarray(tile, dtype=np.float64), 0.0, 1.0)
        canvas[top:top + height, left:left + width, :3] = tile[..., None] if tile.ndim == 2 else tile
        canvas[top:top + height, left:left + width, 3] = 1.0
    axes.imshow(canvas, interpolation="nearest")
    if frame is not None:
        axes.add_collection(PatchCollection(frames, facecolor="none", edgecolor=frame, linewidth=0.8,
                                            clip_on=False))  # the outer frames lie on the limits
    axes.set(xlim=(-0.5, canvas.shape[1] - 0.5), ylim=(canvas.shape[0] - 0.5, -0.5), xticks=[], yticks=[])
    for spine in axes.spines.values():
        spine.set_visible(False)
    return height, width


def save_figure(figure: Figure, path: str | Path, keep: bool = False, dpi: int = DPI) -> Path:
    """Write ``figure`` as PNG atomically (temporary file beside ``path``, then rename); free it
    unless ``keep`` (a figure redrawn with other data for the next file).

    Returns
    -------
    Path
        ``path``; its parent folder is created when missing.
    """
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=dpi)
    finally:
        if not keep:
            figure.clear()
    return path


def safe_name(name: str) -> str:
    """``name`` reduced to letters, digits, ``.``, ``-`` and ``_`` for use in a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("_")
    return cleaned or "unnamed"
