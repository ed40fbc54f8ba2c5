"""ROC curves of each attack, one curve per non-member set, on linear and log-log axes (side by side).

The log-log view is the one that matters for membership inference (Carlini et al., 2022,
"Membership Inference Attacks From First Principles"): an attack is only a threat if it finds
members at a low false-positive rate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from attacks.evaluation import tpr_at_fpr
from attacks.roc import roc_curve_points
from reporting.figures import legend_below, new_figure, place_axes, safe_name, save_figure

ScorePair = tuple[np.ndarray, np.ndarray]


def plot_roc_curves(attack_scores: Mapping[str, Mapping[str, ScorePair]], out_dir: str | Path,
                    stem: str = "") -> list[Path]:
    """One PNG per attack, ``{stem}roc_{attack}.png``: its ROC curves on linear axes (left) and on
    log-log axes (right), one curve per non-member set, under one legend.

    Parameters
    ----------
    attack_scores : mapping attack name -> mapping non-member set name -> (member, non-member)
        Attack scores, arrays of shape ``(N_m,)`` and ``(N_n,)``; higher means "member".
        A set with an empty side has no ROC curve; it is listed in the legend as undefined.
    out_dir : folder for the PNGs (created when missing)
    stem : file-name prefix, e.g. the run's result stem ``resnet18_cifar10_``

    Returns
    -------
    list of Path
        The files written, one per attack, in the order of ``attack_scores``.
    """
    out_dir = Path(out_dir)
    written, figure, shape = [], None, None
    for attack_name, sets in attack_scores.items():
        curves = {set_name: _roc(attack_name, set_name, *pair) for set_name, pair in sets.items()}
        title = f"ROC of the {attack_title(attack_name)}"
        if figure is not None and _shape(curves) == shape:
            redraw_roc_figure(figure, curves, title)   # an axis' ticks are built once: the costly part
        else:
            if figure is not None:
                figure.clear()
            figure, shape = roc_figure(curves, title), _shape(curves)
        written.append(save_figure(figure, out_dir / f"{stem}roc_{safe_name(attack_name)}.png", keep=True))
    if figure is not None:
        figure.clear()
    return written


def _shape(curves: Mapping[str, tuple | None]) -> tuple:
    """What a figure drawn for ``curves`` fixes: the sets, which have a curve, the log axes' floor."""
    return tuple((name, None if curve is None else curve[3]) for name, curve in curves.items())


def attack_title(attack_name: str) -> str:
    """``"Threshold Attack"`` or ``"Threshold"`` -> ``"Threshold attack"`` (the word once)."""
    name = attack_name[: -len(" Attack")] if attack_name.lower().endswith(" attack") else attack_name
    return f"{name} attack"


def _roc(attack_name: str, set_name: str, members, non_members) -> tuple | None:
    """``(fpr, tpr, auroc, n_non_members)``, or ``None`` when one side is empty."""
    members = np.asarray(members, dtype=np.float64).ravel()
    non_members = np.asarray(non_members, dtype=np.float64).ravel()
    if not len(members) or not len(non_members):
        return None
    if not (np.isfinite(members).all() and np.isfinite(non_members).all()):
        raise ValueError(f"{attack_name} attack scores on {set_name!r} contain NaN or inf; "
                         "ROC curves need finite scores")
    curve = roc_curve_points(np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)],
                             np.r_[members, non_members])
    return curve.fpr, curve.tpr, curve.auroc, len(non_members)


# inches: each panel is square; the margins hold tick labels, axis labels and titles
PANEL, LEFT, GAP, RIGHT, TOP, BELOW = 4.0, 0.85, 1.0, 0.3, 0.7, 0.65
LABEL_OFFSET = 0.35   # inches from a panel's lower edge to the top of its x label
VIEWS = ("linear axes", "log-log axes: the low-FPR end")


def roc_figure(curves: Mapping[str, tuple | None], title: str):
    """The ROC figure (not saved): linear (left) and log-log (right) panels, one curve per set in
    each; the legend, below both, gives each set's AUROC and TPR at 1% FPR."""
    width = LEFT + 2 * PANEL + GAP + RIGHT
    figure = new_figure(width, TOP + PANEL + BELOW, layout=None)
    linear, loglog = (place_axes(figure, LEFT + i * (PANEL + GAP), BELOW, PANEL, PANEL) for i in range(2))
    for axes in (linear, loglog):
        for _ in curves:
            axes.plot([], [], linewidth=1.2)
    floor = min([1.0] + [1.0 / curve[3] for curve in curves.values() if curve is not None])
    low = floor / 2
    linear.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
    loglog.plot([low, 1], [low, 1], color="grey", linestyle="--", linewidth=0.8)
    linear.set(xlim=(0, 1), ylim=(0, 1.01))
    loglog.set(xscale="log", yscale="log", xlim=(low, 1.05), ylim=(low, 1.05))
    for axes, view in zip((linear, loglog), VIEWS):
        # placed, not found: matplotlib's automatic placement measures every tick label first
        axes.set_xlabel("false-positive rate")
        axes.xaxis.set_label_coords(0.5, -LABEL_OFFSET / PANEL)
        axes.set_ylabel("true-positive rate")
        axes.yaxis.set_label_coords(-(LEFT - 0.25) / PANEL, 0.5)
        axes.set_title(view, fontsize="medium", y=1.0)
    linear.grid(True, alpha=0.3)
    loglog.grid(True, alpha=0.3, which="both")
    _fill(linear, loglog, curves)
    legend_below(figure, *linear.get_legend_handles_labels(), columns=(2, 1))
    figure.suptitle(title, y=1 - 0.12 / figure.get_figheight(), va="top")
    return figure


def redraw_roc_figure(figure, curves: Mapping[str, tuple | None], title: str) -> None:
    """Show ``curves`` in a figure :func:`roc_figure` made for curves of the same :func:`_shape`."""
    linear, loglog = figure.axes
    _fill(linear, loglog, curves)
    for text, line in zip(figure.legends[0].get_texts(), linear.get_lines()):
        text.set_text(line.get_label())
    figure.suptitle(title, y=1 - 0.12 / figure.get_figheight(), va="top")


def _fill(linear, loglog, curves: Mapping[str, tuple | None]) -> None:
    """Each set's curve into its line of both panels (the first ``len(curves)`` lines of each)."""
    for (set_name, curve), line, log_line in zip(curves.items(), linear.get_lines(), loglog.get_lines()):
        if curve is None:
            line.set(data=([], []), linestyle="none", label=f"{set_name} (no samples: undefined)")
            log_line.set(data=([], []), linestyle="none")
            continue
        fpr, tpr, auroc, _ = curve
        keep = (fpr > 0) & (tpr > 0)  # log axes cannot show zeros
        line.set(data=(fpr, tpr), label=f"{set_name}: AUROC {auroc:.3f}, TPR@1%FPR {tpr_at_fpr(fpr, tpr, 0.01):.3f}")
        log_line.set_data(fpr[keep], tpr[keep])
