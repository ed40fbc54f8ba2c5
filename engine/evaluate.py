"""The one evaluation: a :class:`~engine.bundle.ScoreBundle` in, an :class:`AuditResult` out.

Score attacks (declarations without ``needs_reference_models``) are fitted on the shadow model's
scores and applied to the target's; reference attacks are fitted on the shadow model's reference
signals (or on reference model 0 without one) and applied to every row (:mod:`engine.reference`).
Then the paper-layout attack table, the held-out FPR table, bootstrap intervals, per-sample scores
and the performance table. Which attack takes which route comes from its declaration, never its name.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from attacks import ATTACKS, AttackResult, MembershipAttack
from attacks.evaluation import AttackOutputs, result_from_outputs
from engine.bundle import MEMBERS, ORIGINAL, ScoreBundle
from engine.fitting import Evaluation, evaluate_sets, fit_attacks, reference_attack_names, score_attack_names
from engine.held_out import HeldOutResults, held_out_results
from engine.intervals import interval_table
from engine.manifest import timed_into
from engine.reference import ReferenceResult, apply_reference_attacks
from engine.sample_scores import sample_scores_table
from engine.thresholds import (NO_THRESHOLD, POPULATION_FPR, PopulationThreshold, ThresholdSource,
                               population_thresholds, shadow_thresholds, threshold_table, without_decisions)
from engine.tables import SKIPPED_COLUMN, attack_table, performance_rows, performance_table
from utils.seeding import derive_seed

log = logging.getLogger(__name__)

NEEDS_SHADOW = ("trains its attack model on a shadow model's score vectors: needs shadow_member_* and "
                "shadow_non_member_* arrays (model route: --shadow_checkpoint, --shadow_member_data, "
                "--shadow_non_member_data)")
ATTACKS_BY_DISPLAY = {spec.display: spec for spec in ATTACKS.values()}
NEEDS_REFERENCE = ("needs K >= 4 reference models: reference_logits and reference_in (model route: "
                   "--reference_models K --train_fn)")
NEEDS_POPULATION = ("needs RMIA's population samples z: population_logits, population_labels and "
                    "population_reference_logits (model route: --population_data)")


@dataclass
class AuditResult:
    """What an evaluation found, for every route.

    ``attack_table``: the paper's layout (one row per non-member set); ``held_out``: the held-out FPR
    tables (None without held-out rows); ``sample_scores``: one row per sample; ``intervals``:
    bootstrap 95% intervals; ``reference``: the reference attacks' checks (null test, reference
    models as targets); ``skipped_attacks``: attack -> why it did not run (``failed_attacks``: the
    subset that could not score the inputs).
    """

    attack_table: pd.DataFrame
    performance_table: pd.DataFrame
    sample_scores: pd.DataFrame
    intervals: pd.DataFrame
    results: dict[str, list[AttackResult]]
    outputs: dict[str, dict[str, AttackOutputs]]
    bundle: ScoreBundle
    attacks: list[MembershipAttack] = field(default_factory=list)
    held_out: HeldOutResults | None = None
    reference: ReferenceResult | None = None
    skipped_attacks: dict[str, str] = field(default_factory=dict)
    failed_attacks: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    slices: pd.DataFrame | None = None
    epsilon_bounds: pd.DataFrame | None = None
    thresholds: pd.DataFrame | None = None     # score attack -> where its decision threshold came from
    dp_violations: list[str] = field(default_factory=list)   # bounds above the DP epsilon: a bug somewhere

    @property
    def held_out_table(self) -> pd.DataFrame | None:
        """The held-out FPR table (without its interval columns), or None."""
        return self.held_out.table if self.held_out is not None else None

    def summary(self, opening: str | None = None) -> list[str]:
        """The opening sentences of the report and the console summary (:mod:`engine.report`)."""
        from engine.report import summary_sentences

        return summary_sentences(self, opening)

    def write(self, folder, name: str = "audit", figures: bool = True) -> dict:
        """Write every table, figure, the report and the manifest into ``folder`` as one set
        (``{name}_attack_results.csv`` ...); returns file key -> path."""
        from engine.write import write_result_set

        return write_result_set(self, folder, name, figures=figures)


def evaluate(bundle: ScoreBundle, attacks: Sequence[str], *, params: Mapping[str, Any] | None = None,
             seed: int = 42, config: Mapping | None = None, population_fpr: float = POPULATION_FPR) -> AuditResult:
    """Every named attack whose inputs the bundle has, on ``bundle``; the others are skipped with
    their reason (CSV column ``Skipped``, report, console).

    ``params``: values of the options the attacks declare (missing: the declared defaults);
    ``seed``: the run's seed (attacks, bootstrap, label effect); ``population_fpr``: without a shadow
    model, the FPR on known non-members at which the score attacks decide (:mod:`engine.thresholds`).
    """
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"--attacks: unknown {', '.join(unknown)}; valid: {', '.join(ATTACKS)}")
    values = {o.name: o.default for spec in ATTACKS.values() for o in spec.params}
    values.update(params or {})
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    score_names = score_attack_names(tuple(attacks))
    if score_names and not bundle.has_shadow:
        trained = [a for a in score_names if ATTACKS[a].trains_attack_model]
        skipped.update({ATTACKS[a].display: NEEDS_SHADOW for a in trained})
        score_names = tuple(a for a in score_names if a not in trained)
    failed: dict[str, str] = {}
    with timed_into(timings, "attacks_fit"):
        fitted, thresholds, undecided = _fit_score_attacks(bundle, score_names, values, seed, population_fpr, failed)
    with timed_into(timings, "attacks_evaluate"):
        evaluation = evaluate_sets(fitted, bundle.members, dict(bundle.sets))
        if undecided:
            evaluation = Evaluation(without_decisions(evaluation.results, undecided), evaluation.outputs)
    reference = None
    reference_names = _runnable_reference_attacks(bundle, reference_attack_names(tuple(attacks)), skipped)
    if reference_names:
        reference = apply_reference_attacks(bundle, reference_names, values, seed, timings)
        failed.update(reference.failed)
        evaluation = _with_reference_outputs(evaluation, reference)
    skipped.update(failed)
    for attack, reason in failed.items():
        log.warning("%s skipped: %s", attack, reason)
    held_out = held_out_results(bundle, evaluation, fitted, reference, seed)
    table = attack_table(evaluation.results, skipped=dict(bundle.skipped_sets),
                         order=list(bundle.row_order) if bundle.row_order is not None else None)
    table = _with_skip_reasons(table, bundle, skipped, evaluation)
    with timed_into(timings, "intervals"):
        intervals = interval_table(evaluation.outputs, held_out.intervals if held_out else None, seed)
        intervals = intervals[~(intervals["attack"].isin(undecided) & (intervals["metric"] == "FPR"))]
        slices = _slices(bundle, evaluation, seed)
    with timed_into(timings, "epsilon_bounds"):
        from attacks.epsilon_bounds import bound_violations, epsilon_bound_table

        epsilon = epsilon_bound_table(evaluation.outputs, held_out.scores if held_out else None, seed=seed,
                                      delta=bundle.dp_delta)
        violations = bound_violations(epsilon, bundle.dp_epsilon) if bundle.dp_epsilon is not None else []
    labels = {MEMBERS: bundle.members.labels, **{name: s.labels for name, s in bundle.sets.items()}}
    samples = sample_scores_table(evaluation.outputs, labels, bundle.source_index)
    samples = samples.drop(columns=[f"{name} decision" for name in undecided])
    performance = performance_table(performance_rows(bundle.splits, bundle.uncalibrated))
    notes = {"attack_notes": {a.name: list(a.notes) for a in fitted if getattr(a, "notes", None)}}
    return AuditResult(table, performance, samples, intervals, evaluation.results, evaluation.outputs, bundle,
                       fitted, held_out, reference, skipped, failed,
                       dict(config or {"seed": seed, "attacks": list(attacks)}),
                       notes={k: v for k, v in notes.items() if v}, timings=timings, slices=slices,
                       epsilon_bounds=epsilon, thresholds=threshold_table(thresholds) if thresholds else None,
                       dp_violations=violations)


def _fit_score_attacks(bundle: ScoreBundle, names: Sequence[str], params: Mapping[str, Any], seed: int,
                       population_fpr: float, failed: dict[str, str]) -> tuple[list, list[ThresholdSource], set[str]]:
    """The score attacks, ready to score and decide; where each threshold comes from; the attacks
    left without one (:mod:`engine.thresholds`).

    With a shadow model they are fitted on it (the paper's way). Without one, their score functions
    need no fit but their classes want one: they are fitted on the target's own members and Original
    rows, and that fit's threshold is never used; they decide at ``population_fpr`` on known
    non-members (the bundle's population, else its held-out rows), or not at all.
    """
    if not names:
        return [], [], set()
    attack_seed = derive_seed(seed, "attacks")
    if bundle.has_shadow:
        fitted = fit_attacks(tuple(names), bundle.shadow_members, bundle.shadow_non_members, params=params,
                             seed=attack_seed, failed=failed)
        return fitted, shadow_thresholds(fitted), set()
    own = fit_attacks(tuple(names), bundle.members, bundle.sets[ORIGINAL], params=params, seed=attack_seed,
                      failed=failed)
    for population, what in ((bundle.population, "the population samples"), (bundle.held_out, "the held-out rows")):
        if population is not None and len(population):
            fitted, sources = population_thresholds(own, population, population_fpr, what)
            return fitted, sources, set()
    never = [PopulationThreshold(attack, np.inf) for attack in own]
    return never, [ThresholdSource(a.name, "none", float("nan"), NO_THRESHOLD) for a in own], {a.name for a in own}


def _slices(bundle: ScoreBundle, evaluation: Evaluation, seed: int) -> pd.DataFrame | None:
    """Every attack's AUROC and TPR at 1% FPR per true class, confidence decile and correctness, on
    the members against ``Original`` (:func:`attacks.slices.slice_table`)."""
    from attacks.slices import slice_table

    original = bundle.sets.get(ORIGINAL)
    if original is None or not evaluation.outputs:
        return None
    members = bundle.members
    labelled = members.in_label_space and original.in_label_space
    return slice_table(evaluation.outputs, members.labels if labelled else None,
                       original.labels if labelled else None, members.probs.argmax(axis=1),
                       original.probs.argmax(axis=1), seed=seed, non_members=ORIGINAL)


def _runnable_reference_attacks(bundle: ScoreBundle, names: Sequence[str], skipped: dict[str, str]) -> list[str]:
    """The named reference attacks whose inputs the bundle has; the others go to ``skipped``."""
    reference = bundle.reference
    if not names:
        return []
    if reference is None or len(reference.target.reference_logits) < 4:
        skipped.update({ATTACKS[n].display: NEEDS_REFERENCE for n in names})
        return []
    if reference.target.population_target_logits.shape[0] == 0:
        need_z = [n for n in names if ATTACKS[n].needs_population]
        skipped.update({ATTACKS[n].display: NEEDS_POPULATION for n in need_z})
        return [n for n in names if n not in need_z]
    return list(names)


def _with_reference_outputs(evaluation: Evaluation, reference: ReferenceResult) -> Evaluation:
    """A new evaluation with the reference attacks' rows after the score attacks' (sets without
    reference signals get none; the held-out rows are not table rows)."""
    results = {name: list(rows) for name, rows in evaluation.results.items()}
    outputs = dict(evaluation.outputs)
    for attack in reference.attacks:
        per_set = reference.outputs[attack.name]
        outputs[attack.name] = {name: out for name, out in per_set.items() if name == MEMBERS or name in results}
        for set_name in results:
            if set_name in per_set:
                results[set_name].append(result_from_outputs(attack.name, per_set[MEMBERS], per_set[set_name]))
    return Evaluation(results, outputs)


def _with_skip_reasons(table: pd.DataFrame, bundle: ScoreBundle, skipped: Mapping[str, str],
                       evaluation: Evaluation) -> pd.DataFrame:
    """``table`` with the skipped attacks' reasons (and empty reference cells' reasons) added to every
    row's ``Skipped`` cell."""
    by_reason: dict[str, list[str]] = {}
    for attack, reason in skipped.items():
        by_reason.setdefault(reason, []).append(attack)
    summary = "; ".join(f"{', '.join(names)} not run: {reason}" for reason, names in by_reason.items())
    reasons = {name: "; ".join(r for r in (bundle.skipped_sets.get(name, ""), summary) if r) for name in table.index}
    for name, reason in _sets_without_reference(bundle, evaluation).items():
        reasons[name] = "; ".join(r for r in (reasons[name], reason) if r)
    if not any(reasons.values()):
        return table
    table = table.copy()
    table[SKIPPED_COLUMN] = [reasons[name] for name in table.index]
    return table


def _sets_without_reference(bundle: ScoreBundle, evaluation: Evaluation) -> dict[str, str]:
    """Rows whose reference-attack cells are empty because the set has no reference signals."""
    if bundle.reference is None:
        return {}
    ran = [a for a, per_set in evaluation.outputs.items()
           if ATTACKS_BY_DISPLAY.get(a) is not None and ATTACKS_BY_DISPLAY[a].needs_reference_models]
    return {name: f"{', '.join(ran)}: no set_{name}_reference_logits" for name in bundle.sets
            if ran and name not in bundle.reference.blocks}

