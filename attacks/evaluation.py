"""Metrics of a fitted attack on target members (positives) and non-members (negatives)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attacks.roc import roc_curve_points
from attacks.validation import as_labels, as_probs, check_same_classes
from utils.naming import column_name

# Metric suffixes of the CSV columns "{name} Attack {metric}": the paper's, in the paper's order,
# then the ones this project adds. Writers put every attack's paper columns before any extras.
PAPER_METRICS = (
    "Precision", "Recall", "AUROC", "AUPR", "FPR@95%TPR", "FPR",
    "TP_MMPS", "FP_MMPS", "FN_MMPS", "TN_MMPS",
)
EXTRA_METRICS = ("Accuracy", "TPR@0.1%FPR", "TPR@1%FPR", "AP")
FPR_LEVELS = (0.001, 0.01)  # false-positive rates at which the TPR is reported
TPR_LEVEL = 0.95            # true-positive rate at which the FPR is reported


@dataclass(frozen=True)
class AttackResult:
    """Metrics of one attack on one member / non-member split.

    ``aupr`` is the paper's trapezoidal area under the precision-recall curve, ``average_precision``
    scikit-learn's step-wise one (CSV column ``AP``). MMPS fields are the mean maximum prediction
    score of the true-positive, false-positive, false-negative and true-negative samples (0.0 for
    an empty cell).
    """

    attack_name: str
    n_members: int
    n_non_members: int
    precision: float
    recall: float
    fpr: float
    accuracy: float
    auroc: float
    aupr: float
    fpr_at_tpr95: float
    tpr_at_fpr: dict[float, float]
    tp_mmps: float
    fp_mmps: float
    fn_mmps: float
    tn_mmps: float
    average_precision: float

    def as_row(self) -> dict[str, float]:
        """CSV columns ``"{name} Attack {metric}"``: ``PAPER_METRICS`` then ``EXTRA_METRICS``."""
        values = {
            "Precision": self.precision, "Recall": self.recall, "AUROC": self.auroc,
            "AUPR": self.aupr, "FPR@95%TPR": self.fpr_at_tpr95, "FPR": self.fpr,
            "TP_MMPS": self.tp_mmps, "FP_MMPS": self.fp_mmps,
            "FN_MMPS": self.fn_mmps, "TN_MMPS": self.tn_mmps,
            "Accuracy": self.accuracy,
            "TPR@0.1%FPR": self.tpr_at_fpr[0.001], "TPR@1%FPR": self.tpr_at_fpr[0.01],
            "AP": self.average_precision,
        }
        return {column_name(self.attack_name, m): values[m] for m in PAPER_METRICS + EXTRA_METRICS}


@dataclass(frozen=True)
class AttackOutputs:
    """What a fitted attack says about one set of samples: the inputs of every metric."""

    scores: np.ndarray      # (N,) membership scores, higher = member
    decisions: np.ndarray   # (N,) bool, True = predicted member
    max_probs: np.ndarray   # (N,) maximum prediction score, for MMPS

    def rows(self, start: int, stop: int) -> "AttackOutputs":
        """The outputs of samples ``start:stop``."""
        return AttackOutputs(self.scores[start:stop], self.decisions[start:stop], self.max_probs[start:stop])


def attack_outputs(attack: Any, probs: Any, labels: Any = None, what: str = "probs",
                   labels_what: str = "labels") -> AttackOutputs:
    """Validate ``probs`` (N, C) and ``labels`` (N,) once, then score and decide with ``attack``.

    Attacks of this package score once (``score_and_predict``); any other object with ``score`` and
    ``predict`` (the DESIGN.md API) works too.
    """
    checked = as_probs(probs, what)
    checked_labels = as_labels(labels, len(checked), labels_what, what)
    if hasattr(attack, "score_and_predict"):
        scores, decisions = attack.score_and_predict(checked, checked_labels)
    else:
        scores, decisions = attack.score(checked, checked_labels), attack.predict(checked, checked_labels)
    return AttackOutputs(np.asarray(scores, dtype=np.float64), np.asarray(decisions, dtype=bool),
                         checked.max(axis=1).astype(np.float64))


def evaluate_attack(
    attack: Any,
    member_probs: Any,
    non_member_probs: Any,
    member_labels: Any = None,
    non_member_labels: Any = None,
) -> AttackResult:
    """Evaluate a fitted attack on target scores.

    Parameters
    ----------
    attack : fitted attack with ``score_and_predict`` and ``name``
    member_probs : array (N_m, C)
        Target-model probabilities on its training samples (positives).
    non_member_probs : array (N_n, C)
        Target-model probabilities on non-members (negatives).
    member_labels, non_member_labels : int array (N_m,), (N_n,), optional

    Returns
    -------
    AttackResult
        Decisions from the attack's prediction; AUROC, AUPR, AP, FPR@95%TPR and TPR@FPR from its
        score.
    """
    members = as_probs(member_probs, "member_probs")
    non_members = as_probs(non_member_probs, "non_member_probs")
    check_same_classes(members.shape[1], non_members, "non_member_probs", "member_probs")
    return result_from_outputs(getattr(attack, "name", type(attack).__name__),
                               attack_outputs(attack, members, member_labels, "member_probs", "member_labels"),
                               attack_outputs(attack, non_members, non_member_labels, "non_member_probs",
                                              "non_member_labels"))


def result_from_outputs(attack_name: str, members: AttackOutputs, non_members: AttackOutputs) -> AttackResult:
    """All metrics of one attack from its outputs on members (positives) and non-members."""
    pred_m, pred_n = members.decisions, non_members.decisions
    tp, fp = int(pred_m.sum()), int(pred_n.sum())
    n_m, n_n = len(pred_m), len(pred_n)
    tn = n_n - fp
    is_member = np.zeros(n_m + n_n, dtype=bool)
    is_member[:n_m] = True
    roc = roc_curve_points(is_member, np.concatenate([members.scores, non_members.scores]))
    return AttackResult(
        attack_name=attack_name,
        n_members=n_m,
        n_non_members=n_n,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / n_m,
        fpr=1 - tn / n_n,  # the paper's arithmetic (1 - TNR)
        accuracy=(tp + tn) / (n_m + n_n),
        auroc=roc.auroc,
        aupr=roc.aupr_trapezoid,
        average_precision=roc.average_precision,
        fpr_at_tpr95=fpr_at_tpr(roc.fpr, roc.tpr, TPR_LEVEL),
        tpr_at_fpr={level: tpr_at_fpr(roc.fpr, roc.tpr, level) for level in FPR_LEVELS},
        tp_mmps=_mean_or_zero(members.max_probs[pred_m]),
        fp_mmps=_mean_or_zero(non_members.max_probs[pred_n]),
        fn_mmps=_mean_or_zero(members.max_probs[~pred_m]),
        tn_mmps=_mean_or_zero(non_members.max_probs[~pred_n]),
    )


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """Smallest FPR on a ROC curve (arrays from ``roc_curve``) at which TPR >= ``level``."""
    return float(fpr[tpr >= level].min())


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """Largest TPR on a ROC curve (arrays from ``roc_curve``) at which FPR <= ``level``."""
    return float(tpr[fpr <= level].max())


def _mean_or_zero(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0
