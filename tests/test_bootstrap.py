"""Bootstrap intervals: agree with the point metrics, contain them, shrink with more samples, are seeded."""
import numpy as np
import pandas as pd
import pytest

from attacks.bootstrap import (attack_intervals, auroc, held_out_fpr_rows, held_out_intervals, resampled_auroc,
                               tpr_at_fpr_rows)
from attacks.evaluation import tpr_at_fpr
from attacks.held_out_fpr import held_out_threshold
from attacks.roc import roc_curve_points
from engine.intervals import held_out_interval_sets, with_held_out_intervals


def _pair(rng, n, shift=0.5):
    return np.round(rng.normal(shift, 1, n), 2), np.round(rng.normal(0, 1, n), 2)


def test_point_estimates_match_the_package_metrics():
    rng = np.random.default_rng(0)
    for _ in range(30):
        members, non_members = _pair(rng, int(rng.integers(5, 150)))
        roc = roc_curve_points(np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)],
                               np.r_[members, non_members])
        assert auroc(members, non_members) == pytest.approx(roc.auroc, abs=1e-12)
        for level in (0.01, 0.001, 0.1):
            assert tpr_at_fpr_rows(members, non_members, level)[0] == tpr_at_fpr(roc.fpr, roc.tpr, level)
            assert held_out_fpr_rows(members, non_members, level)[0] == np.mean(
                members > held_out_threshold(non_members, level))


def test_resampled_auroc_equals_auroc_of_each_resample():
    rng = np.random.default_rng(1)
    members, non_members = _pair(rng, 40)
    index_m, index_n = rng.integers(0, 40, (5, 40)), rng.integers(0, 40, (5, 40))
    values = resampled_auroc(members, non_members, index_m, index_n)
    for b in range(5):
        assert values[b] == pytest.approx(auroc(members[index_m[b]], non_members[index_n[b]]), abs=1e-12)


def test_intervals_contain_the_estimate_and_shrink_with_more_samples():
    rng = np.random.default_rng(2)
    widths = []
    for n in (50, 200, 800):
        members, non_members = _pair(rng, n)
        found = attack_intervals(members, non_members, non_members > 0.3, seed=7, resamples=400)
        for value in found.values():
            assert value.low <= value.estimate <= value.high
        widths.append(found["AUROC"].high - found["AUROC"].low)
        fpr = held_out_intervals(non_members[: n // 2], non_members[n // 2:], seed=3, resamples=400)[0.01]
        assert fpr.low <= fpr.estimate <= fpr.high
    assert widths[0] > widths[1] > widths[2]


def test_intervals_are_seeded_and_null_auroc_is_chance():
    rng = np.random.default_rng(3)
    members, non_members = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    first = attack_intervals(members, non_members, seed=11, resamples=300)
    assert first == attack_intervals(members, non_members, seed=11, resamples=300)
    assert first["AUROC"].within_two_se_of(0.5)            # no membership signal: AUROC ~0.5
    assert first["AUROC"].low < 0.5 < first["AUROC"].high


def test_held_out_csv_columns_appended():
    table = pd.DataFrame({"A FPR@1%HeldOutFPR": [0.5, 0.01, 0.2], "A FPR@0.1%HeldOutFPR": [0.4, 0.0, 0.1]},
                         index=pd.Index(["Members", "Held-out", "Scaled"], name="set"))
    rng = np.random.default_rng(4)
    scores = {"A": {"Members": rng.normal(1, 1, 50), "Held-out": rng.normal(0, 1, 200),
                    "Scaled": rng.normal(0.5, 1, 50)}}
    out = with_held_out_intervals(table, held_out_interval_sets(scores, seed=42, resamples=100))
    assert list(out.columns[:2]) == list(table.columns)
    assert {"A FPR@1%HeldOutFPR 95% low", "A FPR@1%HeldOutFPR 95% high"} <= set(out.columns)
    assert np.isnan(out.loc["Held-out", "A FPR@1%HeldOutFPR 95% low"])
    assert out.loc["Scaled", "A FPR@1%HeldOutFPR 95% low"] <= out.loc["Scaled", "A FPR@1%HeldOutFPR 95% high"]
