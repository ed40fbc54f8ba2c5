"""LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022) as one
attack: online / offline and the variance mode are options of one class (the LiRA authors' code makes
them parameters of one function too); ``lira`` and ``lira_offline`` are named variants.

Scores are :func:`attacks.reference.lira_scores`; the threshold is fitted on the shadow model.
"""
from __future__ import annotations

import numpy as np

from attacks.base import AttackSpec, ReferenceAttack
from attacks.reference import ReferenceSignals, lira_scores
from utils.options import Option

FIXED_VARIANCE_BELOW = 64  # LiRA paper: a global variance is better with fewer reference models
VARIANCES = {"auto": None, "fixed": True, "per_sample": False}   # --lira_variance -> fixed_variance


class LiraAttack(ReferenceAttack):
    """LiRA on reference signals.

    Parameters
    ----------
    online : bool
        Likelihood ratio IN vs OUT (True) or the one-sided test against OUT (False).
    variance : ``"auto"``, ``"fixed"`` or ``"per_sample"``
        ``"auto"``: fixed below :data:`FIXED_VARIANCE_BELOW` reference models (the LiRA paper's advice).
    """

    name = "LiRA"

    def __init__(self, online: bool = True, variance: str = "auto"):
        if variance not in VARIANCES:
            raise ValueError(f"--lira_variance: unknown variance {variance!r}; valid: {', '.join(VARIANCES)}")
        self.online, self.variance = online, variance

    def score(self, signals: ReferenceSignals) -> np.ndarray:
        fixed = VARIANCES[self.variance]
        if fixed is None:
            fixed = signals.reference_logits.shape[0] < FIXED_VARIANCE_BELOW
        return lira_scores(signals.target_logits, signals.labels, signals.reference_logits,
                           signals.reference_in, online=self.online, fixed_variance=fixed)


LIRA = AttackSpec(
    "lira", LiraAttack, paper=False, uses_labels=True, needs_reference_models=True, fixed=(("online", True),),
    params=(Option("lira_variance", "LiRA's Gaussian variance: auto (fixed below 64 reference models, the LiRA "
                                    "paper's advice), fixed or per_sample (default {default})",
                   default="auto", type=str, choices=tuple(VARIANCES), keyword="variance"),))
LIRA_OFFLINE = LIRA.variant("lira_offline", "LiRA Offline", online=False)
