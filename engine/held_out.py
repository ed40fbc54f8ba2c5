"""The held-out FPR table (is each attack fooled by OOD/fake data?).

``held_out_results`` scores the held-out in-distribution non-members with every attack,
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

from attacks.evaluation import attack_outputs
from attacks.held_out_fpr import HELD_OUT_LEVELS, held_out_fpr_table, held_out_threshold
from attacks.roc import roc_curve_points
from attacks import MembershipAttack
from engine.intervals import with_held_out_intervals
from engine.scores import Scores
from engine.fitting import Evaluation
from pipeline.stages.prepared import PreparedRun
from pipeline.stages.reference import HELD_OUT, ReferenceOutcome
from engine.tables import write_table
from datasets.splits.seeded import complement
from utils.naming import held_out_csv_name
from utils.seeding import derive_seed

LABEL_SOURCE = "Label source"


@dataclass(frozen=True)
class HeldOutResults:
    """The held-out FPR table, the label-effect table and the file they were written to."""

    table: pd.DataFrame                       # sets x "{Attack} FPR@{level}%HeldOutFPR", plus label source
    label_effect: pd.DataFrame | None         # one set: predicted-class vs random-class labels
    label_effect_set: str | None
    files: dict[str, Path] = field(default_factory=dict)
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # attack -> set (+ "Held-out") -> scores


def held_out_results(prepared: PreparedRun, split_scores: dict[str, dict[str, Scores]],
                     target_scores: dict[str, Scores], evaluation: Evaluation,
                     score_attacks: list[MembershipAttack], reference: ReferenceOutcome | None,
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
    csv_table = with_held_out_intervals(table, scores, prepared.config.seed)  # bootstrap 95% columns
    files = {"held_out_fpr_results": write_table(csv_table, Path(results_dir) / held_out_csv_name(stem))}
    return HeldOutResults(table, effect, effect_set, files, scores)


def _label_effect(prepared: PreparedRun, target_scores: dict[str, Scores], evaluation: Evaluation,
                  score_attacks: list[MembershipAttack], reference: ReferenceOutcome | None,
                  scores: dict[str, dict[str, np.ndarray]]) -> tuple[str | None, pd.DataFrame | None]:
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
        if not (attack.spec and attack.spec.uses_labels):
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
            if not (attack.spec and attack.spec.uses_labels):
                continue
            per_set = scores[attack.name]
            rows[attack.name] = _effect_row(per_set["Members"], per_set[name], attack.score(swapped)[block],
                                            per_set[HELD_OUT])
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "attack"
    return name, table


def _effect_row(members: np.ndarray, predicted: np.ndarray, randomised: np.ndarray,
                held_out: np.ndarray) -> dict[str, float]:
    cut = held_out_threshold(held_out, 0.01)
    labels = np.r_[np.ones(len(members), bool), np.zeros(len(predicted), bool)]
    return {"AUROC (predicted class)": roc_curve_points(labels, np.r_[members, predicted]).auroc,
            "AUROC (random class)": roc_curve_points(labels, np.r_[members, randomised]).auroc,
            "FPR@1%HeldOutFPR (predicted class)": float(np.mean(predicted > cut)),
            "FPR@1%HeldOutFPR (random class)": float(np.mean(randomised > cut))}


__all__ = ["HELD_OUT_LEVELS", "HeldOutResults", "held_out_results"]
