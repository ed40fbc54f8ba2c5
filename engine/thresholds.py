"""Where a score attack's decision threshold comes from when known membership is all there is.

AUROC, AUPR and TPR at a low FPR need no threshold: they come from the target's own scores on its
members and non-members (as TF Privacy's threshold attack reports them). Precision, Recall, FPR and
the MMPS columns need one:

- ``"shadow model"``: fitted on a shadow model's scores (the paper's way; the attack's own fit);
- ``"population"``: the cut that calls ``fpr`` of known non-members that are not audited members
  (``population_*`` arrays, ``--population_data``, else the held-out rows) members, as ML Privacy
  Meter's population attack does;
- ``"none"``: no such data; the decision metrics are left empty, with the reason.

Attacks that train an attack model on a shadow model's score vectors (Salem, Shokri) need the shadow.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attacks import AttackResult
from attacks.held_out_fpr import held_out_threshold

POPULATION_FPR = 0.05
DECISION_FIELDS = ("precision", "recall", "fpr", "accuracy", "tp_mmps", "fp_mmps", "fn_mmps", "tn_mmps")
NO_THRESHOLD = ("no shadow model and no known non-members to set a threshold: Precision, Recall, FPR, Accuracy "
                "and MMPS are left empty (give shadow_* arrays, population_* / held_out_* arrays, or "
                "--shadow_checkpoint / --population_data / --held_out_data)")


@dataclass(frozen=True)
class ThresholdSource:
    """How one attack decides: ``source`` (``"shadow model"``, ``"population"``, ``"none"``), the
    threshold (NaN where none), and a sentence for the report."""

    attack: str
    source: str
    threshold: float
    note: str

    def as_row(self) -> dict[str, Any]:
        return {"attack": self.attack, "threshold source": self.source, "threshold": self.threshold,
                "note": self.note}


class PopulationThreshold:
    """A fitted score attack whose decisions use another threshold: member when ``score > threshold``."""

    def __init__(self, attack: Any, threshold: float) -> None:
        self.attack, self.threshold = attack, float(threshold)
        self.name, self.spec = attack.name, attack.spec
        self.notes = getattr(attack, "notes", ())

    def score(self, probs: Any, labels: Any = None) -> np.ndarray:
        return self.attack.score(probs, labels)

    def score_and_predict(self, probs: Any, labels: Any = None) -> tuple[np.ndarray, np.ndarray]:
        scores = self.attack.score(probs, labels)
        return scores, np.asarray(scores, dtype=np.float64) > self.threshold


def population_thresholds(attacks: list, population: Any, fpr: float, what: str) -> tuple[list, list[ThresholdSource]]:
    """``attacks`` deciding at the cut that calls at most ``fpr`` of ``population`` (Scores of known
    non-members) members; ``what`` names the population in the note."""
    wrapped, sources = [], []
    for attack in attacks:
        cut = held_out_threshold(attack.score(population.probs, population.attack_labels), fpr)
        wrapped.append(PopulationThreshold(attack, cut))
        sources.append(ThresholdSource(attack.name, "population", cut,
                                       f"at {fpr:.1%} FPR on {len(population)} known non-members ({what})"))
    return wrapped, sources


def shadow_thresholds(attacks: list) -> list[ThresholdSource]:
    """The paper's way: each attack's own threshold, fitted on the shadow model's scores."""
    return [ThresholdSource(a.name, "shadow model", _own_threshold(a), "fitted on the shadow model's scores")
            for a in attacks]


def without_decisions(results: dict[str, list[AttackResult]], attacks: set[str]) -> dict[str, list[AttackResult]]:
    """``results`` with the decision metrics of ``attacks`` set to NaN (no threshold to decide with)."""
    blank = dict.fromkeys(DECISION_FIELDS, float("nan"))
    return {name: [dataclasses.replace(r, **blank) if r.attack_name in attacks else r for r in rows]
            for name, rows in results.items()}


def threshold_table(sources: list[ThresholdSource]) -> pd.DataFrame:
    """One row per score attack: where its decision threshold came from."""
    return pd.DataFrame([s.as_row() for s in sources], columns=["attack", "threshold source", "threshold", "note"])


def _own_threshold(attack: Any) -> float:
    try:
        return float(attack.decision_threshold())
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return float("nan")
