"""Histograms of the maximum prediction score: members against each non-member set.

This is the picture behind the paper's argument: an overconfident model gives unseen, OOD and
generated images maximum scores as high as its training members, so a score threshold cannot
tell them apart.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from reporting.figures import new_figure, save_figure

BINS = 40
COLUMNS = 4


def plot_max_score_distributions(member_max, non_member_max: Mapping[str, np.ndarray],
                                 path: str | Path, title: str = "") -> Path:
    """One panel per non-member set: the share of samples per maximum-score bin, members overlaid.

    Parameters
    ----------
    member_max : array (N,)
        Maximum prediction score of each target member.
    non_member_max : mapping set name -> array (N_set,)
        Maximum prediction score of each sample of every non-member set.
    path : PNG to write
    title : figure title (e.g. the run's stem)

    Returns
    -------
    Path
        ``path``.
    """
    member_max = _finite(member_max, "members")
    sets = {name: _finite(values, name) for name, values in non_member_max.items()}
    every = [values for values in (member_max, *sets.values()) if len(values)]
    low = min((float(values.min()) for values in every), default=0.0)
    high = max([1.0, *(float(values.max()) for values in every)])
    edges = np.linspace(min(low, high - 1e-3), high, BINS + 1)

    panels = sets or {"(no non-member sets)": None}
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(3.2 * columns, 2.6 * rows + (0.4 if title else 0))
    grid = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for axes in grid.flat[len(panels):]:
        axes.set_visible(False)
    for axes, (name, values) in zip(grid.flat, panels.items()):
        _hist(axes, member_max, edges, "members", "tab:blue")
        if values is not None:
            _hist(axes, values, edges, "non-members", "tab:orange")
        axes.set_title(f"{name} (n={0 if values is None else len(values)})", fontsize="medium")
        axes.set_xlabel("maximum prediction score")
        axes.set_ylabel("share of samples")
        axes.legend(fontsize="x-small", loc="upper left")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise ValueError(f"maximum scores of {name!r} contain NaN or inf")
    return values


def _hist(axes, values: np.ndarray, edges: np.ndarray, label: str, color: str) -> None:
    """Histogram normalised to shares, so sets of different sizes compare; empty sets say so."""
    if not len(values):
        axes.plot([], [], linestyle="none", label=f"{label}: empty")
        return
    weights = np.full(len(values), 1.0 / len(values))
    axes.hist(np.clip(values, edges[0], edges[-1]), bins=edges, weights=weights, alpha=0.55,
              color=color, label=f"{label} (mean {values.mean():.3f})")
