"""Reference attacks in the run, and the held-out FPR table (is each attack fooled by OOD/fake data?).

``add_reference_attacks`` appends LiRA / RMIA results to the evaluation (same columns as every
attack). ``held_out_results`` scores the held-out in-distribution non-members with every attack,
builds the table of :mod:`attacks.held_out_fpr`, records each set's label source, measures the
effect of labelling one out-of-label-space set with the target's predicted class (vs a random
class), and writes ``{stem}held_out_fpr_results.csv``. The held-out rows are in
the reference population like the members; the OOD/fake rows are outside it and scored from the
same number of OUT models.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from attacks.evaluation import attack_outputs, result_from_outputs
from attacks.held_out_fpr import HELD_OUT_LEVELS, held_out_fpr_table, held_out_threshold
from attacks.reference import REFERENCE_ATTACKS
from attacks.roc import roc_curve_points
from pipeline.reference_stage import HELD_OUT, run_reference_attacks
from pipeline.results import write_table
from pipeline.splits import complement
from utils.naming import held_out_csv_name
from utils.seeding import derive_seed

LABEL_SOURCE = "Label source"
LABEL_USING = ("Shokri", "LOSS", "Modified Entropy")   # score attacks whose output depends on the label


def score_attack_names(names) -> tuple[str, ...]:
    return tuple(name for name in names if name not in REFERENCE_ATTACKS)


def reference_attack_names(names) -> list[str]:
    return [name for name in names if name in REFERENCE_ATTACKS]


def add_reference_attacks(config, prepared, target_scores, evaluation, cache, manifest):
    """Run the named reference attacks (if any) and add their rows to ``evaluation``; returns the
    :class:`~pipeline.reference_stage.ReferenceOutcome` or None."""
    names = reference_attack_names(config.attacks)
    if not names or not config.reference_models:
        return None
    outcome = run_reference_attacks(config, prepared, target_scores, names, cache, manifest)
    for attack in outcome.attacks:
        per_set = outcome.outputs[attack.name]
        evaluation.outputs[attack.name] = {name: out for name, out in per_set.items() if name != HELD_OUT}
        for set_name in evaluation.results:
            evaluation.results[set_name].append(result_from_outputs(attack.name, per_set["Members"], per_set[set_name]))
    return outcome


@dataclass
class HeldOutResults:
    table: pd.DataFrame                       # sets x "{Attack} FPR@{level}%HeldOutFPR", plus label source
    label_effect: pd.DataFrame | None         # one set: predicted-class vs random-class labels
    label_effect_set: str | None
    files: dict = field(default_factory=dict)


def held_out_results(prepared, split_scores, target_scores, evaluation, score_attacks, reference,
                     results_dir: Path, stem: str) -> HeldOutResults | None:
    """The held-out FPR table for every attack; None when the test split has no held-out rows."""
    test = split_scores["target"]["test"]
    rows = complement(prepared.positions["target_non_members"], len(test))
    if not len(rows):
        return None
    held_out_probs, held_out_labels = test.probs[rows], test.labels[rows]
    scores = {}
    for attack in score_attacks:
        per_set = {name: out.scores for name, out in evaluation.outputs[attack.name].items()}
        per_set[HELD_OUT] = attack_outputs(attack, held_out_probs, held_out_labels).scores
        scores[attack.name] = per_set
    if reference is not None:
        for attack in reference.attacks:
            scores[attack.name] = {name: out.scores for name, out in reference.outputs[attack.name].items()}
    table = held_out_fpr_table(scores, held_out=HELD_OUT)
    sources = {name: ("label" if prepared.in_label_space.get(name, True) else "predicted")
               for name in table.index}
    table.insert(0, LABEL_SOURCE, [sources[name] for name in table.index])
    effect_set, effect = _label_effect(prepared, target_scores, evaluation, score_attacks, reference, scores)
    files = {"held_out_fpr_results": write_table(table, Path(results_dir) / held_out_csv_name(stem))}
    return HeldOutResults(table, effect, effect_set, files)


def _label_effect(prepared, target_scores, evaluation, score_attacks, reference,
                  scores) -> tuple[str | None, pd.DataFrame | None]:
    """For the first set outside the label space: AUROC and held-out-1% FPR of every label-using
    attack with the target's predicted class (used) and with a seeded random class instead."""
    outside = [name for name, in_space in prepared.in_label_space.items() if not in_space]
    if not outside:
        return None, None
    name = outside[0]
    set_scores = target_scores[name]
    rng = np.random.default_rng(derive_seed(prepared.config.seed, "label_effect", name))
    random_labels = rng.integers(0, set_scores.probs.shape[1], len(set_scores))
    rows = {}
    for attack in score_attacks:
        if attack.name not in LABEL_USING:
            continue
        randomised = attack_outputs(attack, set_scores.probs, random_labels).scores
        rows[attack.name] = _effect_row(scores[attack.name]["Members"], scores[attack.name][name], randomised,
                                        scores[attack.name][HELD_OUT])
    if reference is not None:
        block = reference.population.blocks[name]
        signals = reference.signals["target"]
        labels = signals.labels.copy()
        labels[block] = random_labels
        swapped = signals.with_labels(labels)          # all rows at once: online LiRA's IN-OUT gap
        for attack in reference.attacks:
            per_set = scores[attack.name]
            rows[attack.name] = _effect_row(per_set["Members"], per_set[name], attack.score(swapped)[block],
                                            per_set[HELD_OUT])
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "attack"
    return name, table


def _effect_row(members, predicted, randomised, held_out) -> dict[str, float]:
    cut = held_out_threshold(held_out, 0.01)
    labels = np.r_[np.ones(len(members), bool), np.zeros(len(predicted), bool)]
    return {"AUROC (predicted class)": roc_curve_points(labels, np.r_[members, predicted]).auroc,
            "AUROC (random class)": roc_curve_points(labels, np.r_[members, randomised]).auroc,
            "FPR@1%HeldOutFPR (predicted class)": float(np.mean(predicted > cut)),
            "FPR@1%HeldOutFPR (random class)": float(np.mean(randomised > cut))}


__all__ = ["HELD_OUT_LEVELS", "HeldOutResults", "add_reference_attacks", "held_out_results",
           "reference_attack_names", "score_attack_names"]
