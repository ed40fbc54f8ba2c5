"""Metrics of the attack table from raw membership scores (e.g. ``lira_scores``' output)."""
from __future__ import annotations

from typing import Any

import numpy as np

from attacks import AttackResult
from attacks.evaluation import AttackOutputs, result_from_outputs


def score_metrics(member_scores: Any, non_member_scores: Any, threshold: float | None = None, *,
                  name: str = "Scores", member_max_probs: Any = None,
                  non_member_max_probs: Any = None) -> AttackResult:
    """Every metric of the attack table for scores ``(M,)`` of members and ``(N,)`` of non-members
    (higher = member), with decisions ``score >= threshold``.

    ``threshold`` defaults to the one maximising TPR - FPR on these very scores (an optimistic,
    oracle choice: fit it on other data for an honest precision / recall / FPR; AUROC, AUPR and
    TPR@FPR do not depend on it). The MMPS columns need the maximum prediction scores of the
    samples (``*_max_probs``); without them they are 0.
    """
    from attacks.youden import youden_threshold

    members = np.asarray(member_scores, dtype=np.float64).reshape(-1)
    non_members = np.asarray(non_member_scores, dtype=np.float64).reshape(-1)
    for what, values in (("member_scores", members), ("non_member_scores", non_members)):
        if not len(values) or not np.isfinite(values).all():
            raise ValueError(f"{what}: need a non-empty array of finite scores, got {len(values)} values")
    cut = youden_threshold(members, non_members, ties="highest") if threshold is None else float(threshold)

    def outputs(scores, max_probs):
        peaks = np.zeros(len(scores)) if max_probs is None else np.asarray(max_probs, dtype=np.float64)
        return AttackOutputs(scores, scores >= cut, peaks)

    return result_from_outputs(name, outputs(members, member_max_probs), outputs(non_members, non_member_max_probs))
