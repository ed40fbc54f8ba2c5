"""Shokri et al.'s attack: one attack model per class on the full prediction vector.

Shokri et al., "Membership Inference Attacks Against Machine Learning Models", IEEE S&P 2017.
Each attack model is a small MLP (``attacks.mlp``) trained on the shadow scores of one class.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attacks.base import AttackSpec, MembershipAttack
from attacks.mlp import mlp_config, train_binary_mlp

if TYPE_CHECKING:   # torch is imported where it is used: importing this module does not load it
    from torch import nn


def assign_classes(probs: np.ndarray, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The class each sample is attacked as: its label when in ``[0, C)``, else its predicted class.

    Parameters
    ----------
    probs : float array (N, C)
    labels : int array (N,) or None; values outside ``[0, C)`` (e.g. -1) mean "no usable label"

    Returns
    -------
    classes : int64 array (N,)
    from_label : bool array (N,), True where the label was used
    """
    predicted = probs.argmax(axis=1)
    if labels is None:
        return predicted, np.zeros(len(probs), dtype=bool)
    from_label = (labels >= 0) & (labels < probs.shape[1])
    return np.where(from_label, labels, predicted), from_label


def _describe_source(from_label: np.ndarray) -> str:
    if from_label.all():
        return "label"
    return "mixed" if from_label.any() else "predicted"


SCORE_CHUNK = 512  # samples per batched scoring step (bounds memory at N x C x hidden)


class StackedMLPs:
    """Several ``D -> H -> 1`` MLPs evaluated at once, each sample by the model of its class.

    One matrix product computes every model's hidden layer for every sample; each sample keeps
    the row of its own model. Equivalent to calling ``models[c]`` on the samples of class ``c``.
    """

    def __init__(self, models: list[nn.Module]):
        import torch
        with torch.no_grad():
            self.w1 = torch.cat([m[0].weight.T for m in models], dim=1)        # (D, C * H)
            self.b1 = torch.stack([m[0].bias for m in models])                 # (C, H)
            self.w2 = torch.stack([m[2].weight[0] for m in models])            # (C, H)
            self.b2 = torch.stack([m[2].bias[0] for m in models])              # (C,)
        self.hidden = self.b1.shape[1]

    def __call__(self, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Sigmoid outputs (N,) for ``features`` (N, D) and each sample's model index ``classes`` (N,)."""
        import torch
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float64))
        index = torch.from_numpy(np.asarray(classes, dtype=np.int64))
        with torch.no_grad():
            hidden = (x @ self.w1).view(len(x), -1, self.hidden)[torch.arange(len(x)), index]
            hidden = torch.relu(hidden + self.b1[index])
            logits = (hidden * self.w2[index]).sum(1) + self.b2[index]
            return torch.sigmoid(logits).numpy()


class ShokriAttack(MembershipAttack):
    """Member when the attack model of the sample's class outputs at least 0.5.

    Classes whose shadow data lack members or non-members use a global model trained on all
    shadow scores.

    Parameters
    ----------
    hidden, lr, batch_size, max_epochs, patience, val_fraction, seed
        Attack MLP training (see ``attacks.mlp.MLPConfig``), the same for every class.

    Attributes
    ----------
    models_ : dict[int, torch.nn.Module]
        Per-class attack models (C -> hidden -> 1).
    global_model_ : torch.nn.Module or None
        Fallback model, trained only when some class needs it.
    fallback_classes_ : tuple[int, ...]
        Classes scored by the global model.
    class_source : str
        How classes were chosen at the last ``fit`` / ``score`` / ``predict`` call: ``"label"``,
        ``"predicted"`` (no labels, or none in range), or ``"mixed"`` (some labels out of range).
    """

    name = "Shokri"

    def __init__(self, hidden: int = 64, lr: float = 0.01, batch_size: int = 128,
                 max_epochs: int = 100, patience: int = 5, val_fraction: float = 0.2,
                 seed: int = 0) -> None:
        self.hidden, self.lr, self.batch_size = hidden, lr, batch_size
        self.max_epochs, self.patience = max_epochs, patience
        self.val_fraction, self.seed = val_fraction, seed
        mlp_config(self)  # fail early on bad hyperparameters

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        probs = np.concatenate([members, non_members])
        targets = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
        labels = None
        if member_labels is not None or non_member_labels is not None:
            labels = np.concatenate([
                member_labels if member_labels is not None else np.full(len(members), -1),
                non_member_labels if non_member_labels is not None else np.full(len(non_members), -1),
            ])
        classes, from_label = assign_classes(probs, labels)
        self.class_source = _describe_source(from_label)

        config = mlp_config(self)
        self.models_, fallback = {}, []
        for c in range(probs.shape[1]):
            in_class = classes == c
            if len(np.unique(targets[in_class])) < 2:
                fallback.append(c)
                continue
            self.models_[c] = train_binary_mlp(probs[in_class], targets[in_class], config)
        self.fallback_classes_ = tuple(fallback)
        self.n_classes_fit_ = probs.shape[1]
        self.global_model_ = train_binary_mlp(probs, targets, config) if fallback else None

    def _score(self, probs, labels) -> np.ndarray:
        classes, from_label = assign_classes(probs, labels)
        self.class_source = _describe_source(from_label)
        stacked = self._stacked()
        return np.concatenate([stacked(probs[start:start + SCORE_CHUNK], classes[start:start + SCORE_CHUNK])
                               for start in range(0, len(probs), SCORE_CHUNK)])

    def _stacked(self) -> "StackedMLPs":
        """The per-class models as one batched computation (built once after fitting)."""
        if getattr(self, "_stacked_for", None) is not self.models_:
            models = [self.models_.get(c, self.global_model_) for c in range(self.n_classes_fit_)]
            self._stacked_models, self._stacked_for = StackedMLPs(models), self.models_
        return self._stacked_models

    def _decision_threshold(self) -> float:
        return 0.5


SHOKRI = AttackSpec("shokri", ShokriAttack, seeded=True, uses_labels=True, trains_attack_model=True,
                    trained_per_class=True)
