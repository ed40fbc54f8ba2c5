"""Score attacks fitted on the shadow model's scores and applied to the target's, per non-member set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from attacks import ATTACKS, AttackResult, MembershipAttack
from attacks.evaluation import AttackOutputs, attack_outputs, result_from_outputs
from engine.scores import Scores


def score_attack_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The named attacks that read the scores (their declarations need no reference models)."""
    return tuple(name for name in names if not ATTACKS[name].needs_reference_models)


def reference_attack_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The named attacks whose declarations need reference models."""
    return tuple(name for name in names if ATTACKS[name].needs_reference_models)


def fit_attacks(names: tuple[str, ...], members: Scores, non_members: Scores, *,
                params: Mapping[str, Any], seed: int, failed: dict[str, str] | None = None) -> list[MembershipAttack]:
    """Fit every named score attack on shadow members vs shadow non-members (Original).

    ``params`` holds the values of the options the attacks declare (``{"salem_k": 3}``); seeded
    attacks get ``seed``. With ``failed``, an attack whose fit raises a ValueError is left out and
    its reason recorded there (display name -> reason); without it the error propagates.
    """
    attacks = []
    for name in score_attack_names(names):
        attack = ATTACKS[name].build(params, seed)
        try:
            attack.fit(members.probs, non_members.probs, members.attack_labels, non_members.attack_labels)
        except ValueError as error:
            if failed is None:
                raise
            failed[attack.name] = f"cannot be fitted on these inputs ({error})"
            continue
        attacks.append(attack)
    return attacks


@dataclass(frozen=True)
class Evaluation:
    """Metrics per non-member set, and the attack outputs they came from (for figures)."""

    results: dict[str, list[AttackResult]]           # set -> one result per attack
    outputs: dict[str, dict[str, AttackOutputs]]     # attack name -> "Members" / set -> outputs


def evaluate_sets(attacks: list[MembershipAttack], members: Scores, non_member_sets: dict[str, Scores]) -> Evaluation:
    """Every fitted attack on target members vs each non-member set.

    Each attack scores the members and all sets in one call (labels ``-1`` where a set is outside
    the label space, which attacks treat as "no label"), then metrics are taken per set.
    """
    parts = {"Members": members, **non_member_sets}
    probs = np.concatenate([scores.probs for scores in parts.values()])
    labels = np.concatenate([scores.labels if scores.in_label_space else np.full(len(scores), -1)
                             for scores in parts.values()])
    bounds = np.cumsum([0] + [len(scores) for scores in parts.values()])
    evaluation = Evaluation({name: [] for name in non_member_sets}, {})
    for attack in attacks:
        outputs = attack_outputs(attack, probs, labels, "target scores", "target labels")
        per_set = {name: outputs.rows(bounds[i], bounds[i + 1]) for i, name in enumerate(parts)}
        evaluation.outputs[attack.name] = per_set
        for name in non_member_sets:
            evaluation.results[name].append(result_from_outputs(attack.name, per_set["Members"], per_set[name]))
    return evaluation


def with_attack_outputs(evaluation: Evaluation, outputs: Mapping[str, Mapping[str, AttackOutputs]]) -> Evaluation:
    """A new evaluation with more attacks' rows after the existing ones: ``outputs`` maps attack name
    -> "Members" / set -> outputs (extra entries, e.g. held-out rows, are not table rows)."""
    results = {name: list(rows) for name, rows in evaluation.results.items()}
    merged = dict(evaluation.outputs)
    for attack_name, per_set in outputs.items():
        merged[attack_name] = {name: per_set[name] for name in ("Members", *results)}
        for set_name in results:
            results[set_name].append(result_from_outputs(attack_name, per_set["Members"], per_set[set_name]))
    return Evaluation(results, merged)
