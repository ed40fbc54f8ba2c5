"""One predictor's probabilities on a split through the score cache, and a split reassembled from parts."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.scores import Scores
from models.inference import ScoreCache, compute_probs
from pipeline.stages.data import SplitTensors


@dataclass
class Scorer:
    """Scores one predictor's inputs through the cache; one forward per sample on a miss."""

    predictor: torch.nn.Module
    model_fingerprint: str
    device: torch.device
    cache: ScoreCache
    batch_size: int = 512
    classes: int | None = None   # columns of the model's output (checks cache entries)

    def __post_init__(self) -> None:
        self.predictor.eval()

    def __call__(self, tensors: SplitTensors, in_label_space: bool = True) -> Scores:
        key = (ScoreCache.key(self.model_fingerprint, self.predictor.describe(), tensors.images)
               if self.cache.enabled else None)
        return self.cache.get_or_compute(
            key, tensors.labels, in_label_space,
            lambda: compute_probs(self.predictor, tensors.images, self.device, self.batch_size),
            classes=self.classes)


def merge_rows(n_rows: int, parts: list[tuple[np.ndarray, Scores]]) -> Scores:
    """Reassemble a split's scores from disjoint row subsets ``(positions, scores)``."""
    n_classes = parts[0][1].probs.shape[1]
    probs = np.empty((n_rows, n_classes), dtype=parts[0][1].probs.dtype)
    labels = np.empty(n_rows, dtype=np.int64)
    for positions, scores in parts:
        probs[positions], labels[positions] = scores.probs, scores.labels
    return Scores(probs, labels, parts[0][1].in_label_space)
