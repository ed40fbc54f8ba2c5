"""Scoring stage: every model over every sample once (through the score cache)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from datasets.splits.seeded import complement
from engine.scores import Scores
from pipeline.stages.data import ExperimentData
from pipeline.stages.scorer import Scorer, merge_rows
from pipeline.stages.models import ROLES
from pipeline.stages.prepared import PreparedRun


@dataclass(frozen=True)
class RunScores:
    """The probabilities every later stage reads."""

    split_scores: dict[str, dict[str, Scores]]   # role -> "members" / "non_members" / "train" / "test"
    target_scores: dict[str, Scores]             # "Members" and each non-member set
    shadow_scores: dict[str, Scores]             # "Members" and "Original"


def score_run(prepared: PreparedRun, scorers: Mapping[str, Scorer]) -> RunScores:
    """Scores of each role's splits, and of the target on the members and every non-member set."""
    split_scores = {role: score_splits(scorers[role], prepared.data, prepared.positions, role) for role in ROLES}
    target_scores = score_target_sets(prepared, scorers["target"], split_scores["target"]["members"],
                                      split_scores["target"]["non_members"])
    shadow_scores = {"Members": split_scores["shadow"]["members"], "Original": split_scores["shadow"]["non_members"]}
    return RunScores(split_scores, target_scores, shadow_scores)


def score_target_sets(prepared: PreparedRun, scorer: Scorer, members: Scores,
                      original_scores: Scores) -> dict[str, Scores]:
    """Target scores of the members and each non-member set (Original reuses its split's rows)."""
    scores = {"Members": members}
    for name, tensors in prepared.sets.items():
        scores[name] = (original_scores if tensors is prepared.original
                        else scorer(tensors, prepared.in_label_space[name]))
    return scores


def score_splits(scorer: Scorer, data: ExperimentData, positions: Mapping[str, np.ndarray],
                 role: str) -> dict[str, Scores]:
    """Scores of the attack rows and of the rest of each split: every sample exactly once."""
    out = {}
    for kind, split_name in (("members", "train"), ("non_members", "test")):
        tensors = data.splits[f"{role}_{split_name}"]
        attack_rows = positions[f"{role}_{kind}"]
        rest_rows = complement(attack_rows, len(tensors.labels))
        out[kind] = scorer(tensors.subset(attack_rows))
        parts = [(attack_rows, out[kind])]
        if len(rest_rows):
            parts.append((rest_rows, scorer(tensors.subset(rest_rows))))
        out[split_name] = merge_rows(len(tensors.labels), parts)
    return out
