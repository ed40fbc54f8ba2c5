"""The attacks a run can name (``--attacks``), score-based and reference-based, and how to build one."""
from __future__ import annotations

from typing import Any

from attacks.base import AttackSpec, FittedAttack
from attacks.entropy import ENTROPY
from attacks.lira import LIRA, LIRA_OFFLINE
from attacks.loss import LOSS
from attacks.modified_entropy import MODIFIED_ENTROPY
from attacks.rmia import RMIA, RMIA_ONLINE
from attacks.salem import SALEM
from attacks.shokri import SHOKRI
from attacks.threshold import THRESHOLD
from utils.options import Option

# Every attack, in table column order: the paper's four, then LOSS (Yeom et al., CSF 2018) and
# modified entropy (Song & Mittal, USENIX Security 2021), then the reference-model attacks.
# One declaration per line: attacks added on parallel branches do not conflict here.
DECLARED: tuple[AttackSpec, ...] = (
    THRESHOLD,
    SALEM,
    ENTROPY,
    SHOKRI,
    LOSS,
    MODIFIED_ENTROPY,
    LIRA,
    LIRA_OFFLINE,
    RMIA,
    RMIA_ONLINE,
)
ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in DECLARED}
ATTACK_NAMES = tuple(name for name, spec in ATTACKS.items() if spec.paper)  # the paper's attacks


def default_attack_names(reference_models: int = 0) -> tuple[str, ...]:
    """The attacks a run makes when ``--attacks`` is not given: the paper's; with reference models
    (the extended comparison) every declared attack."""
    return tuple(name for name, spec in ATTACKS.items() if spec.paper or reference_models)


def attack_options() -> list[Option]:
    """Every option the attacks declare (one flag each, shared by a declaration's variants), in attack order."""
    options: dict[str, Option] = {}
    for spec in ATTACKS.values():
        for option in spec.params:
            options.setdefault(option.name, option)
    return list(options.values())


def attack_spec(name: str) -> AttackSpec:
    """The declaration of attack ``name`` (case-insensitive); ValueError listing the valid names."""
    key = name.lower() if isinstance(name, str) else name
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid choices: {', '.join(ATTACKS)}")
    return ATTACKS[key]


def build_attack(name: str, **kwargs: Any) -> FittedAttack:
    """A new, unfitted attack, e.g. ``build_attack("salem", k=3, seed=42)`` or
    ``build_attack("lira_offline", variance="fixed")``.

    ``name`` is case-insensitive; ``kwargs`` go to the attack's constructor.
    """
    return attack_spec(name).construct(**kwargs)
