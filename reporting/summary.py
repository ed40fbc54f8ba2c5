"""The answer of a run in plain sentences, read from its tables (the console summary and the report's).

Nothing here computes a metric: it reads the attack table (``{Attack} Attack {Metric}`` columns, one
row per non-member set), the bootstrap intervals (:mod:`engine.intervals`) and the held-out
FPR table, and says what they show.
"""
from __future__ import annotations

import math
from typing import Collection

import pandas as pd

from attacks.bootstrap import Interval
from utils.naming import attack_names_of, column_name

HEADLINE_ATTACK = "Threshold"   # the paper's argument is about the threshold attack's false positives
ORIGINAL = "Original"
CHANCE = 0.5


def lookup(intervals: pd.DataFrame | None, set_name: str, attack: str, metric: str) -> Interval | None:
    """The interval of one cell of :func:`interval_table`'s output, or None."""
    if intervals is None or not len(intervals):
        return None
    hit = intervals[(intervals["set"] == set_name) & (intervals["attack"] == attack) & (intervals["metric"] == metric)]
    if not len(hit):
        return None
    row = hit.iloc[0]
    return Interval(float(row.estimate), float(row.low), float(row.high), float(row.se))


def cell(attacks: pd.DataFrame, intervals: pd.DataFrame | None, set_name: str, attack: str,
         metric: str) -> Interval | None:
    """One cell of the attack table with its bootstrap interval (a zero-width one when none is known)."""
    column = column_name(attack, metric)
    if set_name not in attacks.index or column not in attacks.columns:
        return None
    value = float(attacks.loc[set_name, column])
    if not math.isfinite(value):
        return None
    found = lookup(intervals, set_name, attack, metric)
    return Interval(value, found.low, found.high, found.se) if found else Interval(value, value, value, 0.0)


def headline_finding(attacks: pd.DataFrame, intervals: pd.DataFrame | None,
                     attack: str = HEADLINE_ATTACK, noun: str = "images",
                     decided: str = "fitted on the shadow model") -> str | None:
    """How often ``attack`` calls each non-member set "member", against the Original test ``noun``
    (``"samples"`` where the data are not images); ``decided``: where its threshold came from."""
    sets = [s for s in attacks.index if s != ORIGINAL and cell(attacks, intervals, s, attack, "FPR")]
    original = cell(attacks, intervals, ORIGINAL, attack, "FPR")
    if original is None:
        return None
    text = (f"The {attack} attack ({decided}) calls {original.text(percent=True)} of unseen "
            f"{ORIGINAL} test {noun} members (its FPR, with a bootstrap 95% interval).")
    higher = {s: cell(attacks, intervals, s, attack, "FPR") for s in sets}
    more = {s: v for s, v in higher.items() if v.low > original.high}
    rest = {s: v for s, v in higher.items() if s not in more}
    if more:
        listed = ", ".join(f"{s} {v.text(percent=True)}" for s, v in sorted(more.items(), key=lambda kv: -kv[1].estimate))
        text += f" It is fooled more often by {listed}"
        text += (f"; not more often by {', '.join(f'{s} {v.estimate:.1%}' for s, v in rest.items())}." if rest else ".")
    elif sets:
        text += (" No other set is flagged clearly more often (every interval overlaps Original's): "
                 + ", ".join(f"{s} {v.estimate:.1%}" for s, v in higher.items()) + ".")
    return text


def strongest_at_low_fpr(attacks: pd.DataFrame, intervals: pd.DataFrame | None, set_name: str = ORIGINAL,
                         metric: str = "TPR@1%FPR", flagged: Collection[str] = ()) -> str | None:
    """The attack with the highest TPR at 1% FPR on ``set_name``, with its AUROC, chosen only among
    attacks that stand out: AUROC interval above 0.5 (the estimate itself where no interval is known)
    and not in ``flagged`` (attacks whose null test failed); else a sentence saying none stands out."""
    found = {a: cell(attacks, intervals, set_name, a, metric) for a in attack_names_of(attacks.columns)}
    found = {a: v for a, v in found.items() if v is not None}
    if not found:
        return None
    aurocs = {a: cell(attacks, intervals, set_name, a, "AUROC") for a in found}
    standing = {a: v for a, v in found.items() if a not in flagged and aurocs[a] is not None and aurocs[a].low > CHANCE}
    excluded = (f" ({', '.join(sorted(set(found) & set(flagged)))} left out: null test failed)"
                if set(found) & set(flagged) else "")
    if not standing:
        return (f"No attack stands out on {set_name}: none has an AUROC interval above 0.5 and a passed null "
                f"test{excluded}.")
    best = max(standing, key=lambda a: standing[a].estimate)
    return (f"Strongest attack at 1% FPR on {set_name}: {best}, TPR {standing[best].text(percent=True)} "
            f"(AUROC {aurocs[best].text()}); 1% would be chance. Chosen among the attacks whose AUROC interval "
            f"lies above 0.5{excluded}.")


def chance_level(attacks: pd.DataFrame, intervals: pd.DataFrame | None, set_name: str = ORIGINAL) -> list[str]:
    """Attacks whose AUROC on ``set_name`` is within two bootstrap standard errors of 0.5."""
    out = []
    for attack in attack_names_of(attacks.columns):
        value = cell(attacks, intervals, set_name, attack, "AUROC")
        if value is not None and value.se > 0 and value.within_two_se_of(CHANCE):
            out.append(f"{attack} {value.estimate:.3f} (SE {value.se:.3f})")
    return out


def chance_sentence(attacks: pd.DataFrame, intervals: pd.DataFrame | None, set_name: str = ORIGINAL) -> str | None:
    """One sentence naming the attacks that are no better than chance on ``set_name`` (or None)."""
    listed = chance_level(attacks, intervals, set_name)
    if not listed:
        return None
    return (f"No better than chance on {set_name} (AUROC within two standard errors of 0.5): "
            f"{', '.join(listed)}.")
