"""The experiment scripts' shared flag parser: flags -> config -> pipeline -> printed table.

The flags are generated from the declarations (:class:`configuration.config.ExperimentConfig` fields,
the attacks' and the calibration methods' options); scripts differ only in which preset they start
from (``configuration.config.PRESETS``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from attacks import ATTACKS, attack_options, default_attack_names
from calibration.factory import calibration_options
from datasets.errors import ChecksumError, DataNotFoundError, DataSizeError
from configuration.config import ExperimentConfig, config_from_preset
from datasets.presets import preset_for
from utils.files import DISK_FULL, DiskFullError
from utils.locks import LockHeldError
from utils.options import add_options, field_options, parsed_values

if TYPE_CHECKING:
    from pipeline.run import RunOutputs

T = TypeVar("T")

def build_parser(dataset: str) -> argparse.ArgumentParser:
    """The flags of :class:`ExperimentConfig`, the attacks and the calibrations, generated from
    their declarations; defaults and help from ``dataset``'s preset."""
    preset = preset_for(dataset)
    parser = argparse.ArgumentParser(
        description=f"Membership inference attacks on a {dataset} target and shadow model: train or "
                    f"load them, score every non-member set once, fit attacks on the shadow scores, "
                    f"and write the paper's result tables.")
    context = {"preset": preset, "splits": preset.protocol.description, "attack_names": " ".join(ATTACKS),
               "with_reference": " ".join(name for name in default_attack_names(1)
                                          if name not in default_attack_names(0)),
               "fixed": preset.protocol.sizes_note}
    declared = field_options(ExperimentConfig)
    defaults = {o.name: getattr(preset, o.name) for o in declared if o.preset}
    add_options(parser, declared, defaults, context)
    add_options(parser.add_argument_group("attack options"), attack_options(), defaults, context)
    add_options(parser.add_argument_group("calibration (at most one method)"), calibration_options(), defaults,
                context)
    parser.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                        help="run the configuration once per seed (into results_dir/seed_SEED/, checkpoints in "
                             "pretrained_dir/seed_SEED/) and write {stem}seeds_aggregate.csv (mean and sd of every "
                             "cell) and {stem}seeds_report.md (how much each cell moves)")
    return parser


def parse_config(dataset: str, argv: Sequence[str] | None = None) -> ExperimentConfig:
    """The config the flags ``argv`` (default ``sys.argv[1:]``) ask for, on ``dataset``'s preset."""
    values = parsed_values(build_parser(dataset).parse_args(argv))
    values.pop("seeds", None)
    return config_from_preset(dataset, **values)


USER_ERRORS = (ValueError, FileNotFoundError, DataNotFoundError, ChecksumError, DataSizeError, LockHeldError,
               DiskFullError)
INTERRUPTED = "interrupted; finished checkpoints kept; rerun to continue"


def run_with_one_line_errors(work: Callable[[], T]) -> tuple[int, T | None]:
    """``(0, work())``; or, where ``work`` stops on a user error (:data:`USER_ERRORS`), a full disk or
    Ctrl-C, that one line on stderr and ``(2, None)`` (``130`` for Ctrl-C: :data:`INTERRUPTED`)."""
    try:
        return 0, work()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130, None
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"error: no space left on the device{where}; free space there or write to another folder",
              file=sys.stderr)
    return 2, None


def main(dataset: str, argv: Sequence[str] | None = None) -> int:
    """Parse flags, run, print the attack table; user errors (bad input, a lock another run holds,
    a full disk) end in one line on stderr (exit 2), Ctrl-C in :data:`INTERRUPTED` (exit 130)."""
    import time

    from pipeline.console import StageLines, print_run
    from engine.manifest import stage_hook
    from pipeline.run import run_experiment

    parser = build_parser(dataset)
    values = parsed_values(parser.parse_args(argv))
    seeds = values.pop("seeds", None)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    start = time.perf_counter()

    def run() -> tuple[ExperimentConfig, RunOutputs | None]:
        config = config_from_preset(dataset, **values)
        if seeds is not None:
            _run_seeds(config, seeds, start)
            return config, None
        with stage_hook(StageLines(config)):
            return config, run_experiment(config)

    code, done = run_with_one_line_errors(run)
    if code or done[1] is None:
        return code
    config, outputs = done
    print_run(outputs, time.perf_counter() - start, verbose=config.verbose)
    return 0


def _run_seeds(config: ExperimentConfig, seeds: Sequence[int], start: float) -> int:
    """``--seeds``: every seed's run with its stage lines, then where the aggregate is."""
    import time

    from pipeline.console import StageLines
    from pipeline.seeds import largest_moves, run_seeds

    runs = run_seeds(config, seeds, on_stage=StageLines(config))  # stage lines, a header per seed
    print(f"== {runs.stem.rstrip('_')}: {len(runs.tables)} seeds done in {time.perf_counter() - start:.1f} s ==")
    for set_name, column, sd in largest_moves(runs.aggregate, 3):
        print(f"moves most: {set_name} / {column}: sd {sd:.4f}")
    for name, path in runs.files.items():
        print(f"{name}: {path}")
    return 0
