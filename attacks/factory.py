"""The score attacks a run can name (``--attacks``), and how to build one."""
from __future__ import annotations

from typing import Any

from attacks.base import AttackSpec, MembershipAttack
from attacks.entropy import ENTROPY
from attacks.loss import LOSS
from attacks.modified_entropy import MODIFIED_ENTROPY
from attacks.salem import SALEM
from attacks.shokri import SHOKRI
from attacks.threshold import THRESHOLD
from utils.options import Option

# The score attacks: the paper's four in its column order, then LOSS (Yeom et al., CSF 2018) and
# modified entropy (Song & Mittal, USENIX Security 2021). Reference-model attacks (LiRA, RMIA) need
# reference models and live in :mod:`attacks.reference`.
ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in (THRESHOLD, SALEM, ENTROPY, SHOKRI, LOSS,
                                                               MODIFIED_ENTROPY)}
ATTACK_NAMES = tuple(name for name, spec in ATTACKS.items() if spec.paper)  # the paper's attacks


def attack_options() -> list[Option]:
    """Every option the attacks declare (one flag each), in attack order."""
    return [option for spec in ATTACKS.values() for option in spec.params]


def build_attack(name: str, **kwargs: Any) -> MembershipAttack:
    """A new, unfitted attack, e.g. ``build_attack("salem", k=3, seed=42)``.

    ``name`` is case-insensitive; ``kwargs`` go to the attack's constructor.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid choices: {', '.join(ATTACKS)}")
    return ATTACKS[key].attack_class(**kwargs)
