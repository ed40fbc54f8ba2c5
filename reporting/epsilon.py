"""The empirical-privacy view: every attack's epsilon lower bound with each non-member set as the
non-members (:func:`attacks.epsilon_bounds.epsilon_bound_table`), as a figure, a report section and
one summary sentence. Original holds the honest bound (true in-distribution non-members); every other
set shows how OOD, perturbed or generated "non-members" move it."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from reporting.figures import new_figure, save_figure

HONEST = "Original"


def wide_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """Sets x attacks: the searched epsilon lower bound (rows in the table's set order)."""
    wide = table.pivot(index="set", columns="attack", values="epsilon")
    return wide.reindex(index=list(dict.fromkeys(table["set"])), columns=list(dict.fromkeys(table["attack"])))


def plot_epsilon_bounds(table: pd.DataFrame, path: str | Path, dp_epsilon: float | None = None) -> Path:
    """Grouped bars: per non-member set, every attack's epsilon lower bound; a line at the DP epsilon."""
    wide = wide_bounds(table)
    sets, attacks = list(wide.index), list(wide.columns)
    fig = new_figure(max(7.0, 1.2 * len(sets) + 3), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(attacks), 1)
    for i, attack in enumerate(attacks):
        ax.bar(np.arange(len(sets)) + (i - (len(attacks) - 1) / 2) * width, wide[attack].fillna(0).to_numpy(),
               width, label=attack)
    if dp_epsilon is not None:
        ax.axhline(dp_epsilon, color="black", linestyle="--", linewidth=1, label=f"DP epsilon {dp_epsilon:g}")
    ax.set_xticks(np.arange(len(sets)), sets, rotation=20, ha="right")
    ax.set_ylabel("epsilon lower bound")
    confidence, delta = table["confidence"].iloc[0], table["delta"].iloc[0]
    ax.set_title(f"Epsilon lower bound per non-member set ({confidence:.0%} confidence, delta {delta:g})\n"
                 f"{HONEST}: true non-members; the others: what dishonest non-members make of it", fontsize=8)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def epsilon_sentence(table: pd.DataFrame | None, dp_epsilon: float | None = None,
                     violations: Sequence[str] = ()) -> str | None:
    """One summary sentence: the honest bound, the set that moves it most, and the DP check."""
    if table is None or not len(table) or HONEST not in set(table["set"]):
        return None
    honest = table[table["set"] == HONEST].sort_values("epsilon", ascending=False).iloc[0]
    confidence, delta = honest["confidence"], honest["delta"]
    best = (f"{honest['epsilon']:.2f} ({honest['attack']}" if honest["epsilon"] > 0
            else "0 (no attack bounds it above 0")
    text = (f"Empirical privacy: the largest epsilon lower bound on {HONEST} (true non-members) is "
            f"{best}; {confidence:.0%} confidence, delta {delta:g})")
    others = table[table["set"] != HONEST]
    if len(others):
        worst = others.sort_values("epsilon", ascending=False).iloc[0]
        if worst["epsilon"] > honest["epsilon"]:
            text += (f"; with {worst['set']} as the non-members it would be {worst['epsilon']:.2f} "
                     f"({worst['attack']}): dishonest non-members inflate the empirical epsilon")
    text += "."
    if dp_epsilon is not None:
        text += (f" DP check failed: {len(violations)} bound(s) above the accountant's epsilon {dp_epsilon:g}."
                 if violations else f" Every bound on {HONEST} stays below the accountant's epsilon {dp_epsilon:g}.")
    return text


def epsilon_section(table: pd.DataFrame, csv_name: str | None = None, dp_epsilon: float | None = None,
                    violations: Sequence[str] = ()) -> str:
    """Markdown: what the bound means, the DP check, the sets x attacks table and the CSV link."""
    from reporting.report import markdown_table

    first = table.iloc[0]
    parts = [f"A (epsilon, delta)-DP training algorithm bounds every membership test by TPR <= e^epsilon FPR + "
             f"delta. Each attack's scores give a one-sided {first['confidence']:.0%} lower bound on epsilon "
             f"({first['method']}, delta {first['delta']:g}; the threshold is chosen on a seeded half of the "
             f"rows and the bound computed on the other half, so the stated confidence holds: correction "
             f"`{first['correction']}`). On {HONEST} (true in-distribution non-members) no valid DP claim may "
             f"lie below it; on the other sets the 'non-members' are not drawn like the members, and the "
             f"bound measures that difference, not privacy."]
    if dp_epsilon is not None:
        parts.append("\n".join(f"- {v}" for v in violations) if violations else
                     f"Every attack's bound on {HONEST} stays below the DP accountant's epsilon {dp_epsilon:g}.")
    parts.append(markdown_table(wide_bounds(table)))
    if csv_name:
        parts.append(f"Thresholds, TPR/FPR and the bounds at the held-out thresholds: [{csv_name}]({csv_name})")
    return "\n\n".join(parts)
