"""The experiment scripts' command: flags -> config -> the run -> stage lines and a short summary."""
from __future__ import annotations

import logging
import time
from typing import Sequence

from configuration.cli import build_parser
from configuration.config import ExperimentConfig, config_from_preset
from configuration.errors import INTERRUPTED, run_with_one_line_errors
from engine.manifest import stage_hook
from pipeline.console import StageLines, print_run
from pipeline.run import PresetRun, run_experiment
from utils.options import parsed_values

__all__ = ["INTERRUPTED", "main"]


def main(dataset: str, argv: Sequence[str] | None = None) -> int:
    """Parse flags, run, print the attack table; user errors (bad input, a lock another run holds,
    a full disk) end in one line on stderr (exit 2), Ctrl-C in :data:`INTERRUPTED` (exit 130); a run
    in which an attack could not score its inputs exits 3 after writing every other result, a DP run
    whose attacks bound epsilon above the accountant's exits 4."""
    parser = build_parser(dataset)
    values = parsed_values(parser.parse_args(argv))
    seeds = values.pop("seeds", None)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    start = time.perf_counter()

    def run() -> tuple[ExperimentConfig, PresetRun | None]:
        config = config_from_preset(dataset, **values)
        if seeds is not None:
            check_seeds(seeds)
            _run_seeds(config, seeds, start)
            return config, None
        with stage_hook(StageLines(config)):
            return config, run_experiment(config)

    code, done = run_with_one_line_errors(run)
    if code or done[1] is None:
        return code
    config, outputs = done
    print_run(outputs, time.perf_counter() - start, verbose=config.verbose)
    if outputs.result.dp_violations:
        return 4          # an epsilon lower bound above the accountant's: a bug (printed in the summary)
    return 3 if outputs.result.failed_attacks else 0


def check_seeds(seeds: Sequence[int]) -> None:
    """``--seeds``: every seed a non-negative integer, none twice; checked before any seed runs."""
    bad = [seed for seed in seeds if seed < 0]
    if bad:
        raise ValueError(f"--seeds {' '.join(map(str, seeds))}: {bad[0]} is negative; give seeds >= 0")
    twice = sorted({seed for seed in seeds if list(seeds).count(seed) > 1})
    if twice:
        raise ValueError(f"--seeds {' '.join(map(str, seeds))}: {twice[0]} is given twice; give each seed once")


def _run_seeds(config: ExperimentConfig, seeds: Sequence[int], start: float) -> int:
    """``--seeds``: every seed's run with its stage lines, then where the aggregate is."""
    from pipeline.seeds import largest_moves, run_seeds

    runs = run_seeds(config, seeds, on_stage=StageLines(config))  # stage lines, a header per seed
    print(f"== {runs.stem.rstrip('_')}: {len(runs.tables)} seeds done in {time.perf_counter() - start:.1f} s ==")
    for set_name, column, sd in largest_moves(runs.aggregate, 3):
        print(f"moves most: {set_name} / {column}: sd {sd:.4f}")
    for name, path in runs.files.items():
        print(f"{name}: {path}")
    return 0
