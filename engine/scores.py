"""What attacks read from a model: probabilities ``(N, C)`` and labels ``(N,)`` of one set (no torch)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Probabilities of one model on one set.

    Attributes
    ----------
    probs : ndarray, shape (N, C), the predictor's dtype (float32 or float64)
    labels : ndarray, shape (N,), int64; -1 where the set has no label in the model's space
    in_label_space : bool
    """

    probs: np.ndarray
    labels: np.ndarray
    in_label_space: bool = True

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def max_probs(self) -> np.ndarray:
        return self.probs.max(axis=1)

    @property
    def attack_labels(self) -> np.ndarray | None:
        """Labels to hand to attacks: ``None`` when the set is outside the label space."""
        return self.labels if self.in_label_space else None
