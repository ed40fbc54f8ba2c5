"""Modified-entropy attack with class-wise thresholds.

Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine Learning Models", USENIX Security
2021: ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``; a sample of class y is a
member when ``Mentr <= tau_y``, each ``tau_y`` maximising the shadow model's balanced accuracy on
its samples of class y (the first best candidate, shadow members' values before non-members').
"""
from __future__ import annotations

import numpy as np

from attacks.base import AttackSpec, MembershipAttack
from attacks.loss import TINY, label_or_predicted


def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``Mentr`` of each row of ``probs`` (N, C) for class ``labels`` (N,); returns (N,), >= 0."""
    rows = np.arange(len(probs))
    log_p = np.log(np.maximum(probs, TINY))
    log_not_p = np.log(np.maximum(1.0 - probs, TINY))
    p_y = probs[rows, labels]
    terms = -probs * log_not_p
    terms[rows, labels] = -(1.0 - p_y) * log_p[rows, labels]
    return terms.sum(axis=1)


def balanced_accuracy_threshold(member_values: np.ndarray, non_member_values: np.ndarray) -> float | None:
    """Song & Mittal's threshold on a "higher = member" value: the first candidate (members' values,
    then non-members') with the largest ``(TPR + TNR) / 2``; None without candidates."""
    candidates = np.concatenate([member_values, non_member_values])
    if not len(candidates):
        return None
    sorted_m, sorted_n = np.sort(member_values), np.sort(non_member_values)
    tpr = (len(sorted_m) - np.searchsorted(sorted_m, candidates, side="left")) / max(len(sorted_m), 1)
    tnr = np.searchsorted(sorted_n, candidates, side="left") / max(len(sorted_n), 1)
    accuracy = 0.5 * (tpr + tnr) if len(sorted_m) and len(sorted_n) else tpr + tnr
    return float(candidates[int(np.argmax(accuracy))])


class ModifiedEntropyAttack(MembershipAttack):
    """Member when ``-Mentr(probs, y) >= threshold_[y]``; ``score = -Mentr - threshold_[y]``.

    Samples without a label use the predicted class. Scores are shifted by their class's
    threshold so that one cut (0) makes every class-wise decision; a class absent from the shadow
    data uses the threshold fitted on all classes.

    Attributes
    ----------
    thresholds_ : ndarray (C,)
        Class-wise thresholds on ``-Mentr``.
    """

    name = "Modified Entropy"

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        y_m, y_n = label_or_predicted(members, member_labels), label_or_predicted(non_members, non_member_labels)
        v_m, v_n = -modified_entropy(members, y_m), -modified_entropy(non_members, y_n)
        overall = balanced_accuracy_threshold(v_m, v_n)
        thresholds = np.full(members.shape[1], overall)
        for c in range(members.shape[1]):
            fitted = balanced_accuracy_threshold(v_m[y_m == c], v_n[y_n == c])
            if fitted is not None:
                thresholds[c] = fitted
        self.thresholds_ = thresholds

    def _score(self, probs, labels) -> np.ndarray:
        y = label_or_predicted(probs, labels)
        return -modified_entropy(probs, y) - self.thresholds_[y]

    def _decision_threshold(self) -> float:
        return 0.0


MODIFIED_ENTROPY = AttackSpec("modified_entropy", ModifiedEntropyAttack, paper=False, uses_labels=True)
