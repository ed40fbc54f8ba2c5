"""An audit of checked inputs: the user's arrays as the engine's bundle, then the one evaluation.

Score attacks are fitted on the shadow blocks (when given) and applied to the target's; reference
attacks are fitted on reference model 0 standing in for the target (its IN rows as members, its OUT
rows as non-members, the other K - 1 models as its references), so they need no shadow model
(:mod:`engine.reference`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from attacks import ATTACKS
from attacks.reference import ReferenceSignals
from engine.bundle import HELD_OUT, MEMBERS, ORIGINAL, ReferenceBundle, ScoreBundle
from engine.evaluate import AuditResult, evaluate
from membership_audit.inputs import AuditInputs, ScoredBlock

DEFAULT_AUDIT_ATTACKS = tuple(ATTACKS)


def audit_inputs(inputs: AuditInputs, attacks: Sequence[str] = DEFAULT_AUDIT_ATTACKS, *, seed: int = 42,
                 attack_params: Mapping[str, Any] | None = None, config: Mapping | None = None) -> AuditResult:
    """Run every named attack whose inputs are present on ``inputs``; the others are skipped with
    their reason (CSV column ``Skipped``)."""
    return evaluate(audit_bundle(inputs), attacks, params=attack_params, seed=seed,
                    config=config or {"seed": seed, "attacks": list(attacks)})


def audit_bundle(inputs: AuditInputs) -> ScoreBundle:
    """The engine's bundle of a user's checked inputs."""
    sets = {name: block.scores for name, block in inputs.target_sets().items()}
    splits = {"target": {"train": inputs.members.scores, "test": inputs.non_members.scores}}
    if inputs.has_shadow:
        splits["shadow"] = {"train": inputs.shadow_members.scores, "test": inputs.shadow_non_members.scores}
    return ScoreBundle(
        members=inputs.members.scores, sets=sets,
        held_out=inputs.held_out.scores if inputs.held_out is not None else None,
        population=inputs.population.scores if inputs.population is not None else None,
        shadow_members=inputs.shadow_members.scores if inputs.has_shadow else None,
        shadow_non_members=inputs.shadow_non_members.scores if inputs.has_shadow else None,
        reference=_reference_bundle(inputs), splits=splits, source_index=dict(inputs.source_index))


def _reference_bundle(inputs: AuditInputs) -> ReferenceBundle | None:
    """The reference signals over the audited rows, the sets with reference logits and the held-out
    rows (the last two outside the reference population: OUT for every reference model)."""
    reference = inputs.reference
    if reference is None:
        return None
    blocks: dict[str, ScoredBlock] = {MEMBERS: inputs.members, ORIGINAL: inputs.non_members}
    block_refs = {MEMBERS: reference.logits[:, :len(inputs.members)],
                  ORIGINAL: reference.logits[:, len(inputs.members):]}
    for name, logits in reference.sets.items():
        blocks[name], block_refs[name] = inputs.sets[name], logits
    if reference.held_out is not None:
        blocks[HELD_OUT], block_refs[HELD_OUT] = inputs.held_out, reference.held_out
    bounds = np.cumsum([0] + [len(b) for b in blocks.values()])
    audited = len(inputs.members) + len(inputs.non_members)
    reference_in = np.zeros((len(reference.logits), bounds[-1]), dtype=bool)
    reference_in[:, :audited] = reference.reference_in
    labels = np.concatenate([_signal_labels(b) for b in blocks.values()])
    target_logits = np.concatenate([b.signal_logits for b in blocks.values()])
    refs = np.concatenate(list(block_refs.values()), axis=1)
    classes = target_logits.shape[1]
    z_logits, z_labels, z_refs = reference.population or (
        np.zeros((0, classes)), np.zeros(0, dtype=np.int64), np.zeros((len(refs), 0, classes)))
    signals = ReferenceSignals(target_logits, labels, refs, reference_in, z_logits, z_labels, z_refs,
                               outside_population=np.arange(bounds[-1]) >= audited)
    return ReferenceBundle(signals, {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(blocks)},
                           evaluated_rows=np.arange(audited), one_seed_for_all_attacks=True)


def _signal_labels(block: ScoredBlock) -> np.ndarray:
    """Labels for the reference signals: the given ones, else the target's predicted class."""
    scores = block.scores
    return scores.labels if scores.in_label_space else scores.probs.argmax(axis=1).astype(np.int64)
