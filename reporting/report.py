"""``report.md``: one readable page per run, written from tables and figures that already exist.

Sections: configuration, model metrics, attacks (headline metrics; full CSV linked), figures,
skipped non-member sets, comparison with the paper, notes. Tables are plain Markdown written here
(no ``tabulate`` dependency); nothing is computed except formatting.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd

from reporting.paper_comparison import BOTH, COMPARISON_COLUMNS, difference_table
from utils.files import atomic_path
from utils.naming import attack_names_of, column_name, split_column

HEADLINE_METRICS = ("Precision", "Recall", "FPR", "AUROC", "FPR@95%TPR", "TPR@1%FPR", "FP_MMPS")


def write_report(path: str | Path, *, title: str, config: Mapping, performance: pd.DataFrame,
                 attacks: pd.DataFrame, figures: Sequence[str | Path], skipped_sets: Mapping[str, str],
                 comparison: pd.DataFrame | None, notes: Sequence[str] = (),
                 attack_csv: str | Path | None = None,
                 performance_csv: str | Path | None = None,
                 extra_sections: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the run's Markdown report atomically.

    Parameters
    ----------
    path : the ``report.md`` to write; links are relative to its folder
    title : first heading
    config : the run's configuration (nested mappings are flattened to ``a.b`` keys)
    performance : model metrics, rows such as ``Train Acc. Target``
    attacks : attack table, one row per non-member set, ``{Attack} {Metric}`` columns
    figures : PNGs to embed, in order
    skipped_sets : non-member set -> why it was not evaluated
    comparison : :func:`reporting.paper_comparison.compare_with_paper` output, or ``None``
    notes : free-text lines, listed last
    attack_csv, performance_csv : the full CSVs to link (optional)
    extra_sections : (heading, Markdown body) pairs placed after the attacks

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    base = path.parent
    sections = [
        f"# {title}",
        _section("Configuration", markdown_table(_config_frame(config), index=False)),
        _section("Model metrics", _with_link(markdown_table(performance), performance_csv, base,
                                             "Full performance table")),
        _section("Attacks", _with_link(_attack_blocks(attacks), attack_csv, base, "Full attack table")),
        *(_section(heading, body) for heading, body in extra_sections),
        _section("Figures", _figure_block(figures, base)),
        _section("Skipped non-member sets", _skipped_block(skipped_sets)),
        _section("Comparison with the paper", _comparison_block(comparison)),
    ]
    if notes:
        sections.append(_section("Notes", "\n".join(f"- {note}" for note in notes)))
    with atomic_path(path) as temporary:
        temporary.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path


def markdown_table(frame: pd.DataFrame, index: bool = True, float_format: str = "{:.4f}") -> str:
    """A GitHub-flavoured Markdown table; NaN shows as ``n/a``, ``|`` is escaped."""
    if frame is None or (frame.empty and not len(frame.columns)):
        return "_(empty)_"
    header = ([str(frame.index.name or "")] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for label, row in frame.iterrows():
        cells = ([_cell(label)] if index else []) + [_cell(value, float_format) for value in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, float_format: str = "{:.4f}") -> str:
    if isinstance(value, (float, np.floating)):
        text = "n/a" if math.isnan(value) else float_format.format(value)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _section(heading: str, body: str) -> str:
    return f"## {heading}\n\n{body}"


def _link(target: str | Path, base: Path) -> str:
    """Relative, URL-quoted link from the report's folder to ``target``."""
    relative = os.path.relpath(Path(target).resolve(), base.resolve())
    return quote(Path(relative).as_posix())


def _with_link(body: str, target: str | Path | None, base: Path, text: str) -> str:
    if target is None:
        return body
    return f"{body}\n\n{text}: [{Path(target).name}]({_link(target, base)})"


def _config_frame(config: Mapping) -> pd.DataFrame:
    flat = _flatten(config)
    return pd.DataFrame({"setting": list(flat), "value": [str(v) for v in flat.values()]})


def _flatten(config: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ", ".join(str(item) for item in value)
        else:
            flat[name] = value
    return flat


def _attack_blocks(attacks: pd.DataFrame) -> str:
    """Per attack, the headline metrics of every non-member set."""
    names = attack_names_of(attacks.columns)
    if not names:
        return markdown_table(attacks)
    blocks = []
    for name in names:
        columns = [column_name(name, m) for m in HEADLINE_METRICS if column_name(name, m) in attacks.columns]
        block = attacks[columns].rename(columns=lambda c: split_column(c)[1])
        block.index.name = "non-member set"
        blocks.append(f"### {name} attack\n\n{markdown_table(block)}")
    return "\n\n".join(blocks)


def _figure_block(figures: Sequence[str | Path], base: Path) -> str:
    if not figures:
        return "No figures."
    lines = []
    for figure in figures:
        figure = Path(figure)
        missing = "" if figure.exists() else " (file missing)"
        lines.append(f"![{figure.stem}]({_link(figure, base)})\n\n_{figure.name}{missing}_")
    return "\n\n".join(lines)


def _skipped_block(skipped_sets: Mapping[str, str]) -> str:
    if not skipped_sets:
        return "None: every requested non-member set was evaluated."
    frame = pd.DataFrame({"set": list(skipped_sets), "reason": list(skipped_sets.values())})
    return markdown_table(frame, index=False)


def _comparison_block(comparison: pd.DataFrame | None) -> str:
    if comparison is None:
        return "No published table for this configuration."
    if not set(COMPARISON_COLUMNS) <= set(comparison.columns):
        return f"```\n{comparison.to_string()}\n```"
    both = comparison[comparison["status"] == BOTH]
    parts = [f"Differences ours - paper per cell ({len(both)} cells in both tables; rows matched "
             "by set name ignoring case, spaces and punctuation)."]
    if len(both):
        mean_abs = both["difference"].abs().mean()
        parts.append(f"Mean absolute difference over all shared cells: {_cell(mean_abs)}.")
        wide = difference_table(comparison)
        for name in attack_names_of(wide.columns) or [None]:
            columns = [c for c in wide.columns if name is None or (split_column(c) or ("",))[0] == name]
            block = wide[columns].rename(columns=lambda c: (split_column(c) or ("", str(c)))[1])
            block.index.name = "non-member set"
            heading = f"### {name} attack: ours - paper" if name else "### ours - paper"
            parts.append(f"{heading}\n\n{markdown_table(block, float_format='{:+.4f}')}")
    missing = comparison.attrs.get("missing") or _missing_from_status(comparison)
    listed = [f"- {kind.replace('_', ' ')}: {', '.join(map(str, items))}"
              for kind, items in missing.items() if items]
    parts.append("Not compared:\n\n" + "\n".join(listed) if listed else "Every row and column is in both tables.")
    return "\n\n".join(parts)


def _missing_from_status(comparison: pd.DataFrame) -> dict[str, list]:
    """Fallback when ``attrs`` were lost (e.g. after a round trip through CSV)."""
    only = comparison[comparison["status"] != BOTH]
    return {f"cells {status}": [f"{row.set} / {row.column}" for row in group.itertuples()]
            for status, group in only.groupby("status")}
