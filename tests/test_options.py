"""Option declarations and the parser generated from them."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from attacks import attack_options
from calibration import CALIBRATIONS, calibration_spec
from configuration.cli import build_parser, parse_config
from configuration.config import ExperimentConfig, config_from_preset
from utils.options import Option, add_options, check_value, field_options, option, parsed_values


@dataclass(frozen=True)
class Toy:
    name: str = "x"                        # not an option
    size: int = option(3, "size (default {default})")
    quiet: bool = option(False, "no output", action="store_true")
    cache: bool = option(True, "recompute", flag="--no_cache", action="store_false")
    sets: tuple[str, ...] = option(("a", "b"), "sets (default: {default}) of {where}", nargs="+", type=str,
                                   preset=True)


def test_fields_declare_options_and_the_parser_follows_them():
    declared = field_options(Toy)
    assert [o.name for o in declared] == ["size", "quiet", "cache", "sets"]
    assert declared[0].type is int and declared[2].cli_flag == "--no_cache"
    parser = argparse.ArgumentParser()
    add_options(parser, declared, defaults={"sets": ("c",)}, context={"where": "the preset"})
    assert "sets (default: c) of the preset" in " ".join(parser.format_help().split())
    assert parsed_values(parser.parse_args([])) == {"size": 3, "quiet": False, "cache": True, "sets": None}
    values = parsed_values(parser.parse_args(["--size", "5", "--quiet", "--no_cache", "--sets", "d", "e"]))
    assert values == {"size": 5, "quiet": True, "cache": False, "sets": ("d", "e")}
    assert Toy(**values) == Toy(size=5, quiet=True, cache=False, sets=("d", "e"))


def test_check_value_names_the_flag():
    declared = Option("k", "top k", default=3, type=int, minimum=1, at_most_classes=True)
    check_value(declared, 3, classes=10)
    with pytest.raises(ValueError, match="--k must be at least 1, got 0"):
        check_value(declared, 0)
    with pytest.raises(ValueError, match="--k 11 is larger than the 10 classes"):
        check_value(declared, 11, classes=10)


def test_every_config_option_attack_option_and_calibration_flag_is_on_the_command_line():
    text = build_parser("cifar10").format_help()
    flags = [o.cli_flag for o in field_options(ExperimentConfig)] + [o.cli_flag for o in attack_options()]
    flags += [o.cli_flag for m in CALIBRATIONS.values() for o in ((m.switch,) if m.switch else ()) + m.params]
    assert all(flag in text for flag in flags)
    assert "(default 100)" in text  # cifar10's preset epochs
    assert parse_config("cifar10", []).epochs == 100 and config_from_preset("cifar10").epochs == 100


def test_calibration_spec_from_flags():
    assert calibration_spec({}).method == "softmax"
    assert calibration_spec({"temp_value": 10.0}).params == {"temp_value": 10.0, "temp_fit": "paper"}
    assert parse_config("digits", ["--temp_scaling"]).run_stem() == "small_cnn_digits_temp_calib_"
    with pytest.raises(ValueError, match="--temp_value and --llla choose different calibrations"):
        parse_config("digits", ["--llla", "--temp_value", "10"])
    with pytest.raises(ValueError, match="--temp_value must be a positive number"):
        calibration_spec({"temp_value": -1.0})
    with pytest.raises(ValueError, match="unknown config option"):
        config_from_preset("digits", salem=3)
    params = config_from_preset("digits", salem_k=2).attack_params
    assert params == {**{o.name: o.default for o in attack_options()}, "salem_k": 2}
