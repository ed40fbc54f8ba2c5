"""ROC and precision-recall summaries from one sort of the scores.

The same quantities as scikit-learn's ``roc_curve(drop_intermediate=False)``, ``roc_auc_score`` and
``average_precision_score`` (tests check agreement), without their per-call input validation,
which dominated the evaluation of many attacks on small sets; and the paper's AUPR, the
trapezoidal area under the precision-recall curve.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RocCurve:
    """Points of the ROC curve at every distinct score, from the highest threshold down.

    ``fpr[0] == tpr[0] == 0`` (nothing predicted positive); ``thresholds[0]`` is ``inf``.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    precision: np.ndarray  # precision at each point after the first

    @property
    def auroc(self) -> float:
        return float(np.trapezoid(self.tpr, self.fpr))

    @property
    def average_precision(self) -> float:
        """Step-wise area under the precision-recall curve (scikit-learn's definition)."""
        return float(np.sum(np.diff(self.tpr) * self.precision))

    @property
    def aupr_trapezoid(self) -> float:
        """The paper's AUPR: trapezoidal area under the precision-recall curve.

        The curve of torchmetrics' ``precision_recall_curve`` (as scikit-learn's before 1.1): the
        point ``(recall 0, precision 1)``, then one point per distinct score from the highest down,
        stopping at the first that reaches full recall; the area is taken along the curve in that
        order. (The paper's ``auc(..., reorder=True)`` first sorted the recalls with torch 1.8's
        unstable sort, which can only reorder points of equal recall; with distinct member scores
        the area is the same whether such points keep the curve's order or its reverse, as a
        stable sort gives.)
        """
        recall = self.tpr[1:]
        last = int(np.argmax(recall >= 1.0))  # first point at full recall
        recall = np.concatenate([[0.0], recall[:last + 1]])
        precision = np.concatenate([[1.0], self.precision[:last + 1]])
        return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1])) / 2)


def roc_curve_points(is_positive: np.ndarray, scores: np.ndarray) -> RocCurve:
    """ROC of ``scores`` (higher = positive) against boolean ``is_positive``; both shape ``(N,)``.

    Raises ValueError when one of the two classes is missing (the curve is undefined).
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both members and non-members")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_positive = scores[order], is_positive[order]
    last_of_each_score = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1])
    last_of_each_score = np.append(last_of_each_score, len(scores) - 1)
    true_positives = np.cumsum(sorted_positive)[last_of_each_score]
    false_positives = last_of_each_score + 1 - true_positives
    return RocCurve(
        fpr=_from_zero(false_positives / n_neg),
        tpr=_from_zero(true_positives / n_pos),
        thresholds=np.append(np.inf, sorted_scores[last_of_each_score]),
        precision=true_positives / (last_of_each_score + 1),
    )


def _from_zero(rates: np.ndarray) -> np.ndarray:
    """``rates`` with a leading 0 (the point where nothing is predicted positive)."""
    out = np.empty(len(rates) + 1)
    out[0], out[1:] = 0.0, rates
    return out
