"""Result tables: the paper's attack CSV layout, the performance CSV, and a console view.

Writers only read metric dataclasses; nothing here computes a metric.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import pandas as pd

from attacks.evaluation import EXTRA_METRICS, PAPER_METRICS, AttackResult
from engine.scores import Scores
from utils.files import atomic_open
from utils.naming import attack_names_of, column_name, split_column

if TYPE_CHECKING:
    from calibration.metrics import ModelMetrics

def attack_columns(attack_names: Sequence[str]) -> list[str]:
    """Paper columns of every attack first (paper order), then the extra metrics."""
    paper = [column_name(name, metric) for name in attack_names for metric in PAPER_METRICS]
    extra = [column_name(name, metric) for name in attack_names for metric in EXTRA_METRICS]
    return paper + extra


SKIPPED_COLUMN = "Skipped"


def attack_table(results: Mapping[str, Sequence[AttackResult]], skipped: Mapping[str, str] | None = None,
                 order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per non-member set, one column per ``{Attack} {Metric}``.

    Parameters
    ----------
    results : mapping row name -> attack results (one per attack, same order per set)
    skipped : mapping row name -> one-line reason, for requested sets that could not be evaluated.
        Each keeps its row, under its exact row name, with empty metrics and the reason in a last
        column ``Skipped`` (present only when some row is skipped; empty for evaluated rows).
    order : row names in table order (default: ``results``, then ``skipped``)
    """
    skipped = dict(skipped or {})
    rows = {}
    attack_names: list[str] = []
    for set_name, set_results in results.items():
        row = {}
        for result in set_results:
            row.update(result.as_row())
            if result.attack_name not in attack_names:
                attack_names.append(result.attack_name)
        rows[set_name] = row
    for name in skipped:
        rows[name] = {}
    index = list(order) if order is not None else list(rows)
    if sorted(index) != sorted(rows):
        raise ValueError(f"row order {index} does not list the evaluated and skipped rows {list(rows)}")
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table.reindex(index=index, columns=attack_columns(attack_names))
    if skipped:
        table[SKIPPED_COLUMN] = [skipped.get(name, "") for name in index]
    return table


# The rows of the paper's performance CSV (stanford_dogs_experiments.py), in its order. Its sixth
# row holds the *shadow* model's ECE under the label "ECE Target" (a slip in the paper's script);
# the label is kept so the file matches the published ones, and the same value follows among the
# extra rows as "ECE Shadow".
PAPER_PERFORMANCE_ROWS = ("Train Acc. Target", "Test Acc. Target", "ECE Target",
                          "Train Acc. Shadow", "Test Acc. Shadow", "ECE Target")
# The package's extra rows, after the paper's.
EXTRA_PERFORMANCE_ROWS = ("ECE Shadow", "Overconfidence Target", "MMPS Target",
                          "Overconfidence Shadow", "MMPS Shadow")


def model_metric_rows(metrics: ModelMetrics, role: str, split: str) -> dict[str, float]:
    """Performance-table rows of one model on one split: ``Train Acc. Target`` for "train";
    accuracy, ``ECE``, ``Overconfidence`` and ``MMPS`` for "test".

    Parameters
    ----------
    metrics : calibration.metrics.ModelMetrics
    role : "target" or "shadow"
    split : "train" or "test"
    """
    title = role.capitalize()
    rows = {f"{split.capitalize()} Acc. {title}": metrics.accuracy}
    if split == "test":
        rows.update({f"ECE {title}": metrics.ece, f"Overconfidence {title}": metrics.overconfidence,
                     f"MMPS {title}": metrics.mean_max_prob})
    return rows


def performance_table(metrics: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The paper's six rows in its order (:data:`PAPER_PERFORMANCE_ROWS`, ``ECE Target`` twice),
    then :data:`EXTRA_PERFORMANCE_ROWS`; one column per stage (``Value``, ``Uncalibrated``).

    Parameters
    ----------
    metrics : mapping column name -> mapping metric name (from :func:`model_metric_rows`) -> value;
        metrics a column lacks are left empty.
    """
    names = list(PAPER_PERFORMANCE_ROWS) + list(EXTRA_PERFORMANCE_ROWS)
    sources = list(PAPER_PERFORMANCE_ROWS[:5]) + ["ECE Shadow"] + list(EXTRA_PERFORMANCE_ROWS)
    columns = {column: [values.get(source, float("nan")) for source in sources]
               for column, values in metrics.items()}
    return pd.DataFrame(columns, index=pd.Index(names))


def write_table(table: pd.DataFrame, path: str | Path, float_format: str = "%.4f") -> Path:
    """Write ``table`` as CSV atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_open(path) as handle:
        table.to_csv(handle, float_format=float_format)
    return path


def format_console(table: pd.DataFrame, metrics: Sequence[str] = ("Precision", "Recall", "AUROC", "FPR",
                                                                    "TPR@1%FPR")) -> str:
    """A readable view: one block per attack with the headline metrics."""
    blocks = []
    for name in attack_names_of(table.columns):
        columns = [column_name(name, metric) for metric in metrics if column_name(name, metric) in table]
        block = table[columns].dropna(how="all").rename(columns=lambda column: split_column(column)[1])
        blocks.append(f"{name} attack\n{block.to_string(float_format=lambda value: f'{value:.4f}')}")
    return "\n\n".join(blocks)


def performance_rows(split_scores: Mapping[str, Mapping[str, Scores]],
                     uncalibrated: dict[str, float] | None) -> dict[str, dict[str, float]]:
    """Rows ``Train Acc. Target`` ... for the probabilities the attacks saw (and before calibration).

    ``split_scores``: role (``"target"``, ``"shadow"``; absent roles are left out) -> ``"train"`` / ``"test"`` -> scores.
    """
    from calibration.metrics import model_metrics   # torch: only where a table is made

    columns: dict[str, dict[str, float]] = {"Value": {}}
    for role in ("target", "shadow"):
        for split_name in ("train", "test"):
            scores = split_scores.get(role, {}).get(split_name)
            if scores is None:
                continue
            columns["Value"].update(model_metric_rows(model_metrics(scores.probs, scores.labels),
                                                      role, split_name))
    if uncalibrated:
        columns["Uncalibrated"] = uncalibrated
    return columns
