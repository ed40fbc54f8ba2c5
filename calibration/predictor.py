"""Predictors: the one place probabilities come from.

A predictor wraps a trained model and maps a batch of images ``(N, C, H, W)`` to probabilities
``(N, num_classes)``. Calibration methods are predictors too, so the score stage never needs to
know which method made its probabilities.
"""
from __future__ import annotations

import torch
from torch import nn


class Predictor(nn.Module):
    """Base class. Subclasses implement :meth:`forward` returning probabilities.

    Attributes
    ----------
    method : str
        Short method name (``"softmax"``, ``"temperature"``, ``"llla"``).
    """

    method = "base"

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def describe(self) -> dict:
        """Parameters that identify this predictor (used in cache keys and manifests)."""
        return {"method": self.method}

    @property
    def modifier(self) -> str:
        """The paper's result-file modifier of this calibration (``""`` for none)."""
        return ""


def format_number(value: float) -> str:
    """How a number appears in result-file names: ``10 -> "10.0"``, ``3e-4 -> "0.0003"``.

    Python's ``str`` of the float, exactly as the paper's scripts format their command-line floats
    (``f"{args.weight_decay}"``): ``LS_0.0083_``, ``temp_10.0_calib_``, ``L2_1e-05_``.
    """
    return str(float(value))


class SoftmaxPredictor(Predictor):
    """Plain softmax over the model's logits (no calibration)."""

    method = "softmax"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(images).float(), dim=1)
