"""Bootstrap 95% intervals of a run's headline numbers (:mod:`attacks.bootstrap`).

``interval_table`` gives, per attack and non-member set, AUROC, TPR at 1% and 0.1% FPR and the FPR
of the attack's decisions, plus the FPR at each held-out threshold; it becomes
``{stem}intervals.csv``. ``with_held_out_intervals`` adds ``... 95% low`` / ``... 95% high`` columns
to the held-out FPR table. The held-out intervals are resampled once (:func:`held_out_interval_sets`)
and serve both. Every resampling is seeded from ``--seed``, the attack and the set.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from attacks.bootstrap import FPR_LEVELS, RESAMPLES, Interval, attack_intervals, held_out_intervals
from utils.naming import held_out_column
from utils.seeding import derive_seed

COLUMNS = ("set", "attack", "metric", "estimate", "low", "high", "se")
MEMBERS, HELD_OUT = "Members", "Held-out"


HeldOutIntervals = Mapping[str, Mapping[str, Mapping[float, Interval]]]   # attack -> set -> FPR level -> interval


def interval_table(attack_outputs: Mapping, held_out: HeldOutIntervals | None, seed: int,
                   resamples: int = RESAMPLES) -> pd.DataFrame:
    """Long table ``set, attack, metric, estimate, low, high, se``.

    Parameters
    ----------
    attack_outputs : attack -> ``"Members"`` / set -> :class:`attacks.evaluation.AttackOutputs`
    held_out : :func:`held_out_interval_sets`; None when the run has no held-out rows
    seed : the run's ``--seed``
    """
    rows = []
    for attack, per_set in attack_outputs.items():
        members = per_set[MEMBERS]
        for set_name, outputs in per_set.items():
            if set_name == MEMBERS:
                continue
            found = attack_intervals(members.scores, outputs.scores, outputs.decisions,
                                     seed=derive_seed(seed, "bootstrap", attack, set_name), resamples=resamples)
            rows += [_row(set_name, attack, metric, value) for metric, value in found.items()]
    for attack, per_set in (held_out or {}).items():
        for set_name, found in per_set.items():
            rows += [_row(set_name, attack, held_out_column("", level).strip(), value)
                     for level, value in found.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def with_held_out_intervals(table: pd.DataFrame, held_out: HeldOutIntervals) -> pd.DataFrame:
    """``table`` (the held-out FPR table) with ``{column} 95% low`` and ``{column} 95% high`` appended
    for every ``{attack} FPR@{level}%HeldOutFPR`` column (NaN on the held-out row itself), from
    :func:`held_out_interval_sets`."""
    table = table.copy()
    for attack, found in held_out.items():
        for level in FPR_LEVELS:
            column = held_out_column(attack, level)
            for side in ("low", "high"):
                table[f"{column} 95% {side}"] = [getattr(found[name][level], side) if name in found else np.nan
                                                 for name in table.index]
    return table


def held_out_interval_sets(held_out_scores: Mapping, seed: int, resamples: int = RESAMPLES) -> HeldOutIntervals:
    """Bootstrap intervals of each attack's FPR on each set at its held-out thresholds.

    ``held_out_scores``: attack -> set -> scores, with ``"Held-out"``."""
    found = {}
    for attack, per_set in held_out_scores.items():
        held_out = per_set[HELD_OUT]
        found[attack] = {name: held_out_intervals(values, held_out, resamples=resamples,
                                                  seed=derive_seed(seed, "bootstrap_held_out", attack, name))
                         for name, values in per_set.items() if name != HELD_OUT}
    return found


def _row(set_name: str, attack: str, metric: str, value: Interval) -> dict:
    return {"set": set_name, "attack": attack, "metric": metric, "estimate": value.estimate,
            "low": value.low, "high": value.high, "se": value.se}
