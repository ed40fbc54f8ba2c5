"""Table stage: the paper-layout attack and performance tables of a run (written by the run)."""
from __future__ import annotations

from typing import Mapping

from configuration.config import ExperimentConfig, row_name


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
