"""Score-level membership inference attacks: fitted on shadow scores, applied to target scores.

Attacks see only probability arrays (N, C) and optional labels (N,), never a model or a data set.
"""
from attacks.base import MembershipAttack, NotFittedError
from attacks.entropy import EntropyAttack
from attacks.evaluation import (
    EXTRA_METRICS,
    FPR_LEVELS,
    PAPER_METRICS,
    AttackResult,
    evaluate_attack,
)
from attacks.base import AttackSpec
from attacks.factory import ATTACK_NAMES, ATTACKS, attack_options, build_attack
from attacks.loss import LossAttack
from attacks.modified_entropy import ModifiedEntropyAttack
from attacks.salem import SalemAttack
from attacks.shokri import ShokriAttack
from attacks.threshold import ThresholdAttack

__all__ = [
    "ATTACKS",
    "ATTACK_NAMES",
    "EXTRA_METRICS",
    "FPR_LEVELS",
    "PAPER_METRICS",
    "AttackResult",
    "AttackSpec",
    "EntropyAttack",
    "LossAttack",
    "ModifiedEntropyAttack",
    "MembershipAttack",
    "NotFittedError",
    "SalemAttack",
    "ShokriAttack",
    "ThresholdAttack",
    "attack_options",
    "build_attack",
    "evaluate_attack",
]
