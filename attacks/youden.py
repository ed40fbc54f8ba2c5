"""Youden's J: the decision threshold that maximises TPR - FPR on shadow scores.

One function, two tie rules, both kept because each is some attack's published behaviour:

- ``"paper"`` (the Threshold attack, as the paper's code): scikit-learn's ``roc_curve`` (default
  ``drop_intermediate``) on the scores in float64, the first ``argmax`` of ``tpr - fpr`` in floating
  point; members score strictly above the threshold. When no ROC point beats chance the threshold
  is the largest score + 1 (scikit-learn < 1.3's first threshold).
- ``"highest"`` (the reference-model attacks): ``TPR - FPR`` in exact integers, ties broken towards
  the highest threshold; members score at or above it. When no threshold beats chance it lies just
  above the largest score.

In both cases nothing is predicted a member when no threshold beats chance.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.metrics import roc_curve

TieRule = Literal["paper", "highest"]
STRICT = {"paper": True, "highest": False}   # tie rule -> members strictly above (True) or at/above


def youden_threshold(member_scores: Any, non_member_scores: Any, ties: TieRule = "paper") -> float:
    """The threshold maximising TPR - FPR of ``member_scores`` (N_m,) vs ``non_member_scores`` (N_n,).

    Parameters
    ----------
    member_scores, non_member_scores : float arrays, higher = member
    ties : ``"paper"`` or ``"highest"`` (see the module docstring; :data:`STRICT` says which
        comparison decides "member" under each rule)

    Returns
    -------
    float
    """
    if ties == "paper":
        return _paper_threshold(np.asarray(member_scores), np.asarray(non_member_scores))
    if ties == "highest":
        return _highest_threshold(np.asarray(member_scores, float), np.asarray(non_member_scores, float))
    raise ValueError(f"unknown tie rule {ties!r}; valid: {', '.join(STRICT)}")


def _paper_threshold(members: np.ndarray, non_members: np.ndarray) -> float:
    # the paper's order: non-members first (the order does not change the curve)
    scores = np.concatenate([non_members, members]).astype(np.float64)
    labels = np.concatenate([np.zeros(len(non_members)), np.ones(len(members))])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    if best == 0:  # the leading "predict nothing" point
        return float(scores.max() + 1)
    return float(thresholds[best])


def _highest_threshold(members: np.ndarray, non_members: np.ndarray) -> float:
    candidates = np.unique(np.concatenate([members, non_members]))[::-1]   # high to low
    tp = len(members) - np.searchsorted(np.sort(members), candidates, side="left")
    fp = len(non_members) - np.searchsorted(np.sort(non_members), candidates, side="left")
    youden = tp * len(non_members) - fp * len(members)                     # exact integers
    best = int(np.argmax(youden))
    if youden[best] <= 0:
        return float(np.nextafter(candidates[0], np.inf))
    return float(candidates[best])
