"""The audit of checked inputs through the pipeline's own stages: fit on the shadow, apply to the
target, reference attacks, held-out FPR table, per-sample scores; :class:`AuditResult` holds them.

Which attack takes which route comes from its declaration (:data:`attacks.ATTACKS`' traits), never
from its name. Score attacks (no ``needs_reference_models``) are fitted on the shadow blocks by
:func:`engine.fitting.fit_attacks` and applied by
:func:`engine.fitting.evaluate_sets`, exactly as in a preset run. Reference attacks
(``needs_reference_models``) score every row against the reference models; those that
``needs_population`` also need population samples z. Their decision threshold is fitted on
reference model 0 standing in for the target (its IN rows as members, its OUT rows as non-members,
the other K - 1 models as its references), so they need no shadow model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from attacks import ATTACKS, AttackResult
from attacks.evaluation import AttackOutputs, attack_outputs, result_from_outputs
from attacks.held_out_fpr import held_out_fpr_table
from attacks.reference import ReferenceSignals
from membership_audit.inputs import MEMBERS, ORIGINAL, AuditInputs, ScoredBlock
from engine.tables import SKIPPED_COLUMN, attack_table
from engine.sample_scores import sample_scores_table
from engine.fitting import Evaluation, evaluate_sets, fit_attacks, score_attack_names
from engine.held_out import LABEL_SOURCE
from engine.intervals import interval_table
from pipeline.stages.reference import HELD_OUT
from utils.seeding import derive_seed

DEFAULT_AUDIT_ATTACKS = tuple(ATTACKS)
NEEDS_SHADOW = ("needs a shadow model's scores: shadow_member_* and shadow_non_member_* arrays (model route: "
                "--shadow_checkpoint, --shadow_member_data, --shadow_non_member_data)")
NEEDS_REFERENCE = ("needs K >= 4 reference models: reference_logits and reference_in (model route: "
                   "--reference_models K --train_fn)")
NEEDS_POPULATION = ("needs RMIA's population samples z: population_logits, population_labels and "
                    "population_reference_logits (model route: --population_data)")


@dataclass
class AuditResult:
    """What an audit found. ``attack_table``: the paper's layout (one row per non-member set);
    ``held_out_table``: FPR on every set at thresholds set on held-out non-members (None without
    ``held_out_*``); ``sample_scores``: one row per sample; ``skipped_attacks``: attack -> why;
    ``intervals``: bootstrap 95% intervals (:func:`engine.intervals.interval_table`, as a
    preset run's ``{stem}intervals.csv``)."""

    attack_table: pd.DataFrame
    sample_scores: pd.DataFrame
    performance_table: pd.DataFrame
    held_out_table: pd.DataFrame | None
    results: dict[str, list[AttackResult]]
    outputs: dict[str, dict[str, AttackOutputs]]
    skipped_attacks: dict[str, str]
    inputs: AuditInputs
    config: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    intervals: pd.DataFrame | None = None

    def summary(self) -> list[str]:
        """The opening sentences of the report (and the CLI's summary), from the same helpers as a
        preset run's: headline finding, strongest attack at 1% FPR, chance-level attacks, OOD/fake."""
        from reporting.held_out_fpr import fooled_summary
        from reporting.summary import chance_sentence, headline_finding, strongest_at_low_fpr

        sets = [name for name in self.attack_table.index]
        sentences = [f"Audited: {len(self.inputs.members)} members against {len(sets)} non-member set(s) "
                     f"({', '.join(sets)}); {len(self.outputs)} attack(s) ran"
                     + (f", {len(self.skipped_attacks)} skipped." if self.skipped_attacks else ".")]
        for text in (headline_finding(self.attack_table, self.intervals),
                     strongest_at_low_fpr(self.attack_table, self.intervals),
                     chance_sentence(self.attack_table, self.intervals)):
            if text:
                sentences.append(text)
        if self.held_out_table is not None:
            sentences.append(fooled_summary(self.held_out_table))
        return sentences

    def write(self, folder, name: str = "audit", figures: bool = True) -> dict:
        """Write the CSVs, per-sample scores, figures, report and manifest into ``folder`` as one set
        (``{name}_attack_results.csv`` ...); returns file name -> path."""
        from membership_audit.writers import write_audit

        return write_audit(self, folder, name, figures=figures)


def audit_inputs(inputs: AuditInputs, attacks: Sequence[str] = DEFAULT_AUDIT_ATTACKS, *, seed: int = 42,
                 attack_params: Mapping[str, Any] | None = None, config: Mapping | None = None) -> AuditResult:
    """Run every named attack whose inputs are present on ``inputs``; the others are skipped with
    their reason (CSV column ``Skipped``)."""
    unknown = [a for a in attacks if a not in DEFAULT_AUDIT_ATTACKS]
    if unknown:
        raise ValueError(f"--attacks: unknown {', '.join(unknown)}; valid: {', '.join(DEFAULT_AUDIT_ATTACKS)}")
    params = {o.name: o.default for spec in ATTACKS.values() for o in spec.params}
    params.update(attack_params or {})
    skipped: dict[str, str] = {}
    score_names = score_attack_names(tuple(attacks))
    if score_names and not inputs.has_shadow:
        skipped.update({_display_name(a): NEEDS_SHADOW for a in score_names})
        score_names = ()
    members = inputs.members.scores
    target_sets = {name: block.scores for name, block in inputs.target_sets().items()}
    fitted = []
    if score_names:
        fitted = fit_attacks(score_names, inputs.shadow_members.scores, inputs.shadow_non_members.scores,
                             params=params, seed=derive_seed(seed, "attacks"))
    evaluation = evaluate_sets(fitted, members, target_sets)
    reference_names = [a for a in attacks if ATTACKS[a].needs_reference_models]
    held_out_scores = _held_out_scores(inputs, fitted)
    if reference_names:
        evaluation = _add_reference_attacks(inputs, reference_names, evaluation, held_out_scores, skipped,
                                            params, derive_seed(seed, "attacks"))
    table = attack_table(evaluation.results, order=list(target_sets))
    by_reason: dict[str, list[str]] = {}
    for attack, reason in skipped.items():
        by_reason.setdefault(reason, []).append(attack)
    summary = "; ".join(f"{', '.join(attacks_)} not run: {reason}" for reason, attacks_ in by_reason.items())
    row_reasons = {name: summary for name in table.index}
    for name, reason in _missing_set_references(inputs, evaluation).items():
        row_reasons[name] = "; ".join(r for r in (row_reasons[name], reason) if r)
    if any(row_reasons.values()):
        table[SKIPPED_COLUMN] = [row_reasons[name] for name in table.index]
    labels = {MEMBERS: members.labels, **{name: s.labels for name, s in target_sets.items()}}
    samples = sample_scores_table(evaluation.outputs, labels, inputs.source_index)
    per_set_held_out = _with_held_out_rows(evaluation, held_out_scores)
    held_out = _held_out_table(inputs, per_set_held_out)
    intervals = interval_table(evaluation.outputs, per_set_held_out or None, seed)
    return AuditResult(table, samples, _performance(inputs), held_out, evaluation.results, evaluation.outputs,
                       skipped, inputs, dict(config or {"seed": seed, "attacks": list(attacks)}),
                       intervals=intervals)


def _display_name(attack: str) -> str:
    """The CSV prefix of an attack (``"threshold"`` -> ``"Threshold"``), from its declaration."""
    return ATTACKS[attack].display


def _held_out_scores(inputs: AuditInputs, fitted: list) -> dict[str, np.ndarray]:
    if inputs.held_out is None:
        return {}
    held_out = inputs.held_out.scores
    return {attack.name: attack_outputs(attack, held_out.probs, held_out.attack_labels).scores for attack in fitted}


def _add_reference_attacks(inputs: AuditInputs, names: list[str], evaluation: Evaluation, held_out_scores: dict,
                           skipped: dict, params: Mapping[str, Any], seed: int) -> Evaluation:
    """A new evaluation with the reference attacks' rows added (sets without reference logits get none)."""
    reference = inputs.reference
    if reference is None or len(reference.logits) < 4:
        skipped.update({_display_name(n): NEEDS_REFERENCE for n in names})
        return evaluation
    if reference.population is None:
        need_z = [n for n in names if ATTACKS[n].needs_population]
        skipped.update({_display_name(n): NEEDS_POPULATION for n in need_z})
        names = [n for n in names if n not in need_z]
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
    z_logits, z_labels, z_refs = reference.population or (target_logits[:1], labels[:1], refs[:, :1])
    # the extra sets and held-out rows are OUT for every reference model: outside the reference population
    outside = np.arange(bounds[-1]) >= audited
    target = ReferenceSignals(target_logits, labels, refs, reference_in, z_logits, z_labels, z_refs,
                              outside_population=outside)
    stand_in = ReferenceSignals(refs[0, :audited], labels[:audited], refs[1:, :audited], reference_in[1:, :audited],
                                z_refs[0], z_labels, z_refs[1:])
    member_rows, non_member_rows = np.flatnonzero(reference_in[0, :audited]), np.flatnonzero(~reference_in[0, :audited])
    results = {name: list(rows) for name, rows in evaluation.results.items()}
    outputs = dict(evaluation.outputs)
    for name in names:
        attack = ATTACKS[name].build(params, seed)
        try:
            attack.fit(stand_in, member_rows, non_member_rows)
            scores, decisions = attack.score_and_predict(target)
        except ValueError as error:
            raise ValueError(f"reference_in / reference_logits: {attack.name} cannot run ({error})") from None
        per_set = {set_name: AttackOutputs(scores[bounds[i]:bounds[i + 1]], decisions[bounds[i]:bounds[i + 1]],
                                           block.scores.max_probs.astype(np.float64))
                   for i, (set_name, block) in enumerate(blocks.items())}
        if HELD_OUT in per_set:
            held_out_scores[attack.name] = per_set.pop(HELD_OUT).scores
        outputs[attack.name] = per_set
        for set_name in results:
            if set_name in per_set:
                results[set_name].append(result_from_outputs(attack.name, per_set[MEMBERS], per_set[set_name]))
    return Evaluation(results, outputs)


def _signal_labels(block: ScoredBlock) -> np.ndarray:
    """Labels for the reference signals: the given ones, else the target's predicted class."""
    scores = block.scores
    return scores.labels if scores.in_label_space else scores.probs.argmax(axis=1).astype(np.int64)


def _missing_set_references(inputs: AuditInputs, evaluation) -> dict[str, str]:
    """Rows whose reference-attack cells are empty because the set has no reference logits."""
    if inputs.reference is None:
        return {}
    reference_displays = {spec.display for spec in ATTACKS.values() if spec.needs_reference_models}
    ran = [a for a, per_set in evaluation.outputs.items() if ORIGINAL in per_set and a in reference_displays]
    return {name: f"{', '.join(ran)}: no set_{name}_reference_logits" for name in inputs.sets
            if ran and name not in inputs.reference.sets}


def _with_held_out_rows(evaluation: Evaluation, held_out_scores: dict) -> dict[str, dict[str, np.ndarray]]:
    """attack -> set (and ``"Held-out"``) -> scores, for the attacks with held-out scores."""
    return {attack: {**{name: out.scores for name, out in evaluation.outputs[attack].items()}, HELD_OUT: held_out}
            for attack, held_out in held_out_scores.items()}


def _held_out_table(inputs: AuditInputs, scores: dict) -> pd.DataFrame | None:
    if not scores:
        return None
    table = held_out_fpr_table(scores, held_out=HELD_OUT)
    sets = inputs.target_sets()
    table.insert(0, LABEL_SOURCE, ["label" if name not in sets or sets[name].scores.in_label_space else "predicted"
                                   for name in table.index])
    return table


def _performance(inputs: AuditInputs) -> pd.DataFrame:
    """The paper's performance rows: accuracy on members (train) and non-members (test), ECE, ..."""
    from calibration.metrics import model_metrics
    from engine.tables import model_metric_rows, performance_table

    values = {}
    pairs = {"target": (inputs.members, inputs.non_members), "shadow": (inputs.shadow_members, inputs.shadow_non_members)}
    for role, (train, test) in pairs.items():
        if train is None:
            continue
        for split, block in (("train", train), ("test", test)):
            values.update(model_metric_rows(model_metrics(block.scores.probs, block.scores.labels), role, split))
    return performance_table({"Value": values})
