"""The OOD/fake FPR table's figure and report section (reads the table; computes nothing new)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from attacks.held_out_fpr import HELD_OUT_LEVELS, fooled_sets
from utils.naming import held_out_column, held_out_top_column
from reporting.figures import new_figure, save_figure

FOOLED_FACTOR = 5.0   # "fooled": FPR on a set at least 5x the held-out level


def attack_names(table: pd.DataFrame) -> list[str]:
    suffix = held_out_column("", HELD_OUT_LEVELS[0])
    return [c[: -len(suffix)] for c in table.columns if c.endswith(suffix)]


def plot_held_out_fpr(table: pd.DataFrame, path: str | Path, exclude=("Members", "Held-out")) -> Path:
    """Grouped bars: for each non-member set, every attack's FPR at the 1% (solid) and 0.1% (hatched)
    held-out thresholds; the dashed line is the nominal 1%."""
    sets = [s for s in table.index if s not in exclude]
    names = attack_names(table)
    figure = new_figure(max(6.0, 1.1 * len(sets) + 2), 4.0)
    axes = figure.add_subplot()
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(sets))
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        axes.bar(x + i * width, table.loc[sets, held_out_column(name, 0.01)], width, color=color, label=name)
        axes.bar(x + i * width, table.loc[sets, held_out_column(name, 0.001)], width, color="none",
                 edgecolor="black", hatch="//", linewidth=0.3)
    axes.axhline(0.01, color="black", linestyle="--", linewidth=0.8)
    axes.set_xticks(x + 0.4 - width / 2, sets, rotation=30, ha="right")
    axes.set_ylabel("FPR at held-out 1% (bars) / 0.1% (hatched) threshold")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=7, ncol=2)
    return save_figure(figure, path)


def verdicts(table: pd.DataFrame) -> list[str]:
    """One sentence per attack: fooled (sets with FPR >= 5% at the 1% held-out threshold) or not."""
    sentences = []
    for name in attack_names(table):
        fooled = fooled_sets(table, name, 0.01, FOOLED_FACTOR)
        level_column = held_out_column(name, 0.01)
        if not fooled and all(table.loc[row, level_column] == 0 for row in ("Members", "Held-out") if row in table.index):
            tied = table[held_out_top_column(name)].drop([s for s in ("Members", "Held-out") if s in table.index])
            listed = ", ".join(f"{s} {v:.0%}" for s, v in tied.items())
            sentences.append(f"**{name}** cannot be judged at 1%: {table.loc['Held-out', held_out_top_column(name)]:.0%} of "
                             f"held-out in-distribution non-members share its top score (saturated), so the only "
                             f"cut at <= 1% FPR flags nobody; at that top score sit {listed}.")
            continue
        others = table[held_out_column(name, 0.01)].drop([s for s in ("Members", "Held-out", "Original") if s in table.index])
        if fooled:
            listed = ", ".join(f"{s} {v:.1%}" for s, v in sorted(fooled.items(), key=lambda kv: -kv[1]))
            sentences.append(f"**{name}** is fooled: at the threshold that flags 1% of held-out "
                             f"in-distribution non-members it flags {listed}.")
        elif len(others):
            sentences.append(f"**{name}** is not fooled: every OOD/fake set stays below "
                             f"{FOOLED_FACTOR * 0.01:.0%} FPR at its 1% held-out threshold "
                             f"(highest: {others.idxmax()} {others.max():.1%}).")
    return sentences


def report_section(table: pd.DataFrame, label_effect: pd.DataFrame | None, label_effect_set: str | None,
                   reference_note: str | None = None) -> str:
    """Markdown: one verdict per attack, the FPR table at the 1% held-out threshold (0.1% in the CSV),
    the label source of each set, and the effect of the predicted-class labels on one set."""
    from reporting.report import markdown_table

    names = attack_names(table)
    wide = table[[held_out_column(n, 0.01) for n in names]].rename(columns=lambda c: c[: -len(held_out_column("", 0.01))])
    wide.insert(0, "label source", table["Label source"])
    wide.index.name = "set (FPR at the held-out 1% threshold; Members: TPR)"
    parts = ["For every attack, the threshold at which it calls 1% of held-out in-distribution non-members "
             "(target test rows that are not Original non-members) members; the table gives the fraction "
             "of each set it then calls members. Not fooled means every OOD/fake set stays near 1%.",
             "\n".join(f"- {sentence}" for sentence in verdicts(table)), markdown_table(wide)]
    parts.append("Sets without a label in the target's label space (`label source` = predicted) are "
                 "scored with the target's predicted class by the label-using attacks (LOSS, modified "
                 "entropy, Shokri, LiRA, RMIA).")
    if label_effect is not None and len(label_effect):
        parts.append(f"Effect of that choice on **{label_effect_set}**: the same attacks scoring it with a "
                     f"seeded random class instead of the predicted one.\n\n{markdown_table(label_effect)}")
    if reference_note:
        parts.append(reference_note)
    return "\n\n".join(parts)
