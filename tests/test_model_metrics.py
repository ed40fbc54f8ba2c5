"""Model metrics against hand computations and a plain NumPy ECE; reliability diagrams."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from calibration.metrics import (ModelMetrics, accuracy, calibration_bins,
                                 expected_calibration_error, mean_max_prob, model_metrics,
                                 overconfidence_error)
from calibration.reliability import plot_reliability_curves, plot_reliability_diagram

# Four samples, two classes, 10 bins: confidences 0.95, 0.95 (bin 9), 0.65 (bin 6), 0.55 (bin 5).
PROBS = np.array([[0.95, 0.05], [0.05, 0.95], [0.65, 0.35], [0.45, 0.55]])
LABELS = np.array([0, 0, 0, 1])  # correct, wrong, correct, correct


def numpy_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Textbook ECE (Guo et al. 2017): bins (lo, hi], |acc - conf| weighted by bin size."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def random_probs(n: int, k: int, seed: int, sharpness: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.standard_normal((n, k))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = np.where(rng.random(n) < 0.7, probs.argmax(1), rng.integers(0, k, n))
    return probs, labels


def test_accuracy_and_mmps_by_hand():
    assert accuracy(PROBS, LABELS) == pytest.approx(0.75)
    assert mean_max_prob(PROBS) == pytest.approx((0.95 + 0.95 + 0.65 + 0.55) / 4)


def test_ece_by_hand():
    # bin 9: acc 1/2, conf 0.95 -> 2/4 * 0.45; bin 6: 1/4 * 0.35; bin 5: 1/4 * 0.45
    expected = 0.5 * 0.45 + 0.25 * 0.35 + 0.25 * 0.45
    assert expected_calibration_error(PROBS, LABELS, n_bins=10) == pytest.approx(expected, abs=1e-6)


def test_overconfidence_error_by_hand():
    # only bin 9 is overconfident (0.95 > 0.5): 2/4 * 0.95 * 0.45
    assert overconfidence_error(PROBS, LABELS, n_bins=10) == pytest.approx(0.5 * 0.95 * 0.45)
    underconfident = np.array([[0.6, 0.4], [0.4, 0.6]])
    assert overconfidence_error(underconfident, np.array([0, 1])) == 0.0


@pytest.mark.parametrize("seed, k, n_bins", [(0, 10, 15), (1, 3, 10), (2, 120, 15)])
def test_ece_matches_a_numpy_implementation(seed, k, n_bins):
    probs, labels = random_probs(2000, k, seed)
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(
        numpy_ece(probs, labels, n_bins), abs=1e-5)
    bins = calibration_bins(probs, labels, n_bins)
    from_bins = np.sum(bins.weights * np.abs(bins.accuracy - bins.confidence))
    assert from_bins == pytest.approx(numpy_ece(probs, labels, n_bins), abs=1e-9)


def test_calibration_bins_keep_full_confidence_in_the_last_bin():
    bins = calibration_bins(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.array([0, 0, 0]), 4)
    assert bins.counts.tolist() == [0, 0, 1, 2]
    assert bins.accuracy[-1] == 0.5 and bins.confidence[-1] == 1.0


def test_model_metrics_is_a_frozen_dataclass_and_accepts_tensors():
    metrics = model_metrics(torch.tensor(PROBS, dtype=torch.float32), torch.tensor(LABELS))
    assert isinstance(metrics, ModelMetrics)
    assert metrics.accuracy == pytest.approx(0.75)
    assert metrics.ece == pytest.approx(expected_calibration_error(PROBS, LABELS), abs=1e-6)
    assert metrics.overconfidence == pytest.approx(overconfidence_error(PROBS, LABELS))
    assert set(metrics.to_dict()) == {"accuracy", "ece", "overconfidence", "mean_max_prob"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.ece = 0.0


@pytest.mark.parametrize("probs, labels, match", [
    (PROBS, np.array([0, 0, -1, 1]), "label space"),
    (PROBS, np.array([0, 1]), "shape"),
    (np.array([[2.0, -1.0]]), np.array([0]), "logits"),
    (np.zeros((0, 3)), np.zeros(0), "N > 0"),
])
def test_metrics_reject_bad_input(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        model_metrics(probs, labels)


def test_reliability_diagram_is_written_atomically(tmp_path):
    probs, labels = random_probs(500, 10, 0)
    path = plot_reliability_diagram(probs, labels, tmp_path / "plots" / "reliability.png", "digits")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]  # no temporary left


def test_reliability_curves_in_one_figure(tmp_path):
    before, labels = random_probs(500, 10, 0, sharpness=6.0)
    after, _ = random_probs(500, 10, 0, sharpness=2.0)
    path = plot_reliability_curves([("plain", before, labels), ("calibrated", after, labels)],
                                   tmp_path / "both.png", "before / after")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="at least one"):
        plot_reliability_curves([], tmp_path / "none.png", "empty")
