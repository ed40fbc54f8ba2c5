"""``--seeds 42 43 44``: the same configuration once per seed, and how much each cell moves.

Each seed is a full run (:func:`pipeline.run.run_experiment`) into ``{results_dir}/seed_{seed}/`` with
its checkpoints in ``{pretrained_dir}/seed_{seed}/`` (the seed draws the splits and trains the
models, so each seed has its own). The attack tables are then stacked:
``{stem}seeds_aggregate.csv`` holds, for every cell, its mean and sample standard deviation
(``{column} mean``, ``{column} sd``), and ``{stem}seeds_report.md`` says which cells move most.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import pandas as pd

from engine.tables import write_table
from utils.files import atomic_path
from utils.naming import attack_names_of, column_name, seeds_csv_name

if TYPE_CHECKING:
    from configuration.config import ExperimentConfig
    from pipeline.run import PresetRun

MOVES_METRICS = ("AUROC", "FPR", "TPR@1%FPR")


@dataclass
class SeedRuns:
    """The per-seed runs and their aggregate."""

    stem: str
    tables: dict[int, pd.DataFrame]          # seed -> attack table
    aggregate: pd.DataFrame                  # "{column} mean" / "{column} sd" per row
    files: dict[str, Path] = field(default_factory=dict)
    runs: dict = field(default_factory=dict)  # seed -> PresetRun


def seed_config(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """``config`` with ``seed`` and its own results and checkpoint subfolders."""
    return dataclasses.replace(config, seed=seed, results_dir=str(Path(config.results_dir) / f"seed_{seed}"),
                               pretrained_dir=str(Path(config.pretrained_dir) / f"seed_{seed}"))


def aggregate_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof 1) of every cell across ``tables`` (same layout)."""
    if len(tables) < 2:
        raise ValueError("--seeds needs at least two seeds to say how much a cell moves")
    stacked = pd.concat(tables, keys=range(len(tables)))
    grouped = stacked.groupby(level=1, sort=False)
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    order = list(tables[0].index)
    columns = {}
    for column in tables[0].columns:
        columns[f"{column} mean"] = mean[column]
        columns[f"{column} sd"] = sd[column]
    out = pd.DataFrame(columns).reindex(order)
    out.index.name = tables[0].index.name
    return out


def run_seeds(config: ExperimentConfig, seeds: Sequence[int],
              on_stage: Callable[[str, float | None], None] | None = None) -> SeedRuns:
    """Run ``config`` once per seed and write the aggregate table and its report into ``results_dir``.

    ``on_stage``: the stage hook of every run (:func:`engine.manifest.stage_hook`); with one, a
    header line names each seed as it starts.
    """
    from engine.manifest import stage_hook
    from pipeline.run import run_experiment

    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if len(seeds) < 2:
        raise ValueError(f"--seeds needs at least two different seeds, got {' '.join(map(str, seeds))}")
    runs = {}
    for seed in seeds:
        if on_stage is not None:
            print(f"-- seed {seed} ({seeds.index(seed) + 1}/{len(seeds)}) --", flush=True)
        with stage_hook(on_stage):
            runs[seed] = run_experiment(seed_config(config, seed))
    tables = {seed: run.attack_table for seed, run in runs.items()}
    aggregate = aggregate_tables(list(tables.values()))
    stem = config.run_stem()
    results_dir = Path(config.results_dir)
    files = {"seeds_aggregate": write_table(aggregate, results_dir / seeds_csv_name(stem))}
    files["seeds_report"] = write_seeds_report(results_dir / f"{stem}seeds_report.md", stem, seeds, aggregate,
                                               runs)
    return SeedRuns(stem, tables, aggregate, files, runs)


def moves_table(aggregate: pd.DataFrame, attack: str) -> pd.DataFrame:
    """``mean ± sd`` of one attack's :data:`MOVES_METRICS` per set."""
    out = {}
    for metric in MOVES_METRICS:
        column = column_name(attack, metric)
        if f"{column} mean" in aggregate.columns:
            out[metric] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(aggregate[f"{column} mean"], aggregate[f"{column} sd"])]
    frame = pd.DataFrame(out, index=aggregate.index)
    frame.index.name = "non-member set"
    return frame


def largest_moves(aggregate: pd.DataFrame, count: int = 5) -> list[tuple[str, str, float]]:
    """The ``count`` cells (set, column, sd) of :data:`MOVES_METRICS` with the largest standard deviation."""
    cells = []
    for column in [c for c in aggregate.columns if c.endswith(" sd")]:
        base = column[: -len(" sd")]
        if not any(base.endswith(f" {m}") for m in MOVES_METRICS):
            continue
        for set_name, value in aggregate[column].items():
            cells.append((str(set_name), base, float(value)))
    return sorted(cells, key=lambda cell: -cell[2])[:count]


def write_seeds_report(path: Path, stem: str, seeds: Sequence[int], aggregate: pd.DataFrame,
                       runs: Mapping[int, PresetRun]) -> Path:
    """``{stem}seeds_report.md``: how much each cell moves across seeds, per attack."""
    from reporting.report import markdown_table

    llla = "LLLA" in stem
    parts = [f"# How much each cell moves across seeds: {stem.rstrip('_')}",
             f"The same configuration was run with seeds {', '.join(map(str, seeds))}: each seed draws its own "
             f"splits and trains its own target and shadow models. Cells are mean ± sample standard deviation "
             f"across the {len(seeds)} runs; the full table is [{seeds_csv_name(stem)}]({seeds_csv_name(stem)}), "
             f"and each run's report is under `seed_<seed>/`."]
    moved = largest_moves(aggregate)
    if moved:
        parts.append("Cells that move most (standard deviation across seeds):\n\n"
                     + "\n".join(f"- {s} / {c}: sd {v:.4f}" for s, c, v in moved))
    parts.append("A difference between two configurations smaller than these standard deviations is within "
                 "seed-to-seed noise. "
                 + ("These are LLLA rows: the paper's LLLA searches its prior variance on noise images "
                    "(logspace(0, 3, 100)), and which value wins changes with the seed, so these rows are the "
                    "example of cells the paper's own search makes noisy." if llla else
                    "The LLLA rows are the example the paper's own search makes noisy (its prior variance is "
                    "searched on noise images and the winner changes with the seed): run with `--llla --seeds ...` "
                    "to see how far they move."))
    for attack in attack_names_of(aggregate.columns.str.replace(r" (mean|sd)$", "", regex=True)):
        parts.append(f"## {attack} attack\n\n{markdown_table(moves_table(aggregate, attack))}")
    with atomic_path(path) as temporary:
        temporary.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path
