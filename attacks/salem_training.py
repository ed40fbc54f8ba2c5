"""The paper's training of the Salem attack model (``attacks/salem_attack.py`` and
``utils/training.py`` of Hintersdorf et al., IJCAI 2022).

An MLP ``k -> 64 -> 1`` (ReLU) in float32, trained with Adam (lr 0.01) and ``BCEWithLogitsLoss`` on
minibatches of 16 reshuffled every epoch, on *all* shadow samples (no hold-out). After every epoch
the mean training loss goes to :class:`EarlyStopper` (window 15, minimum improvement 5e-4); training
stops when it says so and keeps the final weights. Deterministic given ``seed``; the global torch
random state and thread count are left as they were.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math
from dataclasses import dataclass

import numpy as np

from utils.threads import single_thread

if TYPE_CHECKING:   # torch is imported where it is used: importing this module does not load it
    from torch import nn


class EarlyStopper:
    """The paper's stopping rule on a sequence of training losses, one per epoch.

    ``should_stop(loss)`` says "stop" when at least ``window`` epochs have passed since the best
    loss was last improved by at least ``min_diff`` and ``loss`` is not below ``best - min_diff``.
    Exactly, per call: stop (and reset the count) if ``best <= loss + min_diff`` and
    ``count >= window``; else, if ``loss < best`` and ``best - loss >= min_diff``, take ``loss`` as
    the new best and reset the count; then add one to the count.
    """

    def __init__(self, window: int = 15, min_diff: float = 5e-4) -> None:
        self.window, self.min_diff = window, min_diff
        self.best = math.inf
        self.count = 0

    def should_stop(self, loss: float) -> bool:
        """Feed one epoch's loss; True means stop training now."""
        if self.best <= loss + self.min_diff and self.count >= self.window:
            self.count = 0
            return True
        if loss < self.best and self.best - loss >= self.min_diff:
            self.best, self.count = loss, 0
        self.count += 1
        return False


@dataclass(frozen=True)
class SalemTraining:
    """Hyperparameters of the paper's Salem attack model (its defaults)."""

    hidden: int = 64            # hidden units
    lr: float = 0.01            # Adam learning rate
    batch_size: int = 16        # samples per Adam step (reshuffled every epoch)
    window: int = 15            # EarlyStopper window (epochs)
    min_diff: float = 5e-4      # EarlyStopper minimum improvement of the mean training loss
    max_epochs: int | None = None  # cap on epochs; None = only the early stopper ends training (paper)
    seed: int = 0               # initialisation and shuffling

    def __post_init__(self) -> None:
        for name in ("hidden", "batch_size", "window"):
            _check_positive_int(name, getattr(self, name))
        if self.max_epochs is not None:
            _check_positive_int("max_epochs", self.max_epochs)
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not _is_number(self.min_diff) or self.min_diff < 0:
            raise ValueError(f"min_diff must be a number >= 0, got {self.min_diff!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def train_salem_model(features: np.ndarray, targets: np.ndarray,
                      config: SalemTraining) -> tuple[nn.Module, list[float]]:
    """Train the attack model on ``features`` (N, k) to output the logit of ``targets == 1``.

    Parameters
    ----------
    features : array (N, k), used as float32
    targets : array (N,) of 0 / 1
    config : SalemTraining

    Returns
    -------
    model : torch.nn.Module in eval mode, float32, (N, k) -> logits (N, 1); the final weights
    losses : list of float, the mean training loss of every epoch trained (the early stopper's input)
    """
    import torch
    from torch import nn
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = nn.Sequential(nn.Linear(x.shape[1], config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        shuffle = torch.Generator().manual_seed(config.seed)
        stopper = EarlyStopper(config.window, config.min_diff)
        losses: list[float] = []
        while len(losses) != config.max_epochs:
            running_loss = 0.0
            for batch in torch.randperm(len(x), generator=shuffle).split(config.batch_size):
                optimizer.zero_grad()
                loss = loss_fn(model(x[batch]).squeeze(1), y[batch])
                loss.backward()
                optimizer.step()
                running_loss += loss.item() * len(batch)
            losses.append(running_loss / len(x))
            if stopper.should_stop(losses[-1]):
                break
    return model.eval(), losses


def predict_salem(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """Sigmoid output of the attack model on ``features`` (N, k), float32 array (N,)."""
    import torch
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    with single_thread(), torch.no_grad():
        return torch.sigmoid(model(x)).squeeze(1).numpy()
