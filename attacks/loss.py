"""LOSS attack: members have a low cross-entropy loss on their label.

Yeom, Giacomelli, Fredrikson, Jha, "Privacy Risk in Machine Learning: Analyzing the Connection to
Overfitting", IEEE CSF 2018: a sample is a member when its loss is at most the model's average
training loss; here the average loss of the shadow model on its members.
"""
from __future__ import annotations

import numpy as np

from attacks.base import AttackSpec, MembershipAttack

TINY = np.finfo(np.float64).tiny  # floor of a probability before its log (a float32 softmax can give 0)


def label_or_predicted(probs: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """``labels`` where they are a class of ``probs`` (N, C), else the predicted class; returns (N,)."""
    predicted = probs.argmax(axis=1)
    if labels is None:
        return predicted
    return np.where((labels >= 0) & (labels < probs.shape[1]), labels, predicted)


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``-log p_y`` of each row (N,), with ``p_y`` floored at the smallest positive float64."""
    picked = probs[np.arange(len(probs)), labels]
    return -np.log(np.maximum(picked, TINY))


class LossAttack(MembershipAttack):
    """Member when ``cross_entropy(probs, label) <= threshold_``; ``score`` is the negative loss.

    Samples without a label (``None`` or ``-1``) use the predicted class, i.e. the loss of the
    maximum score.

    Attributes
    ----------
    threshold_ : float
        Mean cross-entropy of the shadow model on its members (Yeom et al.'s average training loss).
    """

    name = "LOSS"

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        self.threshold_ = float(cross_entropy(members, label_or_predicted(members, member_labels)).mean())

    def _score(self, probs, labels) -> np.ndarray:
        return -cross_entropy(probs, label_or_predicted(probs, labels))

    def _decision_threshold(self) -> float:
        return -self.threshold_  # score = -loss: -loss >= -t exactly when loss <= t


LOSS = AttackSpec("loss", LossAttack, paper=False, uses_labels=True)
