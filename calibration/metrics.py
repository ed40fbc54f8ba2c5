"""Model metrics from probabilities: accuracy, ECE, overconfidence error, mean maximum score.

All functions take ``probs`` ``(N, K)`` (rows sum to 1) and integer ``labels`` ``(N,)`` in
``[0, K)``, as NumPy arrays or torch tensors.

Binning: ``n_bins`` equal-width confidence bins ``[0, 1/n), [1/n, 2/n), ...``. The ECE comes from
torchmetrics' ``MulticlassCalibrationError`` (norm ``"l1"``), which casts confidences to float32
and puts a confidence of exactly 1.0 into a bin of its own; :func:`calibration_bins` (used by the
overconfidence error and the reliability diagram) keeps it in the last bin instead. The two agree
whenever no confidence is exactly 1.0 in float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

N_BINS = 15  # the paper's ECE bins


def _as_arrays(probs, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    probs = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    probs = probs.astype(np.float64, copy=False)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must have shape (N, K) with N > 0, got {probs.shape}")
    if not (np.isfinite(probs).all() and probs.min() >= -1e-6 and probs.max() <= 1 + 1e-6
            and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError("probs must be probabilities in [0, 1] with rows summing to 1 "
                         "(were logits passed?)")
    probs = np.clip(probs, 0.0, 1.0)
    if labels is None:
        return probs, None
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    labels = labels.astype(np.int64, copy=False)
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {labels.shape}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}); model metrics need samples "
                         "from the model's label space (found unlabelled or out-of-range labels)")
    return probs, labels


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of the top-1 prediction.

    Attributes
    ----------
    edges : ndarray ``(n_bins + 1,)``
    counts : ndarray ``(n_bins,)`` of int
    confidence, accuracy : ndarray ``(n_bins,)``
        Mean top-1 probability and fraction correct per bin (0 for an empty bin).
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """Fraction of the samples in each bin, ``(n_bins,)``."""
        return self.counts / max(int(self.counts.sum()), 1)


def calibration_bins(probs, labels, n_bins: int = N_BINS) -> CalibrationBins:
    """Bin the top-1 confidences of ``probs`` ``(N, K)`` into ``n_bins`` equal-width bins."""
    probs, labels = _as_arrays(probs, labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    safe = np.maximum(counts, 1)
    return CalibrationBins(edges, counts,
                           np.bincount(index, weights=confidence, minlength=n_bins) / safe,
                           np.bincount(index, weights=correct, minlength=n_bins) / safe)


def accuracy(probs, labels) -> float:
    """Fraction of samples whose arg-max class equals the label."""
    probs, labels = _as_arrays(probs, labels)
    return float((probs.argmax(axis=1) == labels).mean())


def mean_max_prob(probs) -> float:
    """Mean maximum prediction score (MMPS) of ``probs`` ``(N, K)``."""
    probs, _ = _as_arrays(probs)
    return float(probs.max(axis=1).mean())


def expected_calibration_error(probs, labels, n_bins: int = N_BINS) -> float:
    """ECE, ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|``, via torchmetrics (norm ``"l1"``)."""
    from torchmetrics.classification import MulticlassCalibrationError

    probs, labels = _as_arrays(probs, labels)
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    return float(metric(torch.from_numpy(probs), torch.from_numpy(labels)))


def overconfidence_error(probs, labels, n_bins: int = N_BINS) -> float:
    """OE, ``sum_b |B_b|/N * conf(B_b) * max(conf(B_b) - acc(B_b), 0)`` (Thulasidasan et al.,
    *On Mixup Training*, NeurIPS 2019)."""
    bins = calibration_bins(probs, labels, n_bins)
    gap = np.maximum(bins.confidence - bins.accuracy, 0.0)
    return float(np.sum(bins.weights * bins.confidence * gap))


@dataclass(frozen=True)
class ModelMetrics:
    """Model-side metrics of one set of predictions."""

    accuracy: float
    ece: float
    overconfidence: float
    mean_max_prob: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def model_metrics(probs, labels, n_bins: int = N_BINS) -> ModelMetrics:
    """Accuracy, ECE, overconfidence error and MMPS of ``probs`` ``(N, K)`` against ``labels``."""
    probs, labels = _as_arrays(probs, labels)
    return ModelMetrics(accuracy(probs, labels), expected_calibration_error(probs, labels, n_bins),
                        overconfidence_error(probs, labels, n_bins), mean_max_prob(probs))
