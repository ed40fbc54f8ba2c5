"""The published tables ship with the package and compare cell by cell with ours."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from engine.tables import write_table
from reporting.paper_comparison import (PAPER_RESULTS_DIR, compare_with_paper, difference_table,
                                        paper_performance_table, paper_stems, paper_table, set_key)

# sha256 of each table as the authors published it, taken when the tables were copied in.
PUBLISHED_SHA256 = dict(line.split()[::-1] for line in
                        (PAPER_RESULTS_DIR / "SHA256SUMS").read_text().splitlines() if line.strip())


def test_every_published_run_ships():
    stems = paper_stems()
    assert len(stems) == 20
    for arch in ("resnet18", "efficient_net", "salem_cnn_relu"):
        for modifier in ("", "LS_0.0083_", "L2_0.0003_", "LLLA_", "temp_10.0_calib_"):
            assert f"{arch}_cifar10_{modifier}" in stems
    assert len(list(PAPER_RESULTS_DIR.glob("*performance_results.csv"))) == 5


def test_shipped_tables_are_the_published_files():
    shipped = sorted(path.name for path in PAPER_RESULTS_DIR.glob("*.csv"))
    assert shipped == sorted(PUBLISHED_SHA256) and len(shipped) == 25
    for name in shipped:
        assert hashlib.sha256((PAPER_RESULTS_DIR / name).read_bytes()).hexdigest() == PUBLISHED_SHA256[name], name


def test_paper_table_layout():
    table = paper_table("resnet18_cifar10_")
    assert list(table.index) == ["Original", "Permuted", "Scaled", "No Normalization", "STL-10",
                                 "CIFAR100", "SVHN", "Stanford Dogs", "Fake CIFAR-10", "AFHQ Dogs",
                                 "AFHQ Cats"]
    assert table.shape == (11, 30)
    assert table.at["Original", "Threshold Attack Precision"] == 0.6735
    assert paper_table("resnet18_cifar10_LS_0.0083_").at["Original", "Threshold Attack FPR"] == 0.2404
    assert paper_performance_table("resnet50_stanford_dogs_").iloc[2, 0] == 0.2509


def test_missing_and_invalid_stems():
    assert paper_table("resnet18_mnist_") is None
    assert paper_performance_table("resnet18_cifar10_") is None  # CIFAR runs published no performance CSV
    with pytest.raises(ValueError, match="resnet18_cifar10_"):
        paper_table("../secrets_")


def test_differences_are_exact_on_a_results_csv(tmp_path):
    paper = paper_table("resnet18_cifar10_LS_0.0083_")
    offsets = {"Threshold Attack Precision": 0.01, "Salem Attack AUROC": -0.05,
               "Entropy Attack FPR": 0.1234}
    ours = paper.copy()
    for column, offset in offsets.items():
        ours[column] = ours[column] + offset
    ours = ours.rename(index={"CIFAR100": "CIFAR-100", "AFHQ Dogs": "AFHQ-Dogs"})  # other spellings
    path = write_table(ours, tmp_path / "resnet18_cifar10_LS_0.0083_attack_results.csv")
    comparison = compare_with_paper(pd.read_csv(path, index_col=0), paper)

    assert list(comparison.columns) == ["set", "column", "ours", "paper", "difference", "status"]
    assert (comparison["status"] == "both").all()
    assert len(comparison) == paper.size
    cells = comparison.set_index(["set", "column"])
    for column in paper.columns:
        expected = offsets.get(column, 0.0)
        differences = cells.xs(column, level="column")["difference"]
        assert (differences == expected).all(), (column, differences.unique())
    assert cells.at[("CIFAR-100", "Entropy Attack FPR"), "paper"] == paper.at["CIFAR100", "Entropy Attack FPR"]
    assert comparison.attrs["missing"] == {"rows_only_in_ours": [], "rows_only_in_paper": [],
                                           "columns_only_in_ours": [], "columns_only_in_paper": []}


def test_rows_and_columns_in_one_table_are_listed():
    paper = paper_table("resnet18_cifar10_")
    ours = paper.drop(index=["SVHN"], columns=["Salem Attack AUPR"]).copy()
    ours["Threshold Attack TPR@1%FPR"] = 0.3
    ours.loc["Digits"] = 0.5
    comparison = compare_with_paper(ours, paper)

    missing = comparison.attrs["missing"]
    assert missing == {"rows_only_in_ours": ["Digits"], "rows_only_in_paper": ["SVHN"],
                       "columns_only_in_ours": ["Threshold Attack TPR@1%FPR"],
                       "columns_only_in_paper": ["Salem Attack AUPR"]}
    cells = comparison.set_index(["set", "column"])
    assert cells.at[("SVHN", "Threshold Attack FPR"), "status"] == "only paper"
    assert np.isnan(cells.at[("SVHN", "Threshold Attack FPR"), "ours"])
    assert cells.at[("Digits", "Threshold Attack FPR"), "status"] == "only ours"
    assert cells.at[("Original", "Salem Attack AUPR"), "status"] == "only paper"
    assert cells.at[("Original", "Threshold Attack TPR@1%FPR"), "status"] == "only ours"
    assert np.isnan(cells.at[("Original", "Threshold Attack TPR@1%FPR"), "difference"])
    # every cell of either table appears exactly once (SVHN x TPR@1%FPR and Digits x Salem AUPR
    # are in neither)
    assert len(comparison) == 12 * 31 - 2
    assert cells.index.is_unique
    both = comparison[comparison["status"] == "both"]
    assert len(both) == 10 * 29 and (both["difference"] == 0).all()

    wide = difference_table(comparison)
    assert wide.shape == (10, 29) and "SVHN" not in wide.index and "Digits" not in wide.index


def test_nan_cells_and_no_rounding():
    paper = pd.DataFrame({"Threshold Attack FPR": {"Original": 0.5}})
    ours = pd.DataFrame({"Threshold Attack FPR": {"original": np.nan}})
    comparison = compare_with_paper(ours, paper, decimals=None)
    assert comparison.loc[0, "status"] == "both" and np.isnan(comparison.loc[0, "difference"])
    exact = compare_with_paper(pd.DataFrame({"c": {"a": 0.1 + 0.2}}), pd.DataFrame({"c": {"a": 0.3}}),
                               decimals=None)
    assert exact.loc[0, "difference"] == (0.1 + 0.2) - 0.3


@pytest.mark.parametrize("a, b", [("CIFAR100", "CIFAR-100"), ("AFHQ-Dogs", "AFHQ Dogs"),
                                  ("No Normalization", "no_normalization")])
def test_set_key(a, b):
    assert set_key(a) == set_key(b)
