"""Reliability diagrams: accuracy per confidence bin against the diagonal of perfect calibration.

Metrics come from :mod:`calibration.metrics`; this module only draws them. Figures use
matplotlib's object API on the Agg canvas (no pyplot state, no display needed) and are written
atomically (a temporary file beside the target, then ``os.replace``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from calibration.metrics import N_BINS, calibration_bins, expected_calibration_error
from utils.files import atomic_path

Curve = tuple  # (name: str, probs (N, K), labels (N,))


def plot_reliability_diagram(probs, labels, path: str | Path, title: str,
                             n_bins: int = N_BINS) -> Path:
    """Save the reliability diagram of ``probs`` ``(N, K)`` against ``labels`` ``(N,)``.

    Bars: accuracy per confidence bin; red hatching: the gap to the bin's mean confidence;
    dashed line: perfect calibration. The title carries the ECE. Returns ``path``.
    """
    return plot_reliability_curves([("", probs, labels)], path, title, n_bins)


def plot_reliability_curves(curves: Sequence[Curve], path: str | Path, title: str,
                            n_bins: int = N_BINS) -> Path:
    """Several ``(name, probs, labels)`` curves in one diagram, e.g. before/after calibration.

    Each curve gets its own bars side by side within a bin; the legend names each with its ECE
    (with one curve, the ECE goes in the title). The format follows the suffix of ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_reliability_curves needs at least one (name, probs, labels) curve")
    path = Path(path)
    figure = Figure(figsize=(5, 5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    width = 1.0 / n_bins / len(curves)
    eces = []
    for position, (name, probs, labels) in enumerate(curves):
        bins = calibration_bins(probs, labels, n_bins)
        ece = expected_calibration_error(probs, labels, n_bins)
        eces.append(ece)
        left = bins.edges[:-1] + position * width
        filled = bins.counts > 0
        label = f"{name} (ECE {ece:.3f})" if name else "accuracy"
        axes.bar(left[filled], bins.accuracy[filled], width=width, align="edge", alpha=0.8,
                 edgecolor="black", linewidth=0.5, label=label)
        if len(curves) == 1:
            axes.bar(left[filled], bins.confidence[filled] - bins.accuracy[filled],
                     bottom=bins.accuracy[filled], width=width, align="edge", color="red",
                     alpha=0.25, hatch="//", edgecolor="red", linewidth=0.5, label="gap")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (max. probability)", ylabel="accuracy",
             title=f"{title}\nECE = {eces[0]:.4f}" if len(curves) == 1 else title)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=(path.suffix.lstrip(".") or "png").lower())
    return path

