"""Tests of attacks/evaluation.py: metrics, edge cases and CSV columns."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from attacks import (
    EXTRA_METRICS,
    PAPER_METRICS,
    AttackResult,
    EntropyAttack,
    ThresholdAttack,
    evaluate_attack,
)
from utils.naming import column_name


class CutAttack:
    """Stub attack: score = max probability, member when it is at least ``cut``."""

    name = "Cut"

    def __init__(self, cut):
        self.cut = cut

    def score(self, probs, labels=None):
        return np.asarray(probs).max(axis=1)

    def predict(self, probs, labels=None):
        return self.score(probs) >= self.cut


def with_max(maxima, n_classes=3):
    maxima = np.asarray(maxima, dtype=np.float64)
    probs = np.repeat(((1 - maxima) / (n_classes - 1))[:, None], n_classes, axis=1)
    probs[:, 0] = maxima
    return probs


MEMBERS = with_max([0.9, 0.8, 0.6, 0.5])
NON_MEMBERS = with_max([0.7, 0.4, 0.35, 0.34, 0.5, 0.45])


def test_confusion_metrics_and_mmps_by_hand():
    result = evaluate_attack(CutAttack(0.6), MEMBERS, NON_MEMBERS)
    # TP: 0.9 0.8 0.6 | FN: 0.5 | FP: 0.7 | TN: 0.4 0.35 0.34 0.5 0.45
    assert (result.n_members, result.n_non_members, result.attack_name) == (4, 6, "Cut")
    assert result.precision == pytest.approx(3 / 4)
    assert result.recall == pytest.approx(3 / 4)
    assert result.fpr == pytest.approx(1 / 6)
    assert result.accuracy == pytest.approx(8 / 10)
    assert result.tp_mmps == pytest.approx((0.9 + 0.8 + 0.6) / 3)
    assert result.fn_mmps == pytest.approx(0.5)
    assert result.fp_mmps == pytest.approx(0.7)
    assert result.tn_mmps == pytest.approx((0.4 + 0.35 + 0.34 + 0.5 + 0.45) / 5)


def test_everything_predicted_member():
    result = evaluate_attack(CutAttack(0.0), MEMBERS, NON_MEMBERS)
    assert result.fpr == 1.0 and result.recall == 1.0
    assert result.precision == pytest.approx(4 / 10)  # the base rate
    assert result.fn_mmps == 0.0 and result.tn_mmps == 0.0


def test_nothing_predicted_member():
    result = evaluate_attack(CutAttack(2.0), MEMBERS, NON_MEMBERS)
    assert result.precision == 0.0 and result.recall == 0.0 and result.fpr == 0.0
    assert result.accuracy == pytest.approx(6 / 10)
    assert result.tp_mmps == 0.0 and result.fp_mmps == 0.0
    assert result.fn_mmps == pytest.approx(MEMBERS.max(axis=1).mean())


def test_ties_at_the_threshold_are_non_members():
    # the paper's threshold attack: member iff max score > threshold (before: >=)
    attack = ThresholdAttack().fit(with_max([0.9, 0.8]), with_max([0.5, 0.4]))
    assert attack.threshold_ == 0.8
    result = evaluate_attack(attack, with_max([0.8, 0.85, 0.7]), with_max([0.8, 0.4]))
    assert result.recall == pytest.approx(1 / 3)
    assert result.fpr == 0.0
    assert result.fn_mmps == pytest.approx((0.8 + 0.7) / 2)
    assert result.tn_mmps == pytest.approx((0.8 + 0.4) / 2)


def test_aupr_is_the_trapezoidal_area_by_hand():
    # by score: 0.9 m, 0.8 n, 0.7 m, 0.6 n, 0.5 m, 0.4 n. PR points (recall, precision) from (0, 1):
    # (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), (1, 3/5) [full recall: the curve stops]
    result = evaluate_attack(CutAttack(0.5), with_max([0.9, 0.7, 0.5]), with_max([0.8, 0.6, 0.4]))
    trapezoids = (1 + 1) / 2 / 3 + (1 / 2 + 2 / 3) / 2 / 3 + (1 / 2 + 3 / 5) / 2 / 3
    assert trapezoids == pytest.approx(128 / 180)
    assert result.aupr == pytest.approx(128 / 180, abs=1e-6)  # float32, as torchmetrics computed it
    assert result.average_precision == pytest.approx((1 + 2 / 3 + 3 / 5) / 3, abs=1e-15)  # AP steps


def test_aupr_sorts_points_of_equal_recall_as_the_papers_reorder_did():
    # two members tie at 0.9, so recall steps are 1/2, 1/4, 1/4. The paper's curve, reversed:
    # recall [1, .75, .75, .5, .5, 0], precision [2/3, .6, .75, 2/3, 1, 1]; auc(reorder=True) sorts
    # the recalls (for so few points torch's sort keeps the order of equal ones), so the segments
    # join (0, 1)-(.5, 2/3), (.5, 1)-(.75, .6) and (.75, .75)-(1, 2/3)
    result = evaluate_attack(CutAttack(0.5), with_max([0.9, 0.9, 0.7, 0.5]), with_max([0.8, 0.6]))
    by_hand = (1 + 2 / 3) / 2 / 2 + (1 + 0.6) / 2 / 4 + (0.75 + 2 / 3) / 2 / 4
    assert result.aupr == pytest.approx(by_hand, abs=1e-6)
    along_the_curve = 1 / 2 + (2 / 3 + 0.75) / 2 / 4 + (0.6 + 2 / 3) / 2 / 4
    assert abs(by_hand - along_the_curve) > 0.04  # the order matters when member scores tie


@pytest.mark.parametrize(("seed", "n", "tolerance"), [(0, 14, 1e-6), (1, 14, 1e-6), (0, 400, 1e-3)])
def test_aupr_with_distinct_scores_is_about_the_area_along_the_curve(seed, n, tolerance):
    # distinct scores: a sort that keeps points of equal recall in the curve's order or its reverse
    # gives the area along the curve (exact for up to 16 points, where torch's sort is stable);
    # on more points torch's unstable sort may shuffle them, which moves the area a little
    rng = np.random.default_rng(seed)
    labels = np.arange(n) < n // 2
    scores = rng.random(n) + 0.3 * labels
    precision, recall, _ = precision_recall_curve(labels, scores)
    result = evaluate_attack(CutAttack(0.5), with_max(scores[labels] / 2 + 0.34),
                             with_max(scores[~labels] / 2 + 0.34))
    assert result.aupr == pytest.approx(auc(recall, precision), abs=tolerance)


def test_aupr_interpolates_across_tied_scores():
    # two members and one non-member tie at 1.0: the trapezoid runs straight from (0, 1) to
    # (2/3, 2/3), then to (1, 3/4); step-wise AP takes the lower precision over the whole step
    result = evaluate_attack(CutAttack(0.5), with_max([1.0, 1.0, 0.5]), with_max([1.0, 0.4, 0.34]))
    assert result.aupr == pytest.approx((1 + 2 / 3) / 2 * 2 / 3 + (2 / 3 + 3 / 4) / 2 / 3, abs=1e-6)
    assert result.aupr == pytest.approx(57 / 72, abs=1e-6)
    assert result.average_precision == pytest.approx(25 / 36, abs=1e-15)


def test_perfect_attack_curve_metrics():
    result = evaluate_attack(CutAttack(0.55), with_max([0.9, 0.8, 0.6]), with_max([0.5, 0.4]))
    assert result.auroc == 1.0 and result.aupr == 1.0 and result.average_precision == 1.0
    assert result.fpr_at_tpr95 == 0.0
    assert result.tpr_at_fpr == {0.001: 1.0, 0.01: 1.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curve_metrics_agree_with_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    # coarse maxima so that scores tie across members and non-members
    members = with_max(np.round(rng.uniform(0.4, 1.0, 300), 2))
    non_members = with_max(np.round(rng.uniform(0.34, 0.9, 500), 2))
    result = evaluate_attack(CutAttack(0.7), members, non_members)

    s_m, s_n = members.max(axis=1), non_members.max(axis=1)
    y, s = np.r_[np.ones(300), np.zeros(500)], np.r_[s_m, s_n]
    assert result.auroc == pytest.approx(roc_auc_score(y, s))
    assert result.average_precision == pytest.approx(average_precision_score(y, s))

    cuts = np.r_[np.unique(s), np.inf]
    tpr = np.array([(s_m >= t).mean() for t in cuts])
    fpr = np.array([(s_n >= t).mean() for t in cuts])
    assert result.fpr_at_tpr95 == pytest.approx(fpr[tpr >= 0.95].min())
    for level in (0.001, 0.01):
        assert result.tpr_at_fpr[level] == pytest.approx(tpr[fpr <= level].max())


def test_scores_not_decisions_drive_the_curves():
    entropy = EntropyAttack().fit(with_max([0.95, 0.9]), with_max([0.4, 0.5]))
    result = evaluate_attack(entropy, with_max([0.92, 0.6, 0.98]), with_max([0.45, 0.7]))
    scores = np.r_[entropy.score(with_max([0.92, 0.6, 0.98])), entropy.score(with_max([0.45, 0.7]))]
    assert result.auroc == pytest.approx(roc_auc_score([1, 1, 1, 0, 0], scores))


def test_torch_tensor_inputs():
    from_numpy = evaluate_attack(CutAttack(0.6), MEMBERS, NON_MEMBERS)
    from_torch = evaluate_attack(
        CutAttack(0.6), torch.from_numpy(MEMBERS), torch.from_numpy(NON_MEMBERS),
        torch.zeros(4, dtype=torch.long), torch.zeros(6, dtype=torch.long),
    )
    assert from_torch == from_numpy


@pytest.mark.parametrize(
    ("members", "non_members", "message"),
    [
        (MEMBERS[:, :2], NON_MEMBERS, r"member_probs: row 0 sums to 0.95"),
        (MEMBERS, np.zeros((0, 3)), r"non_member_probs: is empty"),
        (MEMBERS, with_max([0.5], n_classes=4), r"non_member_probs: has 4 classes but member_probs has 3"),
    ],
)
def test_bad_inputs_are_named(members, non_members, message):
    with pytest.raises(ValueError, match=message):
        evaluate_attack(CutAttack(0.5), members, non_members)


def test_bad_labels_are_named():
    message = r"non_member_labels: has 2 entries but non_member_probs has 6 rows"
    with pytest.raises(ValueError, match=message):
        evaluate_attack(CutAttack(0.5), MEMBERS, NON_MEMBERS, non_member_labels=[0, 1])


# ---------------------------------------------------------------- result record and CSV columns

PAPER_COLUMNS = [  # header of the paper's *_attack_results.csv, one attack
    "Threshold Attack Precision", "Threshold Attack Recall", "Threshold Attack AUROC",
    "Threshold Attack AUPR", "Threshold Attack FPR@95%TPR", "Threshold Attack FPR",
    "Threshold Attack TP_MMPS", "Threshold Attack FP_MMPS", "Threshold Attack FN_MMPS",
    "Threshold Attack TN_MMPS",
]


def test_as_row_puts_the_paper_columns_first_then_extras():
    result = evaluate_attack(ThresholdAttack().fit(MEMBERS, NON_MEMBERS), MEMBERS, NON_MEMBERS)
    row = result.as_row()
    assert list(row)[: len(PAPER_METRICS)] == PAPER_COLUMNS
    assert list(row)[len(PAPER_METRICS):] == [
        "Threshold Attack Accuracy", "Threshold Attack TPR@0.1%FPR", "Threshold Attack TPR@1%FPR",
        "Threshold Attack AP",
    ]
    assert list(row) == [column_name("Threshold", m) for m in PAPER_METRICS + EXTRA_METRICS]
    assert row["Threshold Attack FPR@95%TPR"] == result.fpr_at_tpr95
    assert row["Threshold Attack TP_MMPS"] == result.tp_mmps
    assert row["Threshold Attack TPR@1%FPR"] == result.tpr_at_fpr[0.01]
    assert row["Threshold Attack AUPR"] == result.aupr
    assert row["Threshold Attack AP"] == result.average_precision
    assert all(isinstance(v, float) for v in row.values())


def test_result_is_frozen():
    result = evaluate_attack(CutAttack(0.5), MEMBERS, NON_MEMBERS)
    assert isinstance(result, AttackResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.precision = 1.0


@pytest.mark.parametrize("seed", range(5))
def test_roc_points_match_scikit_learn_with_ties(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    from attacks.roc import roc_curve_points

    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.random(300) + 0.3 * labels, 1 + seed % 3)  # coarse rounding -> many ties
    ours = roc_curve_points(labels, scores)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_allclose(ours.thresholds[1:], thresholds[1:])
    assert ours.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert ours.average_precision == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    np.testing.assert_array_equal(ours.true_positives, np.rint(tpr[1:] * labels.sum()))
    np.testing.assert_array_equal(ours.false_positives, np.rint(fpr[1:] * (~labels).sum()))
