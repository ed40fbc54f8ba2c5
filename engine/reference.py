"""The reference-model attacks (LiRA, RMIA, ...) applied once, for every route.

Each attack's decision threshold is fitted on the shadow model where the bundle has its signals
(the preset runs), else on reference model 0 standing in for the target (its IN rows as members,
its OUT rows as non-members, the other K - 1 models as its references); then every row of the
bundle is scored. With the shadow model the run also scores it as a null target; every bundle gets
the reference models-as-targets evaluation (:mod:`engine.reference_checks`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from attacks import ATTACKS, ReferenceAttack
from attacks.evaluation import AttackOutputs
from engine.bundle import HELD_OUT, MEMBERS, ScoreBundle
from engine.manifest import timed_into
from engine.reference_checks import null_test_table, reference_as_target_table
from utils.seeding import derive_seed



@dataclass(frozen=True)
class ReferenceResult:
    """The fitted reference attacks, their outputs per set (``"Members"``, each set with reference
    signals, ``"Held-out"``), the null test (None without a shadow model) and the reference models
    as targets; ``failed``: attack display name -> why it could not run."""

    attacks: list[ReferenceAttack]
    outputs: dict[str, dict[str, AttackOutputs]]
    null_test: pd.DataFrame | None = None
    as_target: pd.DataFrame | None = None
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def temperatures(self) -> dict[str, float]:
        return {a.name: a.temperature_ for a in self.attacks if hasattr(a, "temperature_")}


def apply_reference_attacks(bundle: ScoreBundle, names: Sequence[str], params: Mapping[str, Any],
                            seed: int, timings: dict[str, float] | None = None) -> ReferenceResult:
    """Fit and apply every named reference attack on ``bundle.reference`` (see the module docstring).

    An attack that cannot score the bundle (a ValueError from its checks) is left out with its
    reason in ``failed``; the others run.
    """
    reference = bundle.reference
    signals, blocks = reference.target, reference.blocks
    if reference.shadow is not None:
        fit_on = (reference.shadow, reference.shadow_members, reference.shadow_non_members)
    else:
        evaluated = reference.evaluated_rows
        stand_in_in = signals.reference_in[0, evaluated]
        fit_on = (signals.rows(evaluated).without_model(0), np.flatnonzero(stand_in_in),
                  np.flatnonzero(~stand_in_in))
    max_probs = _max_probs_per_block(bundle, signals, blocks)
    set_names = [name for name, rows in blocks.items() if name != MEMBERS and len(rows)]
    timings = {} if timings is None else timings
    attacks, outputs, real, null, failed = [], {}, {}, {}, {}
    with timed_into(timings, "reference_attacks"):
        for name in names:
            attack = ATTACKS[name].build(params, derive_seed(seed, "attacks") if reference.one_seed_for_all_attacks
                                         else derive_seed(seed, "reference", name))
            try:
                attack.fit(*fit_on)
                scores, decisions = attack.score_and_predict(signals)
                null_scores = attack.score(reference.shadow) if reference.shadow is not None else None
            except ValueError as error:
                failed[attack.name] = f"cannot score these inputs ({error})"
                continue
            outputs[attack.name] = {set_name: AttackOutputs(scores[rows], decisions[rows], max_probs[set_name])
                                    for set_name, rows in blocks.items()}
            real[attack.name] = {s: scores[blocks[s]] for s in [MEMBERS, *set_names]}
            if null_scores is not None:
                null[attack.name] = {s: null_scores[blocks[s]] for s in [MEMBERS, *set_names]}
            attacks.append(attack)
    with timed_into(timings, "reference_evaluation"):
        null_test = null_test_table(real, null, set_names) if null else None
        as_target = (reference_as_target_table(attacks, signals, reference.evaluated_rows, signals.reference_in)
                     if attacks else None)
    return ReferenceResult(attacks, outputs, null_test, as_target, failed)


def _max_probs_per_block(bundle: ScoreBundle, signals: Any, blocks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MMPS inputs per block: the probabilities the score attacks see (calibrated ones, if any);
    the softmax of the target's logits where the bundle has no scores for a block."""
    from attacks.reference import softmax32

    given = {MEMBERS: bundle.members, **bundle.sets, HELD_OUT: bundle.held_out}
    out = {}
    for name, rows in blocks.items():
        scores = given.get(name)
        out[name] = (scores.max_probs if scores is not None and len(scores) == len(rows)
                     else softmax32(np.asarray(signals.target_logits)[rows]).max(axis=1))
    return out
