"""``report.md``: one readable page per run, written from tables and figures that already exist.

Answer first: summary in plain sentences, the headline figure, the sections that answer the question
(e.g. "Are the attacks fooled by OOD and fake data?"), the attacks' headline metrics with bootstrap 95%
intervals, model metrics, every figure with a one-line caption, the comparison with the paper, skipped
sets, notes, and last the configuration (what the run did: each model trained or loaded and from
which file, the learning rate used; then every setting). Tables are plain Markdown written here (no
``tabulate`` dependency); nothing is computed except formatting.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd

from reporting.paper_comparison import BOTH, COMPARISON_COLUMNS, difference_table
from reporting.summary import CHANCE, lookup
from utils.files import atomic_path
from utils.naming import attack_names_of, column_name, split_column

HEADLINE_METRICS = ("Precision", "Recall", "FPR", "AUROC", "FPR@95%TPR", "TPR@1%FPR", "TPR@0.1%FPR", "FP_MMPS")
DUPLICATE_ROW_NOTE = ("The paper's performance table names its sixth row `ECE Target` again; that row holds the "
                      "shadow model's ECE (the paper's script's label, kept so the CSV matches its layout). It is "
                      "marked `ECE Target (2nd: shadow)` here; `ECE Shadow` repeats it under its own name.")


def write_report(path: str | Path, *, title: str, config: Mapping, performance: pd.DataFrame,
                 attacks: pd.DataFrame, figures: Sequence[str | Path], skipped_sets: Mapping[str, str],
                 comparison: pd.DataFrame | None, notes: Sequence[str] = (),
                 attack_csv: str | Path | None = None,
                 performance_csv: str | Path | None = None,
                 extra_sections: Sequence[tuple[str, str]] = (),
                 summary: Sequence[str] = (), headline_figure: str | Path | None = None,
                 captions: Mapping[str, str] | None = None, intervals: pd.DataFrame | None = None,
                 what_happened: Sequence[tuple[str, str]] = (), attack_notes: Mapping[str, str] | None = None,
                 intervals_csv: str | Path | None = None,
                 attack_sections: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the run's Markdown report atomically.

    Parameters
    ----------
    path : the ``report.md`` to write; links are relative to its folder
    title : first heading
    config : the run's configuration (nested mappings are flattened to ``a.b`` keys); listed last
    performance : model metrics, rows such as ``Train Acc. Target``
    attacks : attack table, one row per non-member set, ``{Attack} {Metric}`` columns
    figures : PNGs to embed, in order
    skipped_sets : non-member set -> why it was not evaluated
    comparison : :func:`reporting.paper_comparison.compare_with_paper` output, or ``None``
    notes : free-text lines, listed after the comparison
    attack_csv, performance_csv, intervals_csv : the full CSVs to link (optional)
    extra_sections : (heading, Markdown body) pairs placed right after the headline figure
    attack_sections : (heading, Markdown body) pairs placed right after the attack tables (e.g. the
        reference attacks' null test)
    summary : plain sentences opening the report
    headline_figure : the figure shown under the summary (also listed under Figures)
    captions : figure path (as given) or file name -> one-line caption saying what to look for
    intervals : bootstrap intervals (``set, attack, metric, estimate, low, high, se``); the attack
        tables then show ``value [low, high]`` and flag AUROCs within two standard errors of 0.5
    what_happened : (what, value) rows of what the run did, shown first in the configuration
    attack_notes : attack -> a sentence shown under its table (e.g. why a number is what it is)

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    base = path.parent
    captions = dict(captions or {})
    sections = [f"# {title}"]
    if summary:
        sections.append(_section("Summary", "\n".join(f"- {sentence}" for sentence in summary)))
    if headline_figure is not None:
        sections.append(_figure_block([headline_figure], base, captions))
    sections += [
        *(_section(heading, body) for heading, body in extra_sections),
        _section("Attacks", _with_link(_with_link(_attack_blocks(attacks, intervals, attack_notes or {}), attack_csv,
                                                  base, "Full attack table"),
                                       intervals_csv, base, "Bootstrap 95% intervals of every headline number")),
        *(_section(heading, body) for heading, body in attack_sections),
        _section("Model metrics", _with_link(_performance_block(performance), performance_csv, base,
                                             "Full performance table")),
        _section("Figures", _figure_block(figures, base, captions)),
        _section("Comparison with the paper", _comparison_block(comparison)),
        _section("Skipped non-member sets", _skipped_block(skipped_sets)),
    ]
    if notes:
        sections.append(_section("Notes", "\n".join(f"- {note}" for note in notes)))
    sections.append(_section("Configuration", _configuration_block(config, what_happened)))
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


CONFIG_LABELS = {"train": "train (--train: retrain even when a checkpoint exists)",
                 "lr": "lr (--lr; None: the architecture's default, see above)"}


def _config_frame(config: Mapping) -> pd.DataFrame:
    flat = _flatten(config)
    return pd.DataFrame({"setting": [CONFIG_LABELS.get(k, k) for k in flat], "value": [str(v) for v in flat.values()]})


def _configuration_block(config: Mapping, what_happened: Sequence[tuple[str, str]]) -> str:
    parts = []
    if what_happened:
        frame = pd.DataFrame({"what": [w for w, _ in what_happened], "value": [v for _, v in what_happened]})
        parts.append("What this run did:\n\n" + markdown_table(frame, index=False))
    parts.append("Every setting:\n\n" + markdown_table(_config_frame(config), index=False))
    return "\n\n".join(parts)


def _performance_block(performance: pd.DataFrame) -> str:
    """The model metrics; a repeated row name (the paper's second ``ECE Target``) is marked and explained."""
    if performance is None or not len(performance.index) or performance.index.is_unique:
        return markdown_table(performance)
    frame = performance.copy()
    seen: dict[str, int] = {}
    labels = []
    for name in frame.index:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name} (2nd: shadow)" if name == "ECE Target"
                      else f"{name} ({seen[name]})")
    frame.index = pd.Index(labels, name=performance.index.name)
    return markdown_table(frame) + "\n\n" + DUPLICATE_ROW_NOTE


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


INTERVAL_METRICS = ("FPR", "AUROC", "TPR@1%FPR", "TPR@0.1%FPR")
CHANCE_MARK = " (chance)"


def _attack_blocks(attacks: pd.DataFrame, intervals: pd.DataFrame | None = None,
                   attack_notes: Mapping[str, str] | None = None) -> str:
    """Per attack, the headline metrics of every non-member set (with 95% intervals when known)."""
    names = attack_names_of(attacks.columns)
    if not names:
        return markdown_table(attacks)
    blocks = []
    if intervals is not None and len(intervals):
        blocks.append(f"Values in brackets are seeded bootstrap 95% intervals (members and non-members resampled). "
                      f"An AUROC marked{CHANCE_MARK} is within two standard errors of {CHANCE} (SE shown): no "
                      f"better than chance on that set.")
    for name in names:
        columns = [column_name(name, m) for m in HEADLINE_METRICS if column_name(name, m) in attacks.columns]
        block = attacks[columns].rename(columns=lambda c: split_column(c)[1])
        if intervals is not None and len(intervals):
            block = block.astype(object)
            for set_name in block.index:
                for metric in INTERVAL_METRICS:
                    if metric in block.columns:
                        block.loc[set_name, metric] = _interval_cell(attacks.loc[set_name, column_name(name, metric)],
                                                                     lookup(intervals, set_name, name, metric),
                                                                     metric == "AUROC")
        block.index.name = "non-member set"
        note = (attack_notes or {}).get(name)
        blocks.append(f"### {name} attack\n\n{markdown_table(block)}" + (f"\n\n{note}" if note else ""))
    return "\n\n".join(blocks)


def _interval_cell(value, found, is_auroc: bool) -> str:
    if found is None or not isinstance(value, (float, np.floating)) or math.isnan(value):
        return _cell(value)
    text = f"{value:.4f} [{found.low:.3f}, {found.high:.3f}]"
    if is_auroc and found.se > 0 and abs(value - CHANCE) <= 2 * found.se:
        text += f"{CHANCE_MARK}, SE {found.se:.3f}"
    return text


def _figure_block(figures: Sequence[str | Path], base: Path, captions: Mapping[str, str] | None = None) -> str:
    if not figures:
        return "No figures."
    lines = []
    for figure in figures:
        caption = (captions or {}).get(str(figure)) or (captions or {}).get(Path(figure).name) or caption_for(figure)
        figure = Path(figure)
        missing = " (file missing)" if not figure.exists() else ""
        lines.append(f"![{figure.stem}]({_link(figure, base)})\n\n_{caption}_ ({figure.name}{missing})")
    return "\n\n".join(lines)


# file-name pattern -> caption (what to look for); {attack} is filled from the name
CAPTIONS = (
    (r"roc_(?P<attack>.+?)_Attack$", "ROC of the {attack} attack, one curve per non-member set. Left, linear axes: "
     "the further a curve bows above the dashed diagonal, the better the attack separates members from that set. "
     "Right, log-log axes: look at the left end; a curve above the diagonal at FPR 0.01 and below finds members at "
     "a low false-positive rate."),
    (r"held_out_fpr$", "Each attack's FPR on every set at the threshold that flags 1% of held-out in-distribution "
     "images: bars far above the dashed 1% line mean the attack is fooled by that set."),
    (r"max_score_distributions$", "Maximum prediction score of members and of each non-member set: where a set "
     "piles up at 1.0 like the members, a score threshold cannot tell it from training data."),
    (r"false_positives$", "Non-members the Threshold attack calls members, most confident first: unseen, OOD and "
     "generated images it mistakes for training data."),
    (r"reliability_(?P<attack>target|shadow)$", "Reliability diagram of the {attack} model: bars below the "
     "diagonal mean it is more confident than it is accurate (overconfident)."),
    (r"tradeoff$", "Target model's calibration error against the Threshold attack's mean FPR on OOD sets, one point "
     "per run: better-calibrated runs should sit lower."),
    (r"_samples$", "Samples of the generator behind the Fake set: they should look like the training data."),
)


def caption_for(figure: str | Path) -> str:
    """A one-line caption for a figure of the run, from its file name (the name itself when unknown)."""
    stem = Path(figure).stem
    for pattern, text in CAPTIONS:
        match = re.search(pattern, stem)
        if match:
            return text.format(attack=match.groupdict().get("attack", "").replace("_", " "))
    return stem


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
