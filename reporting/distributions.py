"""Where the maximum prediction scores sit: members against each non-member set.

This is the picture behind the paper's argument: an overconfident model gives unseen, OOD and
generated images maximum scores as high as its training members, so a score threshold cannot
tell them apart. Nearly all of that happens in the last percent below 1.0 (float32 probabilities
saturate at exactly 1.0), so the bins zoom into [0.9, 1]: each holds ten times less of the range
than the one before it, and the last bin is "exactly 1.0".
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from reporting.figures import new_figure, place_axes, save_figure

# bin edges (left-closed): [0, 0.5), [0.5, 0.9), [0.9, 0.99), [0.99, 0.999), [0.999, 1), exactly 1.0
EDGES = (0.0, 0.5, 0.9, 0.99, 0.999, 1.0)
BIN_LABELS = ("<0.5", "0.5-0.9", "0.9-0.99", "0.99-0.999", "0.999-<1", "=1.0")
COLUMNS = 4
# inches: a cell per panel; each row holds the panel's two-line title, the panel and its slanted bin labels
CELL_WIDTH, LEFT, RIGHT, GAP = 3.4, 0.7, 0.15, 0.15
PANEL, ROW, TOP, BOTTOM = 1.85, 2.8, 0.75, 0.0


def score_shares(values: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin of :data:`BIN_LABELS` (sums to 1; zeros for an empty set)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not len(values):
        return np.zeros(len(BIN_LABELS))
    bins = np.searchsorted(np.asarray(EDGES[1:-1]), values, side="right")   # 0 .. len(EDGES) - 2
    bins = np.where(values >= 1.0, len(BIN_LABELS) - 1, np.minimum(bins, len(BIN_LABELS) - 2))
    return np.bincount(bins, minlength=len(BIN_LABELS)) / len(values)


def plot_max_score_distributions(member_max, non_member_max: Mapping[str, np.ndarray],
                                 path: str | Path, title: str = "") -> Path:
    """One panel per non-member set: the share of samples per maximum-score bin, members beside it.

    Parameters
    ----------
    member_max : array (N,)
        Maximum prediction score of each target member.
    non_member_max : mapping set name -> array (N_set,)
        Maximum prediction score of each sample of every non-member set.
    path : PNG to write
    title : figure title

    Returns
    -------
    Path
        ``path``.
    """
    return save_figure(max_score_figure(member_max, non_member_max, title), path)


def max_score_figure(member_max, non_member_max: Mapping[str, np.ndarray], title: str = ""):
    """The figure of :func:`plot_max_score_distributions` (not saved)."""
    member_max = _finite(member_max, "members")
    sets = {name: _finite(values, name) for name, values in non_member_max.items()}
    panels = sets or {"(no non-member sets)": None}
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    # a fixed layout in inches (constrained layout measured every text twice, the larger cost)
    width, height = CELL_WIDTH * columns, TOP + ROW * rows + BOTTOM
    figure = new_figure(width, height, layout=None)
    panel_width = (width - LEFT - RIGHT - GAP * (columns - 1)) / columns
    grid = np.array([[place_axes(figure, LEFT + column * (panel_width + GAP), height - TOP - ROW * row - PANEL,
                                 panel_width, PANEL) for column in range(columns)] for row in range(rows)])
    for axes in grid.flat[1:]:
        axes.sharey(grid.flat[0])
    for axes in grid[:, 1:].flat:
        axes.tick_params(labelleft=False)
    for axes in grid.flat[len(panels):]:
        axes.set_visible(False)
    x = np.arange(len(BIN_LABELS))
    members = score_shares(member_max)
    for axes, (name, values) in zip(grid.flat, panels.items()):
        axes.bar(x - 0.2, members, 0.4, color="tab:blue", label="members")
        shares = score_shares(values) if values is not None else None
        if shares is not None:
            axes.bar(x + 0.2, shares, 0.4, color="tab:orange", label="non-members of the set")
        at_one = f"members {members[-1]:.0%}" + (f", set {shares[-1]:.0%}" if shares is not None else "")
        axes.set_title(f"{name} (n={0 if values is None else len(values)})\nat exactly 1.0: {at_one}",
                       fontsize="small", y=1.0)
        axes.set_xticks(x, BIN_LABELS, rotation=45, ha="right", fontsize="x-small")
        axes.set_ylim(0, 1.05)
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower right", bbox_to_anchor=(1 - 0.1 / width, 0.02 / height),
                  ncol=2, fontsize="small", frameon=False)
    for axes in grid[:, 0]:
        axes.set_ylabel("share of samples")
    figure.supxlabel("maximum prediction score (bins zoom into [0.9, 1]; last bin: exactly 1.0)", fontsize="small",
                     y=0.1 / height, va="bottom")
    figure.suptitle(title or "Maximum prediction score: members vs. each non-member set", y=1 - 0.08 / height,
                    va="top")
    return figure


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise ValueError(f"maximum scores of {name!r} contain NaN or inf")
    return values
