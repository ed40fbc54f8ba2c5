"""Our result tables against the ones the paper's authors published (shipped in ``paper_results/``).

The published files use the same layout as ours: one row per non-member set, one column per
``{Attack} {Metric}``, file ``{stem}attack_results.csv`` with ``stem`` such as
``resnet18_cifar10_`` or ``resnet18_cifar10_LS_0.0083_``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from utils.naming import ATTACK_SUFFIX, PERFORMANCE_SUFFIX

PAPER_RESULTS_DIR = Path(__file__).resolve().parent / "paper_results"
COMPARISON_COLUMNS = ("set", "column", "ours", "paper", "difference", "status")
BOTH, OURS_ONLY, PAPER_ONLY = "both", "only ours", "only paper"
_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def paper_stems() -> list[str]:
    """Stems with a published attack table, e.g. ``["efficient_net_cifar10_", ...]``."""
    return sorted(path.name[: -len(ATTACK_SUFFIX)] for path in PAPER_RESULTS_DIR.glob(f"*{ATTACK_SUFFIX}"))


def paper_table(stem: str) -> pd.DataFrame | None:
    """The published attack table for ``stem`` (index: non-member set), or ``None`` if there is none."""
    return _read(stem, ATTACK_SUFFIX)


def paper_performance_table(stem: str) -> pd.DataFrame | None:
    """The published performance table for ``stem`` (only Stanford Dogs runs have one), or ``None``."""
    return _read(stem, PERFORMANCE_SUFFIX)


def _read(stem: str, suffix: str) -> pd.DataFrame | None:
    if not _STEM.match(stem):
        raise ValueError(f"result stem {stem!r} must be a file-name prefix of letters, digits, "
                         f"'_', '.', '-', e.g. 'resnet18_cifar10_'; published: {', '.join(paper_stems())}")
    path = PAPER_RESULTS_DIR / f"{stem}{suffix}"
    return pd.read_csv(path, index_col=0) if path.is_file() else None


def set_key(name) -> str:
    """Key that matches set names across spellings: ``"CIFAR-100"``, ``"CIFAR100"``, ``"AFHQ Dogs"``."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame, decimals: int | None = 6) -> pd.DataFrame:
    """Cell-by-cell comparison of two result tables, long format.

    Rows (sets) are matched by :func:`set_key`, so ``"CIFAR100"`` meets ``"CIFAR-100"``; columns
    must match exactly. A label repeated in one table counts once (its first row or column).

    Parameters
    ----------
    ours, paper : tables with sets as index and ``{Attack} {Metric}`` columns
    decimals : round the difference to this many decimals (``None``: no rounding). The published
        values have four, so the default only removes floating-point noise.

    Returns
    -------
    DataFrame
        Columns ``set, column, ours, paper, difference, status``: one line per cell of either table.
        ``status`` is ``"both"`` (``difference = ours - paper``), ``"only ours"`` or ``"only paper"``
        (the other side and the difference are NaN), so nothing missing is dropped silently.
        ``set`` is our spelling when both have the row. ``attrs["missing"]`` lists the rows and
        columns found in only one table.
    """
    ours, paper = _unique(ours), _unique(paper)
    our_keys = {set_key(name): name for name in ours.index}
    paper_keys = {set_key(name): name for name in paper.index}
    keys = list(our_keys) + [key for key in paper_keys if key not in our_keys]
    columns = list(ours.columns) + [column for column in paper.columns if column not in ours.columns]

    lines = []
    for key in keys:
        our_row, paper_row = our_keys.get(key), paper_keys.get(key)
        for column in columns:
            has_ours = our_row is not None and column in ours.columns
            has_paper = paper_row is not None and column in paper.columns
            if not (has_ours or has_paper):  # a row of one table crossed with a column of the other
                continue
            mine = _number(ours.at[our_row, column]) if has_ours else np.nan
            theirs = _number(paper.at[paper_row, column]) if has_paper else np.nan
            status = BOTH if has_ours and has_paper else OURS_ONLY if has_ours else PAPER_ONLY
            difference = mine - theirs if status == BOTH else np.nan
            if decimals is not None and np.isfinite(difference):
                difference = float(np.round(difference, decimals))
            lines.append((our_row if our_row is not None else paper_row, column, mine, theirs,
                          difference, status))
    table = pd.DataFrame(lines, columns=list(COMPARISON_COLUMNS))
    table.attrs["missing"] = {
        "rows_only_in_ours": [our_keys[key] for key in our_keys if key not in paper_keys],
        "rows_only_in_paper": [paper_keys[key] for key in paper_keys if key not in our_keys],
        "columns_only_in_ours": [column for column in ours.columns if column not in paper.columns],
        "columns_only_in_paper": [column for column in paper.columns if column not in ours.columns],
    }
    return table


def difference_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """The ``both`` cells of :func:`compare_with_paper` as a wide table: set x column -> difference."""
    both = comparison[comparison["status"] == BOTH]
    wide = both.pivot(index="set", columns="column", values="difference")
    order_rows = list(dict.fromkeys(both["set"]))
    order_columns = list(dict.fromkeys(both["column"]))
    return wide.reindex(index=order_rows, columns=order_columns)


def _unique(table: pd.DataFrame) -> pd.DataFrame:
    table = table.loc[~table.index.duplicated(keep="first")]
    table = table.loc[:, ~table.columns.duplicated(keep="first")]
    keys = pd.Index([set_key(name) for name in table.index])
    return table.loc[~keys.duplicated(keep="first")]


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan
