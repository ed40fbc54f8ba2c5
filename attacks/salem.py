"""Salem et al.'s attack: an MLP on the top-k sorted prediction scores.

Salem et al., "ML-Leaks: Model and Data Independent Membership Inference Attacks and Defenses on
Machine Learning Models", NDSS 2019 (adversary 1, top-3 scores, 64 hidden units), trained as the
code of Hintersdorf et al. (IJCAI 2022) trains it (see ``attacks.salem_training``).
"""
from __future__ import annotations

import logging

import numpy as np

from attacks.base import AttackSpec, MembershipAttack
from attacks.salem_training import SalemTraining, predict_salem, train_salem_model
from utils.options import Option

logger = logging.getLogger(__name__)


def top_k_scores(probs: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest probabilities of each row of ``probs`` (N, C), descending; returns (N, k)."""
    return -np.sort(-probs, axis=1)[:, :k]


def adapted_k(k: int, classes: int) -> tuple[int, tuple[str, ...]]:
    """``(min(k, classes), notes)``: the top-k Salem can use on ``classes`` classes, and a one-line
    note when that is fewer than asked."""
    if k <= classes:
        return k, ()
    return classes, (f"Salem: k={k} top scores asked, the target has {classes} classes: used its {classes} "
                     f"sorted scores (k={classes})",)


class SalemAttack(MembershipAttack):
    """Member when the attack MLP on the top-k scores outputs at least 0.5 (``sigmoid >= 0.5`` in
    float32, the paper's rule); ``score`` is that float32 sigmoid output.

    Parameters
    ----------
    k : int
        Number of top scores fed to the MLP. On fewer classes than ``k`` (a binary classifier and the
        default 3) all the classes' scores are used: ``k_ = C``, said in ``notes`` and logged.
    hidden, lr, batch_size, window, min_diff, max_epochs, seed
        Attack MLP training (see ``attacks.salem_training.SalemTraining``); the defaults are the
        paper's: 64 hidden units, Adam 0.01, batches of 16 over all shadow scores, stop when the
        training loss has not improved by 5e-4 within 15 epochs, final weights, no epoch cap.

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted attack MLP (k -> hidden -> 1), float32.
    losses_ : list of float
        Mean training loss of every epoch trained (``len(losses_)`` epochs).
    k_ : int
        The number of top scores used: ``min(k, C)``.
    notes : tuple of str
        One line per adaptation made by the last ``fit`` (empty when ``k <= C``).
    """

    name = "Salem"
    notes: tuple[str, ...] = ()

    def __init__(self, k: int = 3, hidden: int = 64, lr: float = 0.01, batch_size: int = 16,
                 window: int = 15, min_diff: float = 5e-4, max_epochs: int | None = None,
                 seed: int = 0) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k
        self.hidden, self.lr, self.batch_size = hidden, lr, batch_size
        self.window, self.min_diff, self.max_epochs, self.seed = window, min_diff, max_epochs, seed
        self._training()  # fail early on bad hyperparameters

    def _training(self) -> SalemTraining:
        return SalemTraining(hidden=self.hidden, lr=self.lr, batch_size=self.batch_size,
                             window=self.window, min_diff=self.min_diff, max_epochs=self.max_epochs,
                             seed=self.seed)

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        self.k_, self.notes = adapted_k(self.k, members.shape[1])
        for note in self.notes:
            logger.warning(note)
        # the paper's order: non-members (target 0) first, then members (target 1)
        features = top_k_scores(np.concatenate([non_members, members]), self.k_)
        targets = np.concatenate([np.zeros(len(non_members)), np.ones(len(members))])
        self.model_, self.losses_ = train_salem_model(features, targets, self._training())

    def _score(self, probs, labels) -> np.ndarray:
        return predict_salem(self.model_, top_k_scores(probs, self.k_))

    def _decision_threshold(self) -> float:
        return 0.5


SALEM = AttackSpec("salem", SalemAttack,
                   params=(Option("salem_k", "top-k scores used by the Salem attack (default {default})", default=3,
                                  type=int, keyword="k", minimum=1,
                                  at_most_classes=True),), seeded=True, trains_attack_model=True)
