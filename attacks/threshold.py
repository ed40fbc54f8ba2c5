"""Threshold attack on the maximum prediction score.

A sample is a member when its highest class probability is strictly above a threshold; the
threshold is the shadow ROC point that maximises TPR - FPR (Youden's J), as in Hintersdorf et al.
(IJCAI 2022) following Yeom et al. (CSF 2018) and Salem et al. (NDSS 2019). The rule is the paper
code's: scikit-learn's ``roc_curve`` (default ``drop_intermediate``) on the shadow maxima, the
first ``argmax`` of ``tpr - fpr`` in floating point, members strictly above (``>``).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from attacks.base import AttackSpec, MembershipAttack


def youden_threshold(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """The paper's threshold: ``roc_curve`` thresholds at the first ``argmax(tpr - fpr)``.

    Parameters
    ----------
    member_scores, non_member_scores : float arrays (N_m,), (N_n,)
        Shadow scores, higher = member; compared in float64 (float32 values convert exactly).

    Returns
    -------
    float
        The threshold; members are the scores strictly above it. When no ROC point beats chance
        it is the largest score + 1 (scikit-learn < 1.3's first threshold; newer versions put
        ``inf`` there), so nothing is predicted a member.
    """
    # the paper's order: non-members first (the order does not change the curve)
    scores = np.concatenate([non_member_scores, member_scores]).astype(np.float64)
    labels = np.concatenate([np.zeros(len(non_member_scores)), np.ones(len(member_scores))])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    if best == 0:  # the leading "predict nothing" point
        return float(scores.max() + 1)
    return float(thresholds[best])


class ThresholdAttack(MembershipAttack):
    """Member when ``max(probs) > threshold_`` (strictly above; before this package followed the
    paper's code, ties at the threshold counted as members).

    ``score`` is the maximum probability in the dtype given (float32 stays float32).

    Attributes
    ----------
    threshold_ : float
        Fitted threshold on the maximum probability (see :func:`youden_threshold`).
    """

    name = "Threshold"
    strict = True

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        self.threshold_ = youden_threshold(members.max(axis=1), non_members.max(axis=1))

    def _score(self, probs, labels) -> np.ndarray:
        return probs.max(axis=1)

    def _decision_threshold(self) -> float:
        return self.threshold_


THRESHOLD = AttackSpec("threshold", ThresholdAttack)
