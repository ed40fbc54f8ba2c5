"""Table stage: the paper-layout attack and performance tables of a run (written by the run)."""
from __future__ import annotations

from typing import Mapping

from calibration.metrics import model_metrics
from configuration.config import ExperimentConfig, row_name
from engine.scores import Scores
from pipeline.stages.models import ROLES
from engine.tables import model_metric_rows


def table_row_order(config: ExperimentConfig, evaluated: list[str],
                    skipped: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Row names in the requested order (``config.sets``), skipped rows in their place, and
    row name -> reason of the skipped ones. ``evaluated`` lists evaluated rows in requested order."""
    remaining = iter(evaluated)
    order, skipped_rows = [], {}
    for key in config.sets:
        if key in skipped:
            name = row_name(config.dataset, key)
            skipped_rows[name] = skipped[key]
            order.append(name)
        elif (name := next(remaining, None)) is not None:
            order.append(name)
    return order + list(remaining), skipped_rows


def performance_rows(split_scores: Mapping[str, Mapping[str, Scores]],
                     uncalibrated: dict[str, float] | None) -> dict[str, dict[str, float]]:
    """Rows ``Train Acc. Target`` ... for the probabilities the attacks saw (and before calibration)."""
    columns: dict[str, dict[str, float]] = {"Value": {}}
    for role in ROLES:
        for split_name in ("train", "test"):
            scores = split_scores[role][split_name]
            columns["Value"].update(model_metric_rows(model_metrics(scores.probs, scores.labels),
                                                      role, split_name))
    if uncalibrated:
        columns["Uncalibrated"] = uncalibrated
    return columns
