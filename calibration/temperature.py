"""Temperature scaling (Guo et al., *On Calibration of Modern Neural Networks*, ICML 2017).

Probabilities are ``softmax(logits / T)``: ``T > 1`` flattens them (less confident), ``T < 1``
sharpens them; the predicted class never changes. ``T`` is either given (the paper's run uses
``T = 10``) or fitted by minimising the negative log-likelihood on held-out data.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calibration.predictor import Predictor, format_number

TEMPERATURE_BOUNDS = (1e-2, 1e2)  # search interval of fit_temperature


class TemperaturePredictor(Predictor):
    """``softmax(model(images) / temperature)``.

    Parameters
    ----------
    model : nn.Module
        Maps images ``(N, C, H, W)`` to logits ``(N, K)``.
    temperature : float
        Positive, finite.
    """

    method = "temperature"

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__(model)
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive finite number, got {temperature}")
        self.temperature = temperature

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K)`` for images ``(N, C, H, W)``."""
        return torch.softmax(self.model(images).float() / self.temperature, dim=1)

    def describe(self) -> dict:
        return {"method": self.method, "temperature": self.temperature}

    @property
    def modifier(self) -> str:
        """``"temp_{T}_calib_"``, e.g. ``"temp_10.0_calib_"``."""
        return temperature_modifier(self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"


def temperature_modifier(temperature: float | str) -> str:
    """The paper's result-file modifier of a temperature run; a string (e.g. ``"fit"``) verbatim."""
    value = temperature if isinstance(temperature, str) else format_number(temperature)
    return f"temp_{value}_calib_"


@torch.no_grad()
def collect_logits(model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
                   batch_size: int = 512) -> torch.Tensor:
    """Logits ``(N, K)`` (float64, on the CPU) of ``model`` in eval mode over images ``(N, C, H, W)``."""
    model.eval()
    chunks = [model(images[start:start + batch_size].to(device)).double().cpu()
              for start in range(0, len(images), batch_size)]
    return torch.cat(chunks)


def fit_temperature_to_logits(logits: torch.Tensor, labels: torch.Tensor,
                              bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The ``T`` in ``bounds`` minimising ``NLL(softmax(logits / T), labels)``.

    Parameters
    ----------
    logits : Tensor ``(N, K)``
    labels : Tensor ``(N,)``
        Class indices in ``[0, K)``.

    Notes
    -----
    The NLL is convex in ``1 / T``, hence unimodal in ``log T``; a bounded scalar search (Brent)
    over ``log T`` finds its minimum without a learning rate or step count to tune.
    """
    from scipy.optimize import minimize_scalar

    logits = torch.as_tensor(logits, dtype=torch.float64).cpu()
    labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
    if logits.dim() != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"need logits (N, K) and labels (N,) with N > 0, got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}) to fit a temperature; "
                         "pass held-out in-distribution data (no unlabelled samples)")

    def nll(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    low, high = (math.log(b) for b in bounds)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(float(np.clip(result.x, low, high))))


def fit_temperature(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    device: torch.device | str = "cpu", batch_size: int = 512) -> float:
    """Fit ``T`` by minimising the NLL on held-out data (the caller passes held-out non-members).

    Parameters
    ----------
    model : nn.Module
        Maps images to logits; one forward pass over ``images``.
    images : Tensor ``(N, C, H, W)``
    labels : Tensor ``(N,)``

    Returns
    -------
    float
        The fitted temperature, within :data:`TEMPERATURE_BOUNDS`.
    """
    return fit_temperature_to_logits(collect_logits(model, images, device, batch_size), labels)
