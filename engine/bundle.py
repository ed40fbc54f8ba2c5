"""What every route hands the engine: one typed bundle of scores with known membership.

A preset run (:mod:`pipeline.run`) builds it from the splits, models and non-member sets it
prepared; a user audit (:mod:`membership_audit`) from a scores file or a model and data. The
engine (:func:`engine.evaluate.evaluate`) reads nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from engine.scores import Scores

MEMBERS, ORIGINAL, HELD_OUT = "Members", "Original", "Held-out"


@dataclass(frozen=True)
class ReferenceBundle:
    """K reference models' signals over every scored row, for LiRA / RMIA.

    Attributes
    ----------
    target : attacks.reference.ReferenceSignals
        The target's and the reference models' logits on every scored row (members, each set,
        held-out rows), the membership ``reference_in`` (K, rows) and RMIA's population z.
    blocks : set name -> row positions in ``target`` (``"Members"``, each set, ``"Held-out"``);
        sets without reference logits have no block (their reference-attack cells stay empty).
    shadow : the same rows with the shadow model as the target, or None. With it the attacks'
        thresholds are fitted on the shadow model (rows ``shadow_members`` / ``shadow_non_members``)
        and the shadow model is scored as a null target; without it the threshold is fitted on
        reference model 0 standing in for the target (its IN rows of ``evaluated_rows`` as members).
    evaluated_rows : rows in the reference population scored with each reference model as the target
        (the LiRA and RMIA papers' evaluation).
    """

    target: Any
    blocks: Mapping[str, np.ndarray]
    evaluated_rows: np.ndarray
    shadow: Any = None
    shadow_members: np.ndarray | None = None
    shadow_non_members: np.ndarray | None = None
    # True: every reference attack is seeded with the score attacks' seed (how audits have always
    # seeded them); False: one seed per attack (how preset runs have); kept so neither route's numbers move
    one_seed_for_all_attacks: bool = False


@dataclass(frozen=True)
class ScoreBundle:
    """The scores an evaluation reads.

    Attributes
    ----------
    members : the target's scores on its training members
    sets : non-member set name -> the target's scores (``"Original"`` first: in-distribution)
    held_out : more in-distribution non-members (the held-out FPR table's thresholds), or None
    shadow_members, shadow_non_members : a shadow model's scores, for the attacks fitted on one
    reference : reference-model signals (:class:`ReferenceBundle`), or None
    population : the target's scores on known non-members that are not audited (population samples),
        for the score attacks' decision thresholds when there is no shadow model; or None
    splits : role (``"target"``, ``"shadow"``) -> ``"train"`` / ``"test"`` -> scores, for the
        performance table (a preset's whole splits; an audit's members and non-members)
    uncalibrated : the performance rows before calibration (column ``Uncalibrated``), or None
    source_index : set name -> each row's position in its source (per-sample file)
    row_order : attack-table rows in order, skipped sets included (default: ``sets``)
    skipped_sets : row name -> why a requested set could not be evaluated
    data_kind : what a sample is, in sentences (``"images"``, ``"samples"``)
    dp_epsilon, dp_delta : a DP guarantee to check the attacks' epsilon lower bounds against
    """

    members: Scores
    sets: Mapping[str, Scores]
    held_out: Scores | None = None
    shadow_members: Scores | None = None
    shadow_non_members: Scores | None = None
    reference: ReferenceBundle | None = None
    population: Scores | None = None
    splits: Mapping[str, Mapping[str, Scores]] = field(default_factory=dict)
    uncalibrated: Mapping[str, float] | None = None
    source_index: Mapping[str, np.ndarray] = field(default_factory=dict)
    row_order: tuple[str, ...] | None = None
    skipped_sets: Mapping[str, str] = field(default_factory=dict)
    data_kind: str = "images"
    dp_epsilon: float | None = None     # the DP accountant's epsilon of the target (DP-SGD), or a claimed one
    dp_delta: float = 1e-5              # delta of dp_epsilon and of the epsilon lower bounds

    @property
    def has_shadow(self) -> bool:
        return self.shadow_members is not None and self.shadow_non_members is not None

    @property
    def num_classes(self) -> int:
        return self.members.probs.shape[1]

    def label_source(self, name: str) -> str:
        """``"label"`` where set ``name`` has labels in the target's label space, else ``"predicted"``
        (the attacks that need a label use the target's predicted class)."""
        scores = self.sets.get(name)
        return "label" if scores is None or scores.in_label_space else "predicted"
