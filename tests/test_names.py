"""Names as the paper's: table rows and their order, skipped rows, and result-file names per flag.

The published tables ship in ``reporting/paper_results/``; every one of them is the reference here.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from attacks.evaluation import AttackResult
from configuration.cli import parse_config
from configuration.config import PRESETS, row_name
from engine.tables import PAPER_PERFORMANCE_ROWS, SKIPPED_COLUMN, attack_table, performance_table
from pipeline.run import table_row_order
from reporting.paper_comparison import PAPER_RESULTS_DIR

ARCH = {"cifar10": ("resnet18", "efficient_net", "salem_cnn_relu"), "stanford_dogs": ("resnet50",)}


def published(pattern: str) -> list:
    paths = sorted(PAPER_RESULTS_DIR.glob(pattern))
    assert paths, pattern
    return paths


@pytest.mark.parametrize("dataset", ["cifar10", "stanford_dogs"])
def test_preset_rows_are_the_published_rows_in_order(dataset):
    rows = [row_name(dataset, key) for key in PRESETS[dataset].sets]
    for path in published(f"*_{dataset}_*attack_results.csv"):
        assert list(pd.read_csv(path, index_col=0).index) == rows, path.name


def test_the_two_scripts_spell_afhq_differently():
    assert [row_name("cifar10", key) for key in ("afhq_dogs", "afhq_cats")] == ["AFHQ Dogs", "AFHQ Cats"]
    assert [row_name("stanford_dogs", key) for key in ("afhq_dogs", "afhq_cats", "afhq_wild", "afhq_nondogs")] \
        == ["AFHQ-Dogs", "AFHQ-Cats", "AFHQ-Wilds", "AFHQ-NonDogs"]
    assert row_name("cifar10", "fake_cifar10") == "Fake CIFAR-10" and row_name("cifar10", "cifar100") == "CIFAR100"
    assert row_name("digits", "my_set", "My Set") == "My Set" and row_name("digits", "my_set") == "my_set"


def test_performance_rows_are_the_published_rows_in_order():
    for path in published("*performance_results.csv"):
        assert tuple(pd.read_csv(path, index_col=0).index) == PAPER_PERFORMANCE_ROWS, path.name
    metrics = {"Train Acc. Target": 1.0, "Test Acc. Target": 0.6, "ECE Target": 0.25, "Train Acc. Shadow": 0.9,
               "Test Acc. Shadow": 0.5, "ECE Shadow": 0.3, "MMPS Target": 0.8}
    table = performance_table({"Value": metrics})
    assert tuple(table.index[:6]) == PAPER_PERFORMANCE_ROWS
    assert list(table["Value"].iloc[:6]) == [1.0, 0.6, 0.25, 0.9, 0.5, 0.3]  # 6th: the shadow's ECE
    assert table.loc["ECE Shadow", "Value"] == 0.3 and table.loc["MMPS Target", "Value"] == 0.8
    assert math.isnan(table.loc["Overconfidence Shadow", "Value"])


def result(name: str) -> AttackResult:
    return AttackResult(attack_name=name, n_members=10, n_non_members=10, precision=0.5, recall=0.5,
                        fpr=0.5, accuracy=0.5, auroc=0.5, aupr=0.5, fpr_at_tpr95=0.5,
                        tpr_at_fpr={0.001: 0.0, 0.01: 0.1}, tp_mmps=0.9, fp_mmps=0.9, fn_mmps=0.1, tn_mmps=0.1,
                        average_precision=0.5)


def test_skipped_rows_keep_their_name_and_place():
    config = parse_config("stanford_dogs", [])
    evaluated = ["Original", "AFHQ-Dogs", "AFHQ-Cats", "AFHQ-Wilds", "AFHQ-NonDogs", "Permuted", "Scaled",
                 "No Normalization"]
    order, skipped = table_row_order(config, evaluated, {"fake_dogs": "Fake Dogs: no images in data/fake_afhq_dogs"})
    assert order == [row_name("stanford_dogs", key) for key in PRESETS["stanford_dogs"].sets]
    assert skipped == {"Fake Dogs": "Fake Dogs: no images in data/fake_afhq_dogs"}
    table = attack_table({name: [result("Threshold")] for name in evaluated}, skipped=skipped, order=order)
    assert list(table.index) == order and table.columns[-1] == SKIPPED_COLUMN
    assert table.loc["Fake Dogs", "Threshold Attack FPR"] != table.loc["Fake Dogs", "Threshold Attack FPR"]
    assert table.loc["Fake Dogs", SKIPPED_COLUMN].startswith("Fake Dogs: no images")
    assert (table.loc[evaluated, SKIPPED_COLUMN] == "").all()
    assert SKIPPED_COLUMN not in attack_table({"Original": [result("Threshold")]}).columns


def stem_of(dataset: str, *flags: str) -> str:
    config = parse_config(dataset, list(flags))
    return config.run_stem()


@pytest.mark.parametrize("dataset, flags, modifier", [
    ("cifar10", (), ""),
    ("cifar10", ("--label_smoothing",), "LS_0.0083_"),
    ("cifar10", ("--weight_decay", "0.0003"), "L2_0.0003_"),
    ("cifar10", ("--weight_decay", "3e-4"), "L2_0.0003_"),
    ("cifar10", ("--llla",), "LLLA_"),
    ("cifar10", ("--temp_scaling", "--temp_value", "10"), "temp_10.0_calib_"),
    ("stanford_dogs", (), ""),
    ("stanford_dogs", ("--label_smoothing",), "LS_0.1_"),
    ("stanford_dogs", ("--weight_decay", "0.001"), "L2_0.001_"),
    ("stanford_dogs", ("--llla",), "LLLA_"),
    ("stanford_dogs", ("--temp_scaling", "--temp_value", "10.0"), "temp_10.0_calib_"),
])
def test_single_flag_file_names_are_the_published_ones(dataset, flags, modifier):
    for arch in ARCH[dataset]:
        stem = stem_of(dataset, "--model_arch", arch, *flags)
        assert stem == f"{arch}_{dataset}_{modifier}"
        assert (PAPER_RESULTS_DIR / f"{stem}attack_results.csv").is_file()
        if dataset == "stanford_dogs":
            assert (PAPER_RESULTS_DIR / f"{stem}performance_results.csv").is_file()


@pytest.mark.parametrize("flags, modifier", [
    (("--temp_scaling",), "temp_calib_"),                     # fitted T: the paper's name has no value
    (("--temp_scaling", "--temp_fit", "held_out"), "temp_calib_"),
    (("--temp_value", "2.5"), "temp_2.5_calib_"),
    (("--label_smoothing", "--label_smoothing_factor", "0.05"), "LS_0.05_"),
    (("--weight_decay", "1e-05"), "L2_1e-05_"),              # str(float), as the paper's f-string
    (("--weight_decay", "0.00012345678"), "L2_0.00012345678_"),
    # combined modifiers: every part, in the fixed order LS, L2, LLLA, temp
    (("--temp_scaling", "--weight_decay", "0.0003", "--label_smoothing"), "LS_0.0083_L2_0.0003_temp_calib_"),
    (("--label_smoothing", "--temp_value", "10"), "LS_0.0083_temp_10.0_calib_"),
    (("--weight_decay", "0.0003", "--llla"), "L2_0.0003_LLLA_"),
])
def test_other_flags_and_combinations(flags, modifier):
    assert stem_of("cifar10", *flags) == f"resnet18_cifar10_{modifier}"
