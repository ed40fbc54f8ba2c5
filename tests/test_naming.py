"""The one naming module: modifiers, stems, file names and CSV columns."""
from __future__ import annotations

import math

import pytest

from reporting.paper_comparison import PAPER_RESULTS_DIR as PAPER_RESULTS
from utils.naming import (attack_names_of, column_name, llla_modifier, manifest_name, result_stem, split_column,
                          split_stem, temperature_modifier, training_modifier)


@pytest.mark.parametrize("parts, expected", [
    ((None, 0.0, ""), ""),
    ((0.0083, 0.0, ""), "LS_0.0083_"),
    ((0.1, 0.0, ""), "LS_0.1_"),
    ((None, 3e-4, ""), "L2_0.0003_"),
    ((None, 1e-3, ""), "L2_0.001_"),
    ((None, 0.0, llla_modifier()), "LLLA_"),
    ((None, 0.0, temperature_modifier(10)), "temp_10.0_calib_"),
    ((None, 0.0, temperature_modifier("fit")), "temp_fit_calib_"),
    ((None, 0.0, temperature_modifier(None)), "temp_calib_"),
    ((None, 3e-4, temperature_modifier(None)), "L2_0.0003_temp_calib_"),
    ((0.0, 0.0, ""), ""),
    ((0.1, 1e-3, temperature_modifier(10.0)), "LS_0.1_L2_0.001_temp_10.0_calib_"),
])
def test_modifiers(parts, expected):
    smoothing, decay, calibration = parts
    assert training_modifier(smoothing, decay) + calibration == expected


@pytest.mark.parametrize("make", [lambda: training_modifier(weight_decay=-1.0),
                                  lambda: training_modifier(label_smoothing_factor=math.nan),
                                  lambda: temperature_modifier(0.0)])
def test_modifiers_reject_bad_values(make):
    with pytest.raises(ValueError):
        make()


def test_modifiers_match_the_paper_file_names():
    names = {path.name for path in PAPER_RESULTS.glob("*_attack_results.csv")}
    runs = {"cifar10": (training_modifier(0.0083), training_modifier(weight_decay=3e-4)),
            "stanford_dogs": (training_modifier(0.1), training_modifier(weight_decay=1e-3))}
    arch = {"cifar10": "resnet18", "stanford_dogs": "resnet50"}
    for dataset, (smoothing, decay) in runs.items():
        for modifier in ("", smoothing, decay, llla_modifier(), temperature_modifier(10)):
            assert f"{arch[dataset]}_{dataset}_{modifier}attack_results.csv" in names


def test_llla_modifier_of_each_implementation():
    assert llla_modifier() == "LLLA_" and llla_modifier("laplace") == "LLLA_laplace_"
    with pytest.raises(ValueError, match="llla_impl"):
        llla_modifier("other")


@pytest.mark.parametrize("stem, expected", [
    ("resnet18_cifar10_", ("resnet18_cifar10", "baseline")),
    ("salem_cnn_relu_cifar10_L2_0.0003_", ("salem_cnn_relu_cifar10", "L2_0.0003")),
    ("resnet50_stanford_dogs_temp_10.0_calib_", ("resnet50_stanford_dogs", "temp_10.0_calib")),
    ("efficient_net_cifar10_LLLA_", ("efficient_net_cifar10", "LLLA")),
])
def test_split_stem(stem, expected):
    from calibration.factory import modifier_prefixes

    assert split_stem(stem, modifier_prefixes()) == expected


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
