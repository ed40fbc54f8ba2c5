"""FPR on out-of-distribution and generated sets at thresholds set on held-out in-distribution data.

For each attack, the threshold is the one at which only a fraction ``level`` (1%, 0.1%) of
held-out in-distribution non-members (rows of the target's test split not used as Original
non-members) is called a member; the table gives the fraction of each other set called a member at
that threshold. An attack that is not fooled by overconfidence stays near ``level`` on every set.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from utils.naming import held_out_column, held_out_top_column

HELD_OUT_LEVELS = (0.01, 0.001)


def held_out_threshold(held_out_scores: np.ndarray, level: float) -> float:
    """The cut ``t`` (member when ``score > t``) calling at most ``floor(level * n)`` held-out rows members.

    With fewer than ``1 / level`` held-out rows this is their maximum (0 false positives allowed).
    """
    scores = np.sort(np.asarray(held_out_scores, dtype=np.float64))
    if not len(scores):
        raise ValueError("held-out scores are empty; the FPR table needs held-out in-distribution non-members "
                         "(--test_set_size larger than --attack_set_size)")
    allowed = int(np.floor(level * len(scores) + 1e-9))
    return float(scores[len(scores) - allowed - 1])


def held_out_fpr_table(scores: Mapping[str, Mapping[str, np.ndarray]], held_out: str = "Held-out",
                       members: str = "Members", levels=HELD_OUT_LEVELS) -> pd.DataFrame:
    """Rows: every scored set (members give the TPR; the held-out row its realised FPR); one column
    per attack and level, and per attack the fraction at or above the top held-out score (which
    says how many samples tie with the most confident held-out ones when scores saturate).

    Parameters
    ----------
    scores : attack name -> set name -> scores (N,), higher = member; must include ``held_out``
    """
    rows: dict[str, dict[str, float]] = {}
    for attack, per_set in scores.items():
        for level in levels:
            cut = held_out_threshold(per_set[held_out], level)
            for set_name, values in per_set.items():
                rows.setdefault(set_name, {})[held_out_column(attack, level)] = float(np.mean(np.asarray(values) > cut))
        top = np.max(per_set[held_out])
        for set_name, values in per_set.items():
            rows[set_name][held_out_top_column(attack)] = float(np.mean(np.asarray(values) >= top))
    order = [members, held_out] + [name for name in rows if name not in (members, held_out)]
    table = pd.DataFrame.from_dict(rows, orient="index").reindex([name for name in order if name in rows])
    table.index.name = "set"
    return table


def fooled_sets(table: pd.DataFrame, attack: str, level: float = 0.01, factor: float = 5.0,
                exclude=("Members", "Held-out", "Original")) -> dict[str, float]:
    """Sets on which ``attack``'s FPR at the held-out ``level`` threshold is at least ``factor * level``."""
    name = held_out_column(attack, level)
    values = table[name].drop([e for e in exclude if e in table.index])
    return {set_name: float(v) for set_name, v in values.items() if v >= factor * level}
