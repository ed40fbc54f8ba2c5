"""RMIA (Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024) as one
attack: online / offline is an option (``rmia`` is offline, ``rmia_online`` the named online
variant), ``a`` and ``gamma`` are flags.

Scores are :func:`attacks.reference.rmia_scores` on the float64 softmax of the logits
(:func:`attacks.reference.softmax64`: a float32 softmax saturates at 1.0 on most samples of an
overconfident network, leaving RMIA nothing to compare); the threshold is fitted on the shadow model.
"""
from __future__ import annotations

import numpy as np

from attacks.base import AttackSpec, ReferenceAttack
from attacks.reference import ReferenceSignals, rmia_scores, softmax64
from utils.options import Option


class RmiaAttack(ReferenceAttack):
    """RMIA on reference signals; ``a`` (offline correction, in [0, 1]), ``gamma`` (> 0), ``online``."""

    name = "RMIA"

    def __init__(self, online: bool = False, a: float = 0.3, gamma: float = 1.0):
        self.online, self.a, self.gamma = online, a, gamma

    def score(self, signals: ReferenceSignals) -> np.ndarray:
        return rmia_scores(softmax64(signals.target_logits), signals.labels,
                           softmax64(signals.reference_logits), signals.reference_in,
                           softmax64(signals.population_target_logits), signals.population_labels,
                           softmax64(signals.population_reference_logits), a=self.a, gamma=self.gamma,
                           online=self.online)


RMIA = AttackSpec(
    "rmia", RmiaAttack, paper=False, uses_labels=True, needs_reference_models=True, needs_population=True,
    fixed=(("online", False),),
    params=(Option("rmia_a", "RMIA's offline correction Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2 (default "
                             "{default})", default=0.3, type=float, keyword="a", minimum=0.0, maximum=1.0),
            Option("rmia_gamma", "RMIA's likelihood-ratio threshold gamma (default {default})", default=1.0,
                   type=float, keyword="gamma", above=0.0)))
RMIA_ONLINE = RMIA.variant("rmia_online", "RMIA Online", online=True)
