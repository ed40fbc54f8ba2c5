"""The held-out FPR table (is each attack fooled by OOD/fake data?).

``held_out_results`` scores the held-out in-distribution non-members with every attack, builds the
table of :mod:`attacks.held_out_fpr`, records each set's label source and measures the effect of
labelling one out-of-label-space set with the target's predicted class (vs a random class). The
writer (:mod:`engine.write`) writes ``{stem}held_out_fpr_results.csv`` with bootstrap intervals.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from attacks import MembershipAttack
from attacks.evaluation import attack_outputs
from attacks.held_out_fpr import HELD_OUT_LEVELS, held_out_fpr_table, held_out_threshold
from attacks.roc import roc_curve_points
from engine.bundle import HELD_OUT, MEMBERS, ScoreBundle
from engine.fitting import Evaluation
from engine.intervals import HeldOutIntervals, held_out_interval_sets, with_held_out_intervals
from utils.seeding import derive_seed

LABEL_SOURCE = "Label source"


@dataclass(frozen=True)
class HeldOutResults:
    """The held-out FPR table (and with bootstrap intervals, as written) and the label-effect table."""

    table: pd.DataFrame                       # sets x "{Attack} FPR@{level}%HeldOutFPR", plus label source
    label_effect: pd.DataFrame | None         # one set: predicted-class vs random-class labels
    label_effect_set: str | None
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # attack -> set (+ "Held-out") -> scores
    intervals: HeldOutIntervals = field(default_factory=dict)   # attack -> set -> FPR level -> bootstrap interval

    @property
    def with_intervals(self) -> pd.DataFrame:
        """The table as written: each held-out FPR with its bootstrap 95% interval."""
        return with_held_out_intervals(self.table, self.intervals)


def held_out_results(bundle: ScoreBundle, evaluation: Evaluation, score_attacks: list[MembershipAttack],
                     reference, seed: int) -> HeldOutResults | None:
    """The held-out FPR table for every attack with held-out scores; None without held-out rows.

    ``reference``: the :class:`engine.reference.ReferenceResult` (or None); its attacks' outputs
    hold their ``"Held-out"`` scores.
    """
    held_out = bundle.held_out
    if held_out is None or not len(held_out):
        return None
    scores = {}
    for attack in score_attacks:
        per_set = {name: out.scores for name, out in evaluation.outputs[attack.name].items()}
        per_set[HELD_OUT] = attack_outputs(attack, held_out.probs, held_out.attack_labels).scores
        scores[attack.name] = per_set
    if reference is not None:
        for attack in reference.attacks:
            per_set = reference.outputs[attack.name]
            if HELD_OUT in per_set:
                scores[attack.name] = {name: out.scores for name, out in per_set.items()}
    if not scores:
        return None
    table = held_out_fpr_table(scores, held_out=HELD_OUT)
    table.insert(0, LABEL_SOURCE, [bundle.label_source(name) for name in table.index])
    effect_set, effect = _label_effect(bundle, score_attacks, reference, scores, seed)
    return HeldOutResults(table, effect, effect_set, scores, held_out_interval_sets(scores, seed))


def _label_effect(bundle: ScoreBundle, score_attacks: list[MembershipAttack], reference,
                  scores: dict[str, dict[str, np.ndarray]], seed: int) -> tuple[str | None, pd.DataFrame | None]:
    """For the first set outside the label space: AUROC and held-out-1% FPR of every label-using
    attack with the target's predicted class (used) and with a seeded random class instead."""
    outside = [name for name, set_scores in bundle.sets.items() if not set_scores.in_label_space]
    if not outside:
        return None, None
    name = outside[0]
    set_scores = bundle.sets[name]
    rng = np.random.default_rng(derive_seed(seed, "label_effect", name))
    random_labels = rng.integers(0, set_scores.probs.shape[1], len(set_scores))
    rows = {}
    for attack in score_attacks:
        if not (attack.spec and attack.spec.uses_labels) or attack.name not in scores:
            continue
        randomised = attack_outputs(attack, set_scores.probs, random_labels).scores
        rows[attack.name] = _effect_row(scores[attack.name][MEMBERS], scores[attack.name][name], randomised,
                                        scores[attack.name][HELD_OUT])
    if reference is not None and reference.attacks and name in bundle.reference.blocks:
        block = bundle.reference.blocks[name]
        signals = bundle.reference.target
        labels = signals.labels.copy()
        labels[block] = random_labels
        swapped = signals.with_labels(labels)          # all rows at once: online LiRA's IN-OUT gap
        for attack in reference.attacks:
            if not (attack.spec and attack.spec.uses_labels) or attack.name not in scores:
                continue
            per_set = scores[attack.name]
            rows[attack.name] = _effect_row(per_set[MEMBERS], per_set[name], attack.score(swapped)[block],
                                            per_set[HELD_OUT])
    if not rows:
        return None, None
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
