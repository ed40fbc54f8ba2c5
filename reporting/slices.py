"""The report section on slices (reads :func:`attacks.slices.slice_table`'s table; computes nothing new)."""
from __future__ import annotations

import pandas as pd

from attacks.slices import MIN_SLICE, TPR_COLUMN

SECTION_TITLE = "Which samples leak most?"


def ranked_slices(table: pd.DataFrame) -> pd.DataFrame:
    """The slices that can be ranked (not ``all``, not marked as small or empty), most exposed first:
    highest AUROC, then highest TPR at 1% FPR, then by attack and slice name (a stable order)."""
    ranked = table[(table["slice_kind"] != "all") & (table["note"] == "") & table["AUROC"].notna()]
    return ranked.sort_values(["AUROC", TPR_COLUMN, "attack", "slice"], ascending=[False, False, True, True],
                              kind="mergesort")


def slices_section(table: pd.DataFrame, csv_name: str | None = None, top: int = 5) -> str:
    """Markdown: the most exposed slice first (against the same attack on all samples), then the
    ``top`` most exposed slices, and how many slices are too small to rank.

    Parameters
    ----------
    table : :func:`attacks.slices.slice_table`'s long table
    csv_name : the file holding every slice (named in the text)
    top : rows of the table of most exposed slices
    """
    from reporting.report import markdown_table

    ranked = ranked_slices(table)
    if ranked.empty:
        return (f"No slice has at least {MIN_SLICE} members and {MIN_SLICE} non-members, so none is ranked."
                + (f" Every slice: `{csv_name}`." if csv_name else ""))
    first = ranked.iloc[0]
    overall = table[(table["attack"] == first["attack"]) & (table["slice_kind"] == "all")]
    against = (f" (all samples: {overall['AUROC'].iloc[0]:.3f})" if len(overall) else "")
    parts = [f"Most exposed slice: **{first['slice']}** ({first['slice_kind']}) under the {first['attack']} attack, "
             f"AUROC {_interval(first, 'AUROC')}{against}, TPR at 1% FPR {_interval(first, TPR_COLUMN, True)}; "
             f"{first['n_members']} members, {first['n_non_members']} non-members."]
    shown = ranked.head(top)
    frame = pd.DataFrame({"attack": shown["attack"].values, "slice": shown["slice"].values,
                          "members": shown["n_members"].values, "non-members": shown["n_non_members"].values,
                          "AUROC [95%]": [_interval(row, "AUROC") for _, row in shown.iterrows()],
                          "TPR@1%FPR [95%]": [_interval(row, TPR_COLUMN, True) for _, row in shown.iterrows()]})
    parts.append(f"The {len(shown)} most exposed of {len(ranked)} ranked slices (per true class, per decile of "
                 f"the target's maximum probability, correctly vs wrongly classified; brackets: seeded "
                 f"bootstrap 95% intervals):\n\n" + markdown_table(frame, index=False))
    small = table[(table["slice_kind"] != "all") & (table["note"] != "")]
    if len(small):
        parts.append(f"{len(small)} slice(s) with fewer than {MIN_SLICE} members or non-members are not ranked "
                     f"(marked in the `note` column).")
    if csv_name:
        parts.append(f"Every slice of every attack: `{csv_name}`.")
    return "\n\n".join(parts)


def _interval(row: pd.Series, column: str, percent: bool = False) -> str:
    values = row[column], row[f"{column} low"], row[f"{column} high"]
    if percent:
        return f"{100 * values[0]:.1f}% [{100 * values[1]:.1f}, {100 * values[2]:.1f}]"
    return f"{values[0]:.3f} [{values[1]:.3f}, {values[2]:.3f}]"
