"""Salem et al.'s attack: an MLP on the top-k sorted prediction scores.

Salem et al., "ML-Leaks: Model and Data Independent Membership Inference Attacks and Defenses on
Machine Learning Models", NDSS 2019 (adversary 1, top-3 scores, 64 hidden units).
"""
from __future__ import annotations

import numpy as np

from attacks.base import MembershipAttack
from attacks.mlp import mlp_config, predict_proba, train_binary_mlp


def top_k_scores(probs: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest probabilities of each row of ``probs`` (N, C), descending; returns (N, k)."""
    return -np.sort(-probs, axis=1)[:, :k]


class SalemAttack(MembershipAttack):
    """Member when the attack MLP on the top-k scores outputs at least 0.5.

    Parameters
    ----------
    k : int
        Number of top scores fed to the MLP; at most the number of classes.
    hidden, lr, batch_size, max_epochs, patience, val_fraction, seed
        Attack MLP training (see ``attacks.mlp.MLPConfig``): Adam, BCE with logits, minibatches,
        early stopping on ``val_fraction`` of the shadow data held out per membership value.

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted attack MLP (k -> hidden -> 1), float64.
    """

    name = "Salem"

    def __init__(self, k: int = 3, hidden: int = 64, lr: float = 0.01, batch_size: int = 128,
                 max_epochs: int = 100, patience: int = 5, val_fraction: float = 0.2,
                 seed: int = 0) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k
        self.hidden, self.lr, self.batch_size = hidden, lr, batch_size
        self.max_epochs, self.patience = max_epochs, patience
        self.val_fraction, self.seed = val_fraction, seed
        mlp_config(self)  # fail early on bad hyperparameters

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        if self.k > members.shape[1]:
            raise ValueError(
                f"SalemAttack: k={self.k} exceeds the number of classes ({members.shape[1]})"
            )
        features = top_k_scores(np.concatenate([members, non_members]), self.k)
        targets = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
        self.model_ = train_binary_mlp(features, targets, mlp_config(self))

    def _score(self, probs, labels) -> np.ndarray:
        return predict_proba(self.model_, top_k_scores(probs, self.k))

    def _decision_threshold(self) -> float:
        return 0.5
