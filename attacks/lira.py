"""LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022) as one
attack: online / offline and the variance mode are options of one class (the LiRA authors' code makes
them parameters of one function too); ``lira`` and ``lira_offline`` are named variants.

Scores are those of :func:`attacks.reference.lira_scores` (every row from the same number of IN and
OUT models); the threshold is fitted on the shadow model.
"""
from __future__ import annotations

import numpy as np

from attacks.base import MODELS_PER_ROW, AttackSpec, ReferenceAttack
from attacks.reference import ReferenceSignals, _lira, check_lira_inputs, logit_scaled_confidence
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
    models_per_row : int or None
        A fixed number of reference models per sample (see :func:`attacks.reference.lira_scores`).
    seed : seeds the model subsets of rows with more models than the others
    """

    name = "LiRA"

    def __init__(self, online: bool = True, variance: str = "auto", models_per_row: int | None = None,
                 seed: int = 0):
        if variance not in VARIANCES:
            raise ValueError(f"--lira_variance: unknown variance {variance!r}; valid: {', '.join(VARIANCES)}")
        self.online, self.variance, self.models_per_row, self.seed = online, variance, models_per_row, seed

    def score(self, signals: ReferenceSignals) -> np.ndarray:
        k = signals.reference_logits.shape[0]
        fixed = VARIANCES[self.variance]
        if fixed is None:
            fixed = k < FIXED_VARIANCE_BELOW
        check_lira_inputs(signals.target_logits, signals.labels, signals.reference_logits, signals.reference_in,
                          self.online)
        phi, ref_phi, _, _ = signals.derived("lira", logit_scaled_confidence)
        return _lira(phi, ref_phi, signals.reference_in, self.online, fixed, signals.outside_population,
                     self.models_per_row, self.seed)


LIRA = AttackSpec(
    "lira", LiraAttack, paper=False, uses_labels=True, needs_reference_models=True, seeded=True,
    fixed=(("online", True),),
    params=(Option("lira_variance", "LiRA's Gaussian variance: auto (fixed below 64 reference models, the LiRA "
                                    "paper's advice), fixed or per_sample (default {default})",
                   default="auto", type=str, choices=tuple(VARIANCES), keyword="variance"),
            MODELS_PER_ROW))
LIRA_OFFLINE = LIRA.variant("lira_offline", "LiRA Offline", online=False)
