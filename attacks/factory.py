"""Build an attack by its lowercase name (the names experiment flags and configs use)."""
from __future__ import annotations

from typing import Any

from attacks.base import MembershipAttack
from attacks.entropy import EntropyAttack
from attacks.loss import LossAttack
from attacks.modified_entropy import ModifiedEntropyAttack
from attacks.salem import SalemAttack
from attacks.shokri import ShokriAttack
from attacks.threshold import ThresholdAttack

ATTACKS: dict[str, type[MembershipAttack]] = {  # in the paper's column order
    "threshold": ThresholdAttack,
    "salem": SalemAttack,
    "entropy": EntropyAttack,
    "shokri": ShokriAttack,
}
ATTACK_NAMES = tuple(ATTACKS)
EXTRA_ATTACKS: dict[str, type[MembershipAttack]] = {  # score attacks the paper did not run
    "loss": LossAttack,                          # Yeom et al., CSF 2018
    "modified_entropy": ModifiedEntropyAttack,   # Song & Mittal, USENIX Security 2021
}


def build_attack(name: str, **kwargs: Any) -> MembershipAttack:
    """A new, unfitted attack, e.g. ``build_attack("salem", k=3, seed=42)``.

    ``name`` is case-insensitive; ``kwargs`` go to the attack's constructor.
    """
    key = name.lower() if isinstance(name, str) else name
    known = {**ATTACKS, **EXTRA_ATTACKS}
    if key not in known:
        raise ValueError(f"unknown attack {name!r}; valid choices: {', '.join(known)}")
    return known[key](**kwargs)
