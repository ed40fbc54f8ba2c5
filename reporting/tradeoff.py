"""The calibration / privacy trade-off across runs: better-calibrated models, fewer false positives.

Reads the result CSVs of a folder (``{stem}attack_results.csv`` with ``{stem}performance_results.csv``)
and plots, per run, the target model's expected calibration error against the threshold attack's
false-positive rate averaged over the out-of-distribution sets. The paper's finding: the lower
the ECE, the lower that FPR, i.e. the more the model leaks about its training members.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from reporting.figures import new_figure, save_figure
from calibration.factory import modifier_prefixes
from utils.naming import ATTACK_SUFFIX, column_name, performance_csv_name, split_stem

logger = logging.getLogger(__name__)

ECE_ROW = "ECE Target"
VALUE_COLUMN = "Value"
IN_DISTRIBUTION_ROW = "Original"


@dataclass(frozen=True)
class TradeoffPoint:
    """One run: where it sits on the plot and what it is called."""

    stem: str
    group: str
    label: str
    ece: float
    mean_fpr: float
    n_sets: int


def plot_tradeoff(results_dir: str | Path, path: str | Path, ood_sets: Sequence[str] | None = None,
                  attack: str = "Threshold") -> Path | None:
    """Scatter of target ECE (x) against the attack's mean FPR over OOD sets (y), one point per run.

    Parameters
    ----------
    results_dir : folder holding ``{stem}attack_results.csv`` and ``{stem}performance_results.csv``
        (or a list of folders, later ones replacing the same stems of earlier ones)
    path : PNG to write
    ood_sets : rows of the attack CSV to average over; default every row but ``Original``.
        Rows a run lacks are skipped for that run.
    attack : attack whose ``{attack} Attack FPR`` column is used

    Returns
    -------
    Path or None
        ``path``, or ``None`` (nothing written) when no run has both an ECE and an FPR.
    """
    points = tradeoff_points(results_dir, ood_sets, attack)
    if not points:
        return None
    return save_figure(tradeoff_figure(points, ood_sets, attack), path)


SINGLE_RUN_NOTE = ("Only one run in this folder: a trade-off needs several. Run other calibrations into the same\n"
                   "--results_dir (e.g. --label_smoothing, --temp_value 10, --llla) and this plot compares them.")


def tradeoff_figure(points: Sequence[TradeoffPoint], ood_sets: Sequence[str] | None = None,
                    attack: str = "Threshold"):
    """The figure of :func:`plot_tradeoff` (not saved); with one point it says what it needs."""
    figure = new_figure(6.5, 4.8)
    axes = figure.add_subplot()
    groups = list(dict.fromkeys(point.group for point in points))
    for index, group in enumerate(groups):
        members = sorted((p for p in points if p.group == group), key=lambda p: p.ece)
        xs, ys = [p.ece for p in members], [p.mean_fpr for p in members]
        axes.plot(xs, ys, marker="o", linestyle=":", linewidth=0.8, color=f"C{index % 10}", label=group)
        for point in members:
            axes.annotate(point.label, (point.ece, point.mean_fpr), textcoords="offset points",
                          xytext=(4, 4), fontsize="x-small", annotation_clip=True)
    axes.set_xlabel("expected calibration error of the target model")
    sets_text = "OOD sets" if ood_sets is None else ", ".join(ood_sets)
    axes.set_ylabel(f"{attack} attack FPR, mean over {sets_text}", fontsize="small")
    axes.set_title("Calibration vs. false positives")
    top_x = max(p.ece for p in points)
    top_y = max(p.mean_fpr for p in points)
    axes.set_xlim(0, max(top_x * 1.35, 1e-3))   # room for the labels right of the points
    axes.set_ylim(0, min(max(top_y * 1.2, 0.05), 1.1))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    if len(points) == 1:
        axes.text(0.02, 0.98, SINGLE_RUN_NOTE, transform=axes.transAxes, ha="left", va="top", fontsize="x-small",
                  bbox={"facecolor": "white", "edgecolor": "grey", "alpha": 0.9})
    return figure


def tradeoff_points(results_dir: str | Path, ood_sets: Sequence[str] | None = None,
                    attack: str = "Threshold") -> list[TradeoffPoint]:
    """The usable runs of ``results_dir`` (sorted by stem); unusable ones are logged and skipped.

    ``results_dir`` may be a list of folders: a stem in a later folder replaces the same stem in
    an earlier one (a run's staged tables over its committed ones).
    """
    folders = [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)
    latest = {path.name: path for folder in folders for path in sorted(Path(folder).glob(f"*{ATTACK_SUFFIX}"))}
    points = []
    for attack_csv in (latest[name] for name in sorted(latest)):
        stem = attack_csv.name[: -len(ATTACK_SUFFIX)]
        performance_csv = attack_csv.with_name(performance_csv_name(stem))
        if not performance_csv.exists():
            logger.info("tradeoff: %s has no %s; skipped", stem, performance_csv.name)
            continue
        ece = _ece(performance_csv)
        fpr, n_sets = _mean_fpr(attack_csv, ood_sets, attack)
        if ece is None or fpr is None:
            logger.info("tradeoff: %s lacks %s or %s FPRs on OOD sets; skipped", stem, ECE_ROW, attack)
            continue
        group, label = split_stem(stem, modifier_prefixes())
        points.append(TradeoffPoint(stem, group, label, ece, fpr, n_sets))
    return points



def _ece(performance_csv: Path) -> float | None:
    """``ECE Target`` from column ``Value``, else the first data column (the paper's layout).

    The paper's files hold the row twice (the second is the shadow model's); the first is used.
    """
    table = _read(performance_csv)
    if table is None or ECE_ROW not in table.index or not len(table.columns):
        return None
    column = VALUE_COLUMN if VALUE_COLUMN in table.columns else table.columns[0]
    value = pd.to_numeric(table.loc[table.index == ECE_ROW, column], errors="coerce").iloc[0]
    return float(value) if np.isfinite(value) else None


def _mean_fpr(attack_csv: Path, ood_sets: Sequence[str] | None, attack: str) -> tuple[float | None, int]:
    table = _read(attack_csv)
    column = column_name(attack, "FPR")
    if table is None or column not in table.columns:
        return None, 0
    rows = [row for row in table.index if row != IN_DISTRIBUTION_ROW] if ood_sets is None \
        else [row for row in ood_sets if row in table.index]
    values = pd.to_numeric(table.loc[table.index.isin(rows), column], errors="coerce").dropna()
    return (float(values.mean()), len(values)) if len(values) else (None, 0)


def _read(csv: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(csv, index_col=0)
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        logger.warning("tradeoff: cannot read %s (%s); skipped", csv, error)
        return None
