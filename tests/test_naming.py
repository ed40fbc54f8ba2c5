"""The one naming module: modifiers, stems, file names and CSV columns."""
from __future__ import annotations

import math

import pytest

from reporting.paper_comparison import PAPER_RESULTS_DIR as PAPER_RESULTS
from utils.naming import (attack_names_of, column_name, manifest_name, result_modifier, result_stem,
                          split_column, split_stem, training_modifier)


@pytest.mark.parametrize("options, expected", [
    ({}, ""),
    ({"label_smoothing_factor": 0.0083}, "LS_0.0083_"),
    ({"label_smoothing_factor": 0.1}, "LS_0.1_"),
    ({"weight_decay": 3e-4}, "L2_0.0003_"),
    ({"weight_decay": 1e-3}, "L2_0.001_"),
    ({"llla": True}, "LLLA_"),
    ({"temperature": 10}, "temp_10.0_calib_"),
    ({"temperature": "fit"}, "temp_fit_calib_"),
    ({"temp_scaling": True}, "temp_calib_"),
    ({"weight_decay": 3e-4, "temp_scaling": True}, "L2_0.0003_temp_calib_"),
    ({"label_smoothing_factor": 0.0, "weight_decay": 0.0}, ""),
    ({"label_smoothing_factor": 0.1, "weight_decay": 1e-3, "llla": True, "temperature": 10.0},
     "LS_0.1_L2_0.001_LLLA_temp_10.0_calib_"),
])
def test_result_modifier(options, expected):
    assert result_modifier(**options) == expected


@pytest.mark.parametrize("options", [{"weight_decay": -1.0}, {"label_smoothing_factor": math.nan},
                                     {"temperature": 0.0}])
def test_result_modifier_rejects_bad_values(options):
    with pytest.raises(ValueError):
        result_modifier(**options)


def test_result_modifiers_match_the_paper_file_names():
    names = {path.name for path in PAPER_RESULTS.glob("*_attack_results.csv")}
    runs = {"cifar10": ({"label_smoothing_factor": 0.0083}, {"weight_decay": 3e-4}),
            "stanford_dogs": ({"label_smoothing_factor": 0.1}, {"weight_decay": 1e-3})}
    arch = {"cifar10": "resnet18", "stanford_dogs": "resnet50"}
    for dataset, (smoothing, decay) in runs.items():
        for options in ({}, smoothing, decay, {"llla": True}, {"temperature": 10}):
            assert f"{arch[dataset]}_{dataset}_{result_modifier(**options)}attack_results.csv" in names


def test_result_modifier_of_each_implementation():
    assert result_modifier(llla=True) == "LLLA_"
    assert result_modifier(llla=True, llla_impl="laplace") == "LLLA_laplace_"
    with pytest.raises(ValueError, match="llla_impl"):
        result_modifier(llla=True, llla_impl="other")


@pytest.mark.parametrize("stem, expected", [
    ("resnet18_cifar10_", ("resnet18_cifar10", "baseline")),
    ("salem_cnn_relu_cifar10_L2_0.0003_", ("salem_cnn_relu_cifar10", "L2_0.0003")),
    ("resnet50_stanford_dogs_temp_10.0_calib_", ("resnet50_stanford_dogs", "temp_10.0_calib")),
    ("efficient_net_cifar10_LLLA_", ("efficient_net_cifar10", "LLLA")),
])
def test_split_stem(stem, expected):
    assert split_stem(stem) == expected


def test_stems_and_file_names():
    stem = result_stem("resnet18", "cifar10", training_modifier(label_smoothing_factor=0.0083))
    assert stem == "resnet18_cifar10_LS_0.0083_"
    assert manifest_name(stem) == "resnet18_cifar10_LS_0.0083_manifest.json"
    assert training_modifier() == "" and training_modifier(0.1, 1e-3) == "LS_0.1_L2_0.001_"


def test_columns_round_trip():
    columns = [column_name("Salem", "AUROC"), column_name("Threshold", "FPR"), "Skipped",
               column_name("Salem", "FPR")]
    assert columns[0] == "Salem Attack AUROC"
    assert split_column(columns[1]) == ("Threshold", "FPR") and split_column("Skipped") is None
    assert attack_names_of(columns) == ["Salem", "Threshold"]
