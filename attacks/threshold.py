"""Threshold attack on the maximum prediction score.

A sample is a member when its highest class probability is at or above a threshold; the threshold
is the shadow ROC point that maximises TPR - FPR (Youden's J), as in Hintersdorf et al. (IJCAI 2022)
following Yeom et al. (CSF 2018) and Salem et al. (NDSS 2019).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from attacks.base import MembershipAttack


class ThresholdAttack(MembershipAttack):
    """Member when ``max(probs) >= threshold_``.

    Attributes
    ----------
    threshold_ : float
        Fitted threshold on the maximum probability. When no shadow ROC point beats chance it lies
        just above the largest shadow score, so (almost) nothing is predicted a member.
    """

    name = "Threshold"

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        scores = np.concatenate([members.max(axis=1), non_members.max(axis=1)])
        is_member = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
        fpr, tpr, thresholds = roc_curve(is_member, scores, drop_intermediate=False)
        # TPR - FPR scaled by P * N to integers, so that ties are exact; first maximum = highest
        n_pos, n_neg = len(members), len(non_members)
        youden = np.rint(tpr * n_pos) * n_neg - np.rint(fpr * n_neg) * n_pos
        threshold = float(thresholds[np.argmax(youden)])
        if not np.isfinite(threshold):  # sklearn's leading "predict nothing" point
            threshold = float(np.nextafter(scores.max(), np.inf))
        self.threshold_ = threshold

    def _score(self, probs, labels) -> np.ndarray:
        return probs.max(axis=1)

    def _decision_threshold(self) -> float:
        return self.threshold_
