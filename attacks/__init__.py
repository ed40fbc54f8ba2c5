"""Membership inference attacks: fitted on the shadow model, applied to the target's scores.

Score attacks see only probability arrays (N, C) and optional labels (N,); reference attacks see
the signals of K reference models (:class:`attacks.reference.ReferenceSignals`); never a model or
a data set. Every attack is declared once (:class:`AttackSpec`) in :data:`ATTACKS`.
"""
from attacks.base import FittedAttack, MembershipAttack, NotFittedError, ReferenceAttack
from attacks.entropy import EntropyAttack
from attacks.evaluation import (
    EXTRA_METRICS,
    FPR_LEVELS,
    PAPER_METRICS,
    AttackResult,
    evaluate_attack,
)
from attacks.base import AttackSpec
from attacks.factory import (ATTACK_NAMES, ATTACKS, attack_options, attack_spec, build_attack,
                             default_attack_names)
from attacks.lira import LiraAttack
from attacks.rmia import RmiaAttack
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
    "FittedAttack",
    "LiraAttack",
    "LossAttack",
    "ModifiedEntropyAttack",
    "MembershipAttack",
    "NotFittedError",
    "ReferenceAttack",
    "RmiaAttack",
    "SalemAttack",
    "ShokriAttack",
    "ThresholdAttack",
    "attack_options",
    "attack_spec",
    "build_attack",
    "default_attack_names",
    "evaluate_attack",
]
