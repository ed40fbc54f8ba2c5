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
    true_positives: np.ndarray   # members scored at or above each threshold after the first
    false_positives: np.ndarray  # non-members scored at or above each threshold after the first

    @property
    def auroc(self) -> float:
        return float(np.trapezoid(self.tpr, self.fpr))

    @property
    def average_precision(self) -> float:
        """Step-wise area under the precision-recall curve (scikit-learn's definition)."""
        return float(np.sum(np.diff(self.tpr) * self.precision))

    @property
    def aupr_trapezoid(self) -> float:
        """The paper's AUPR: trapezoidal area under the precision-recall curve, computed as its code
        did with torchmetrics 0.x (``precision_recall_curve`` then ``auc(..., reorder=True)``).

        The curve: one point per distinct score from the highest down, stopping at the first that
        reaches full recall, in reverse, then the point (recall 0, precision 1); all in float32.
        ``reorder=True`` sorts the recalls with torch's default (unstable) sort before the
        trapezoidal rule; this is done here too, so points of equal recall (a score step that adds
        only non-members) come in the order torch's sort gives them (stable up to 16 points). When
        member scores are distinct and such points keep the curve's order or its reverse, the
        result is the area along the curve; otherwise the order moves it, typically by ~1e-4.
        """
        import torch
        tps = np.float32(self.true_positives)
        precision = tps / (tps + np.float32(self.false_positives))
        recall = tps / tps[-1]
        last = int(np.argmax(tps == tps[-1]))  # first point at full recall
        recall = torch.from_numpy(np.append(recall[last::-1], np.float32(0)))
        precision = torch.from_numpy(np.append(precision[last::-1], np.float32(1)))
        recall, order = torch.sort(recall)
        return float(torch.trapezoid(precision[order], recall))


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
        true_positives=true_positives,
        false_positives=false_positives,
    )


def _from_zero(rates: np.ndarray) -> np.ndarray:
    """``rates`` with a leading 0 (the point where nothing is predicted positive)."""
    out = np.empty(len(rates) + 1)
    out[0], out[1:] = 0.0, rates
    return out
