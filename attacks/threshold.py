"""Threshold attack on the maximum prediction score.

A sample is a member when its highest class probability is strictly above a threshold; the
threshold is the shadow ROC point that maximises TPR - FPR (Youden's J), as in Hintersdorf et al.
(IJCAI 2022) following Yeom et al. (CSF 2018) and Salem et al. (NDSS 2019). The rule is the paper
code's: scikit-learn's ``roc_curve`` (default ``drop_intermediate``) on the shadow maxima, the
first ``argmax`` of ``tpr - fpr`` in floating point, members strictly above (``>``).
"""
from __future__ import annotations

import numpy as np

from attacks.base import AttackSpec, MembershipAttack
from attacks.youden import youden_threshold


class ThresholdAttack(MembershipAttack):
    """Member when ``max(probs) > threshold_`` (strictly above; before this package followed the
    paper's code, ties at the threshold counted as members).

    ``score`` is the maximum probability in the dtype given (float32 stays float32).

    Attributes
    ----------
    threshold_ : float
        Fitted threshold on the maximum probability (:func:`attacks.youden.youden_threshold`, ``ties="paper"``).
    """

    name = "Threshold"
    strict = True

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        self.threshold_ = youden_threshold(members.max(axis=1), non_members.max(axis=1), ties="paper")

    def _score(self, probs, labels) -> np.ndarray:
        return probs.max(axis=1)

    def _decision_threshold(self) -> float:
        return self.threshold_


THRESHOLD = AttackSpec("threshold", ThresholdAttack)
