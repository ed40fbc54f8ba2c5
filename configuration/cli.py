"""The experiment scripts' shared flag parser: flags -> config (the run itself: :mod:`pipeline.cli`).

The flags are generated from the declarations (:class:`configuration.config.ExperimentConfig` fields,
the attacks' and the calibration methods' options); scripts differ only in which preset they start
from (``configuration.config.PRESETS``).
"""
from __future__ import annotations

import argparse
from typing import Sequence

from attacks import ATTACKS, attack_options, default_attack_names
from calibration.factory import calibration_options
from configuration.config import ExperimentConfig, config_from_preset
from datasets.presets import preset_for
from utils.options import add_options, field_options, parsed_values


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
