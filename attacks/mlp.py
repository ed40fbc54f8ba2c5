"""A small binary MLP (d -> hidden -> 1, ReLU) trained with Adam and early stopping.

Used by the Shokri attack (the Salem attack trains as the paper's code does, in
``attacks.salem_training``). Training is deterministic given ``seed`` and leaves the
global torch and NumPy random states untouched. Training and inference run on one CPU thread
(restored afterwards): for models this small, more threads are slower, and much slower on a busy
machine.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import copy
from dataclasses import dataclass, fields

import numpy as np

from utils.threads import single_thread

if TYPE_CHECKING:   # torch is imported where it is used: importing this module does not load it
    from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    """Hyperparameters of the attack MLP.

    Architecture and learning rate are those of the paper's Salem attack (k -> 64 -> 1, Adam 0.01);
    Shokri has no counterpart in the paper's code. Batches are larger than the paper's 16 and early
    stopping watches a held-out validation loss, so fitting 5,000 scores takes about a second.
    """

    hidden: int = 64            # hidden units
    lr: float = 0.01            # Adam learning rate
    batch_size: int = 128       # samples per Adam step (reshuffled every epoch)
    max_epochs: int = 100       # passes over the training part at most
    patience: int = 5           # epochs without a lower validation loss before stopping
    min_delta: float = 1e-4     # smallest decrease of the validation loss that counts
    val_fraction: float = 0.2   # share of each membership value held out for early stopping
    seed: int = 0               # initialisation, split and shuffling

    def __post_init__(self) -> None:
        for name in ("hidden", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not _is_number(self.min_delta) or self.min_delta < 0:
            raise ValueError(f"min_delta must be a number >= 0, got {self.min_delta!r}")
        if not _is_number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be a number in [0, 1), got {self.val_fraction!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def mlp_config(attack: object) -> MLPConfig:
    """The ``MLPConfig`` named by an attack's attributes of the same names."""
    names = [f.name for f in fields(MLPConfig) if hasattr(attack, f.name)]
    return MLPConfig(**{name: getattr(attack, name) for name in names})


def train_binary_mlp(features: np.ndarray, targets: np.ndarray, config: MLPConfig) -> nn.Module:
    """Train an MLP to output the logit of ``targets == 1``.

    Parameters
    ----------
    features : float64 array (N, D)
    targets : array (N,) of 0 / 1
    config : MLPConfig

    Returns
    -------
    torch.nn.Module in eval mode, float64, mapping (N, D) to logits (N, 1): the weights of the
    epoch with the lowest validation loss (the last epoch's when nothing can be held out).
    """
    import torch
    from torch import nn
    targets = np.asarray(targets, dtype=np.float64)
    train_idx, val_idx = _stratified_split(targets, config.val_fraction, config.seed)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
    y = torch.from_numpy(targets).unsqueeze(1)
    x_train, y_train, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]

    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = nn.Sequential(
            nn.Linear(x.shape[1], config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1)
        ).double()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        shuffle = torch.Generator().manual_seed(config.seed)

        best_loss, best_state, stale = np.inf, None, 0
        for _ in range(config.max_epochs):
            for batch in torch.randperm(len(x_train), generator=shuffle).split(config.batch_size):
                optimizer.zero_grad()
                loss_fn(model(x_train[batch]), y_train[batch]).backward()
                optimizer.step()
            if len(val_idx) == 0:
                continue
            with torch.no_grad():
                val_loss = loss_fn(model(x_val), y_val).item()
            if val_loss < best_loss - config.min_delta:
                best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def predict_proba(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """Sigmoid output of ``model`` on ``features`` (N, D) as a float64 array (N,)."""
    import torch
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
    with single_thread(), torch.no_grad():
        return torch.sigmoid(model(x)).squeeze(1).numpy()




def _stratified_split(targets: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``val_fraction`` of each target value (keeping at least one for training)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for value in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == value))
        n_val = min(int(val_fraction * len(idx)), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
