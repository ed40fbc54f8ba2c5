"""ROC curves of each attack, one curve per non-member set, on linear and log-log axes.

The log-log view is the one that matters for membership inference (Carlini et al., 2022,
"Membership Inference Attacks From First Principles"): an attack is only a threat if it finds
members at a low false-positive rate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from attacks.evaluation import tpr_at_fpr
from reporting.figures import new_figure, safe_name, save_figure

ScorePair = tuple[np.ndarray, np.ndarray]


def plot_roc_curves(attack_scores: Mapping[str, Mapping[str, ScorePair]], out_dir: str | Path,
                    stem: str = "") -> list[Path]:
    """Two PNGs per attack: ``{stem}roc_{attack}.png`` (linear) and ``{stem}roc_{attack}_loglog.png``.

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
        The files written, linear then log-log for each attack, in the order of ``attack_scores``.
    """
    out_dir = Path(out_dir)
    written = []
    for attack_name, sets in attack_scores.items():
        curves = {set_name: _roc(attack_name, set_name, *pair) for set_name, pair in sets.items()}
        base = out_dir / f"{stem}roc_{safe_name(attack_name)}"
        title = attack_title(attack_name)
        written.append(save_figure(roc_figure(curves, f"ROC of the {title}", loglog=False),
                                   base.with_name(base.name + ".png")))
        written.append(save_figure(roc_figure(curves, f"ROC of the {title} (log-log)", loglog=True),
                                   base.with_name(base.name + "_loglog.png")))
    return written


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
    truth = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    scores = np.concatenate([members, non_members])
    fpr, tpr, _ = roc_curve(truth, scores)
    return fpr, tpr, roc_auc_score(truth, scores), len(non_members)


def roc_figure(curves: Mapping[str, tuple | None], title: str, loglog: bool):
    """The ROC figure (not saved): one curve per set; the legend, below the axes, gives each set's
    AUROC and TPR at 1% FPR."""
    figure = new_figure(5.5, 5.0 + 0.22 * len(curves))
    axes = figure.add_subplot()
    floor = 1.0
    for set_name, curve in curves.items():
        if curve is None:
            axes.plot([], [], linestyle="none", label=f"{set_name} (no samples: undefined)")
            continue
        fpr, tpr, auroc, n_negatives = curve
        label = f"{set_name}: AUROC {auroc:.3f}, TPR@1%FPR {tpr_at_fpr(fpr, tpr, 0.01):.3f}"
        if loglog:
            keep = (fpr > 0) & (tpr > 0)  # log axes cannot show zeros
            axes.plot(fpr[keep], tpr[keep], label=label, linewidth=1.2)
            floor = min(floor, 1.0 / n_negatives)
        else:
            axes.plot(fpr, tpr, label=label, linewidth=1.2)
    if loglog:
        axes.set_xscale("log")
        axes.set_yscale("log")
        low = floor / 2
        axes.plot([low, 1], [low, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
        axes.set_xlim(low, 1.05)
        axes.set_ylim(low, 1.05)
    else:
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.01)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_title(title)
    axes.grid(True, alpha=0.3, which="both" if loglog else "major")
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    return figure
