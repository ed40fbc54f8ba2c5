"""Entropy attack: members tend to get confident, low-entropy prediction vectors.

Salem et al., "ML-Leaks", NDSS 2019 (threshold on the Shannon entropy of the score vector).
"""
from __future__ import annotations

import numpy as np

from attacks.base import MembershipAttack


def shannon_entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``probs`` (N, C), with 0 * log 0 = 0; returns (N,)."""
    safe = np.where(probs > 0, probs, 1.0)
    return -np.sum(probs * np.log(safe), axis=1)


class EntropyAttack(MembershipAttack):
    """Member when ``entropy(probs) <= threshold_``; ``score`` is the negative entropy.

    The threshold maximises attack accuracy on the shadow data as given (so on balanced shadow sets,
    the usual case, it is the balanced accuracy); among equally good thresholds the smallest is used.

    Attributes
    ----------
    threshold_ : float
        Fitted entropy threshold (nats). Below every shadow entropy when predicting nobody a member
        is the most accurate choice.
    """

    name = "Entropy"

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        h_members = np.sort(shannon_entropy(members))
        h_non_members = np.sort(shannon_entropy(non_members))
        candidates = np.unique(np.concatenate([h_members, h_non_members]))
        true_pos = np.searchsorted(h_members, candidates, side="right")  # members with H <= t
        false_pos = np.searchsorted(h_non_members, candidates, side="right")
        correct = true_pos + (len(h_non_members) - false_pos)
        best = int(np.argmax(correct))
        if correct[best] > len(h_non_members):
            self.threshold_ = float(candidates[best])
        else:  # predicting nobody a member is at least as accurate
            self.threshold_ = float(np.nextafter(candidates[0], -np.inf))

    def _score(self, probs, labels) -> np.ndarray:
        return -shannon_entropy(probs)

    def _decision_threshold(self) -> float:
        return -self.threshold_  # score = -entropy: -H >= -t exactly when H <= t
