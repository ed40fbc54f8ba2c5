"""Build an attack by its lowercase name (the names experiment flags and configs use)."""
from __future__ import annotations

from typing import Any

from attacks.base import MembershipAttack
from attacks.entropy import EntropyAttack
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


def build_attack(name: str, **kwargs: Any) -> MembershipAttack:
    """A new, unfitted attack, e.g. ``build_attack("salem", k=3, seed=42)``.

    ``name`` is case-insensitive; ``kwargs`` go to the attack's constructor.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid choices: {', '.join(ATTACK_NAMES)}")
    return ATTACKS[key](**kwargs)
