"""Predictors: the one place probabilities come from.

A predictor wraps a trained model and maps a batch of images ``(N, C, H, W)`` to probabilities
``(N, num_classes)``. Calibration methods are predictors too, so the score stage never needs to
know which method made its probabilities.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from calibration.spec import CalibrationData, CalibrationMethod


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



class SoftmaxPredictor(Predictor):
    """Plain softmax over the model's logits (no calibration)."""

    method = "softmax"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(images).float(), dim=1)


def softmax_predictor(model: nn.Module, **_other_methods_options: Any) -> SoftmaxPredictor:
    """Plain softmax (no calibration)."""
    return SoftmaxPredictor(model)


def fit_softmax(model: nn.Module, data: CalibrationData, values: Mapping[str, Any]) -> SoftmaxPredictor:
    return SoftmaxPredictor(model)


SOFTMAX = CalibrationMethod(name="softmax", switch=None, params=(), modifier=lambda values: "",
                            predictor=softmax_predictor, fit=fit_softmax)
