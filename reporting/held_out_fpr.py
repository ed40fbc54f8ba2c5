"""The OOD/fake FPR table's figure and report section (reads the table; computes nothing new)."""
from __future__ import annotations

from pathlib import Path
from typing import Collection

import numpy as np
import pandas as pd

from attacks import ATTACKS
from attacks.held_out_fpr import HELD_OUT_LEVELS, fooled_sets
from utils.naming import held_out_column, held_out_top_column
from reporting.figures import new_figure, save_figure

FOOLED_FACTOR = 5.0   # "fooled": FPR on a set at least 5x the held-out level
PREDICTED = "predicted"   # ``Label source`` of sets scored with the target's predicted class
PREDICTED_MARK = " (pred. label)"   # after such a set's name in the figure


def with_label_note(table: pd.DataFrame, set_name: str) -> str:
    """``set_name``, followed by "(label: the target's predicted class)" where the table's ``Label
    source`` says the label-using attacks scored it with the target's predicted class."""
    if "Label source" in table.columns and set_name in table.index and table.loc[set_name, "Label source"] == PREDICTED:
        return f"{set_name} (label: the target's predicted class)"
    return set_name


def attack_names(table: pd.DataFrame) -> list[str]:
    suffix = held_out_column("", HELD_OUT_LEVELS[0])
    return [c[: -len(suffix)] for c in table.columns if c.endswith(suffix)]


CANNOT_JUDGE = ("_Cannot be judged_ means the attack gives its single highest score to more than 1% of the "
                "held-out in-distribution images (its scores saturate, e.g. many probabilities are exactly 1.0), so no "
                "threshold flags 1% of them or fewer while flagging anyone: the test cannot be run at that level. The "
                "figure marks such an attack with a cross instead of a bar; a triangle marks an FPR of exactly 0.")


def cannot_judge(table: pd.DataFrame, name: str) -> bool:
    """Whether ``name``'s only cut at <= 1% held-out FPR flags nobody, not even a member (saturated scores)."""
    column = held_out_column(name, 0.01)
    return (not fooled_sets(table, name, 0.01, FOOLED_FACTOR)
            and all(table.loc[row, column] == 0 for row in ("Members", "Held-out") if row in table.index))


def plot_held_out_fpr(table: pd.DataFrame, path: str | Path, exclude=("Members", "Held-out")) -> Path:
    """Grouped bars: for each non-member set, every attack's FPR at the 1% (solid) and 0.1% (hatched)
    held-out thresholds; the dashed line is the nominal 1%. A zero FPR is marked with a small triangle
    (so it is visible); an attack that cannot be judged at 1% gets a cross and no bar instead."""
    return save_figure(held_out_figure(table, exclude), path)


def held_out_figure(table: pd.DataFrame, exclude=("Members", "Held-out")):
    """The figure of :func:`plot_held_out_fpr` (not saved; tests read its texts)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    sets = [s for s in table.index if s not in exclude]
    names = attack_names(table)
    ticks = [s + (PREDICTED_MARK if with_label_note(table, s) != s else "") for s in sets]
    figure = new_figure(max(7.0, 1.2 * len(sets) + 3), 5.6)
    axes = figure.add_subplot()
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(sets))
    handles = []
    for i, name in enumerate(names):
        at = x + i * width
        if cannot_judge(table, name):
            axes.plot(at, np.full(len(sets), 0.03), linestyle="none", marker="x", markersize=4, color=f"C{i % 10}")
            handles.append(Line2D([], [], linestyle="none", marker="x", color=f"C{i % 10}",
                                  label=f"{name}: cannot be judged (no bar)"))
            continue
        color = f"C{i % 10}"
        values = table.loc[sets, held_out_column(name, 0.01)].to_numpy(dtype=float)
        axes.bar(at, values, width, color=color)
        axes.plot(at[values == 0], np.full(int((values == 0).sum()), 0.012), linestyle="none", marker="v",
                  markersize=3, color=color, markeredgecolor="black", markeredgewidth=0.3)
        axes.bar(at, table.loc[sets, held_out_column(name, 0.001)].to_numpy(dtype=float), width, color="none",
                 edgecolor="black", hatch="//", linewidth=0.3)
        handles.append(Patch(facecolor=color, label=name))
    line = axes.axhline(0.01, color="black", linestyle="--", linewidth=0.8)
    handles += [Line2D([], [], color="black", linestyle="--", linewidth=0.8, label="1% (nominal held-out FPR)"),
                Patch(facecolor="none", edgecolor="black", hatch="//", label="at the 0.1% threshold"),
                Line2D([], [], linestyle="none", marker="v", color="grey", markeredgecolor="black",
                       label="FPR exactly 0")]
    del line
    axes.set_xticks(x + 0.4 - width / 2, ticks, rotation=30, ha="right")
    axes.set_ylabel("FPR at the held-out threshold")
    axes.set_xlabel("non-member set" + (f"; {PREDICTED_MARK.strip()}: scored with the target's predicted class as "
                                        "label" if ticks != sets else ""))
    axes.set_ylim(0, 1.05)
    figure.suptitle("Are the attacks fooled? FPR on each set at the threshold\nthat flags 1% of held-out "
                    "in-distribution images", fontsize="medium")
    # below the axes: beside them, a tall legend runs into the centred title
    figure.legend(handles=handles, fontsize=7, ncol=min(4, len(handles)), loc="outside lower center")
    return figure


def fooled_summary(table: pd.DataFrame, flagged: Collection[str] = ()) -> str:
    """One sentence: which attacks are fooled (FPR >= 5% at the 1% held-out threshold) and by which
    sets (each set scored with the target's predicted class says so); attacks in ``flagged`` (null
    test failed) are left out and named as such."""
    fooled = {name: fooled_sets(table, name, 0.01, FOOLED_FACTOR) for name in attack_names(table)
              if name not in flagged}
    judged = [name for name in fooled if not cannot_judge(table, name)]
    hit = {name: sets for name, sets in fooled.items() if sets}
    left_out = sorted(set(attack_names(table)) & set(flagged))
    tail = f" {', '.join(left_out)} left out: null test failed." if left_out else ""
    if not hit:
        return (f"At thresholds that flag 1% of held-out in-distribution images, no attack flags "
                f"{FOOLED_FACTOR * 0.01:.0%} or more of any OOD/fake set ({len(judged)} of {len(fooled)} attacks "
                f"could be judged).{tail}")
    listed = "; ".join(f"{name} by {', '.join(with_label_note(table, s) for s in sets)}" for name, sets in hit.items())
    return (f"At thresholds that flag 1% of held-out in-distribution images, {len(hit)} of {len(judged)} judged "
            f"attacks are fooled (flag at least {FOOLED_FACTOR * 0.01:.0%} of a set): {listed}.{tail}")


def verdicts(table: pd.DataFrame, flagged: Collection[str] = ()) -> list[str]:
    """One sentence per attack: fooled (sets with FPR >= 5% at the 1% held-out threshold) or not;
    an attack in ``flagged`` (null test failed) is not judged."""
    sentences = []
    for name in attack_names(table):
        if name in flagged:
            sentences.append(f"**{name}** is not judged: its null test failed (see Null test of the reference "
                             "attacks), so its rates here measure that problem as much as the sets.")
            continue
        fooled = fooled_sets(table, name, 0.01, FOOLED_FACTOR)
        if cannot_judge(table, name):
            tied = table[held_out_top_column(name)].drop([s for s in ("Members", "Held-out") if s in table.index])
            listed = ", ".join(f"{s} {v:.0%}" for s, v in tied.items())
            sentences.append(f"**{name}** cannot be judged at 1%: {table.loc['Held-out', held_out_top_column(name)]:.0%} of "
                             f"held-out images share its top score; at that score sit {listed}. Its FPRs of 0 "
                          "in the table mean that the only cut flagging at most 1% of held-out images flags "
                          "nobody (members included), not that it resists these sets.")
            continue
        others = table[held_out_column(name, 0.01)].drop([s for s in ("Members", "Held-out", "Original") if s in table.index])
        if fooled:
            listed = ", ".join(f"{with_label_note(table, s)} {v:.1%}"
                               for s, v in sorted(fooled.items(), key=lambda kv: -kv[1]))
            sentences.append(f"**{name}** is fooled: at the threshold that flags 1% of held-out "
                             f"in-distribution non-members it flags {listed}.")
        elif len(others):
            sentences.append(f"**{name}** is not fooled: every OOD/fake set stays below "
                             f"{FOOLED_FACTOR * 0.01:.0%} FPR at its 1% held-out threshold "
                             f"(highest: {others.idxmax()} {others.max():.1%}).")
    return sentences


def report_section(table: pd.DataFrame, label_effect: pd.DataFrame | None, label_effect_set: str | None,
                   reference_note: str | None = None, intervals: pd.DataFrame | None = None,
                   flagged: Collection[str] = ()) -> str:
    """Markdown: one verdict per attack, the FPR table at the 1% held-out threshold (0.1% in the CSV),
    the label source of each set, and the effect of the predicted-class labels on one set."""
    from reporting.report import markdown_table

    names = attack_names(table)
    wide = table[[held_out_column(n, 0.01) for n in names]].rename(columns=lambda c: c[: -len(held_out_column("", 0.01))])
    if intervals is not None and len(intervals):
        from reporting.summary import lookup

        metric = held_out_column("", 0.01).strip()
        wide = wide.astype(object)
        for set_name in wide.index:
            for name in names:
                found = lookup(intervals, set_name, name, metric)
                if found is not None:
                    wide.loc[set_name, name] = f"{table.loc[set_name, held_out_column(name, 0.01)]:.4f} [{found.low:.3f}, {found.high:.3f}]"
    wide.insert(0, "label source", table["Label source"])
    wide.index.name = "set (FPR at the held-out 1% threshold; Members: TPR)"
    parts = ["For every attack, the threshold at which it calls 1% of held-out in-distribution non-members "
             "(target test rows that are not Original non-members) members; the table gives the fraction "
             "of each set it then calls members. Not fooled means every OOD/fake set stays near 1%.",
             "\n".join(f"- {sentence}" for sentence in verdicts(table, flagged))]
    if any(cannot_judge(table, name) for name in names):
        parts.append(CANNOT_JUDGE)
    parts.append(("Brackets: seeded bootstrap 95% intervals (set and held-out rows resampled).\n\n"
                  if intervals is not None and len(intervals) else "") + markdown_table(wide))
    users = [spec.display for spec in ATTACKS.values() if spec.uses_labels and spec.display in names]
    if users:
        parts.append("Sets without a label in the target's label space (`label source` = predicted) are "
                     f"scored with the target's predicted class by the label-using attacks ({', '.join(users)}).")
    if label_effect is not None and len(label_effect):
        parts.append(f"Effect of that choice on **{label_effect_set}**: the same attacks scoring it with a "
                     f"seeded random class instead of the predicted one.\n\n{markdown_table(label_effect)}")
    if reference_note:
        parts.append(reference_note)
    return "\n\n".join(parts)
