"""Slices (attacks/slices.py) and their report section (reporting/slices.py)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from attacks.evaluation import AttackOutputs
from attacks.slices import COLUMNS, define_slices, slice_table
from reporting.slices import ranked_slices, slices_section

M = N = 400
C = 10


def _outputs(member_scores, non_member_scores, member_conf, non_member_conf):
    return {"Members": AttackOutputs(member_scores, member_scores > 0.5, member_conf),
            "Original": AttackOutputs(non_member_scores, non_member_scores > 0.5, non_member_conf)}


def _labels(seed=0, classes=C):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, classes, M), rng.integers(0, classes, N), rng.integers(0, classes, M),
            rng.integers(0, classes, N))


def test_null_every_slice_is_near_chance():
    rng = np.random.default_rng(1)
    conf_m, conf_n = rng.uniform(0.1, 1, M), rng.uniform(0.1, 1, N)
    outputs = {"A": _outputs(rng.normal(size=M), rng.normal(size=N), conf_m, conf_n),
               "B": _outputs(conf_m + rng.normal(0, 0.1, M), conf_n + rng.normal(0, 0.1, N), conf_m, conf_n)}
    table = slice_table(outputs, *_labels(), seed=3, resamples=200)
    assert list(table.columns) == list(COLUMNS)
    assert set(table["slice_kind"]) == {"all", "class", "confidence decile", "correctness"}
    reliable = table[table["note"] == ""]
    assert len(reliable) == 2 * (1 + C + 10 + 2)
    assert (reliable["AUROC"] - 0.5).abs().max() < 0.2
    covers = (reliable["AUROC low"] <= 0.5) & (reliable["AUROC high"] >= 0.5)
    assert covers.mean() >= 0.85


def test_the_leaking_class_is_named_first_and_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(2)
    m_labels, n_labels, m_pred, n_pred = _labels()
    member_scores, non_member_scores = rng.normal(size=M), rng.normal(size=N)
    member_scores[m_labels == 3] += 2.0          # only class 3's members stand out
    conf_m, conf_n = rng.uniform(0.1, 1, M), rng.uniform(0.1, 1, N)
    table = slice_table({"LOSS": _outputs(member_scores, non_member_scores, conf_m, conf_n)},
                        m_labels, n_labels, m_pred, n_pred, seed=0, resamples=100)
    assert ranked_slices(table).iloc[0]["slice"] == "class 3"
    row = table[table["slice"] == "class 3"].iloc[0]
    expected = roc_auc_score(np.r_[np.ones((m_labels == 3).sum()), np.zeros((n_labels == 3).sum())],
                             np.r_[member_scores[m_labels == 3], non_member_scores[n_labels == 3]])
    assert row["AUROC"] == pytest.approx(expected)
    assert row["AUROC low"] <= row["AUROC"] <= row["AUROC high"]
    assert row["n_members"] == (m_labels == 3).sum() and row["n_non_members"] == (n_labels == 3).sum()
    text = slices_section(table, csv_name="run_slices.csv")
    assert text.startswith("Most exposed slice: **class 3** (class) under the LOSS attack, AUROC ")
    assert "all samples: " in text and "run_slices.csv" in text
    # seeded: the same seed gives the same table
    again = slice_table({"LOSS": _outputs(member_scores, non_member_scores, conf_m, conf_n)},
                        m_labels, n_labels, m_pred, n_pred, seed=0, resamples=100)
    assert again.equals(table)


def test_small_classes_are_merged_and_small_slices_marked():
    rng = np.random.default_rng(4)
    m_labels, n_labels, m_pred, n_pred = _labels(classes=100)   # ~4 samples a class and side
    m_labels[:60], n_labels[:60] = 0, 0                        # one class big enough
    slices = define_slices(rng.uniform(size=M), rng.uniform(size=N), m_labels, n_labels, m_pred, n_pred)
    classes = [s for s in slices if s.kind == "class"]
    assert [s.name for s in classes] == ["class 0", "other classes (99 with < 20 a side)"]
    assert classes[1].members.sum() == (m_labels != 0).sum() and classes[1].note == ""
    wrong = [s for s in slices if s.name == "correctly classified"][0]   # ~1% right at 100 classes
    assert wrong.note.startswith("fewer than 20 members or non-members")
    assert "not ranked" in slices_section(slice_table(
        {"A": _outputs(rng.normal(size=M), rng.normal(size=N), rng.uniform(size=M), rng.uniform(size=N))},
        m_labels, n_labels, m_pred, n_pred, seed=0, resamples=50))


def test_saturated_and_constant_confidences_and_empty_sides():
    conf_m = np.r_[np.ones(300), np.linspace(0.5, 0.9, 100)]   # most scores saturate at 1.0
    conf_n = np.r_[np.ones(100), np.linspace(0.3, 0.9, 300)]
    deciles = [s for s in define_slices(conf_m, conf_n) if s.kind == "confidence decile"]
    assert 1 < len(deciles) < 10 and deciles[-1].name.endswith("1..1")
    assert sum(s.members.sum() for s in deciles) == M and sum(s.non_members.sum() for s in deciles) == N
    assert [s.kind for s in define_slices(np.ones(5), np.ones(3))] == ["all", "confidence decile"]
    only_members = slice_table({"A": _outputs(np.ones(30), np.zeros(30), np.ones(30), np.full(30, 0.5))},
                               seed=0, resamples=20)
    empty = only_members[only_members["slice"].str.endswith("1..1")].iloc[0]
    assert np.isnan(empty["AUROC"]) and empty["note"] == "no non-members: no metrics"


def test_no_labels_gives_no_class_or_correctness_slices_and_bad_shapes_are_named():
    kinds = {s.kind for s in define_slices(np.full(50, 0.5), np.full(40, 0.6))}
    assert kinds == {"all", "confidence decile"}
    with pytest.raises(ValueError, match="member_labels must have shape \\(50,\\)"):
        define_slices(np.ones(50), np.ones(40), np.zeros(49, int), np.zeros(40, int))
    assert slice_table({"A": {"Members": None}}, seed=0).empty   # an attack without the Original set


def test_section_when_nothing_can_be_ranked():
    table = slice_table({"A": _outputs(np.ones(10), np.zeros(10), np.ones(10), np.ones(10))}, seed=0, resamples=20)
    assert slices_section(table).startswith("No slice has at least 20 members")
