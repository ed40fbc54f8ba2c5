"""Temperature scaling (Guo et al., *On Calibration of Modern Neural Networks*, ICML 2017).

Probabilities are ``softmax(logits / T)``: ``T > 1`` flattens them (less confident), ``T < 1``
sharpens them; the predicted class never changes. ``T`` is either given (the paper's run uses
``T = 10``) or fitted by minimising the negative log-likelihood (NLL) on labelled data, either

- ``"lbfgs"`` (the paper's ``calibration/temperature_scaling.py``, the default): one
  ``torch.optim.LBFGS`` step from ``T = 1.0`` with ``lr=0.001``, ``max_iter=10000`` and a
  strong-Wolfe line search on the mean cross-entropy of ``logits / T`` in float32, whose closure
  never zeroes the gradient (so gradients accumulate across evaluations, as in the paper); or
- ``"bounded"``: a bounded scalar search for the NLL minimum over ``log T``
  (:data:`TEMPERATURE_BOUNDS`), which has no step size or start value to depend on.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calibration.predictor import Predictor
from calibration.spec import CalibrationData, CalibrationMethod
from utils.naming import temperature_modifier
from utils.options import Option

TEMPERATURE_BOUNDS = (1e-2, 1e2)  # search interval of the "bounded" fit
FIT_METHODS = ("lbfgs", "bounded")
TEMP_FITS = {"paper": "lbfgs", "held_out": "bounded"}  # --temp_fit -> the fit (and its rows)
# The paper's TemperatureScaling.calibrate: start value and LBFGS settings.
PAPER_LBFGS = {"start": 1.0, "lr": 0.001, "max_iter": 10000, "line_search_fn": "strong_wolfe"}


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

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"



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

    logits, labels = _checked(logits, labels, torch.float64)

    def nll(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    low, high = (math.log(b) for b in bounds)
    result = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(float(np.clip(result.x, low, high))))


def _checked(logits, labels, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits`` as ``dtype`` and ``labels`` as int64 on the CPU, after checking shapes and labels."""
    logits = torch.as_tensor(logits).to(device="cpu", dtype=dtype)
    labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
    if logits.dim() != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"need logits (N, K) and labels (N,) with N > 0, got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}) to fit a temperature; "
                         "pass in-distribution data (no unlabelled samples)")
    return logits, labels


def fit_temperature_lbfgs(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The paper's temperature fit on ``logits`` ``(N, K)`` and ``labels`` ``(N,)``.

    One ``LBFGS`` step (:data:`PAPER_LBFGS`: start ``T = 1.0``, ``lr=0.001``,
    ``max_iter=10000``, strong-Wolfe line search) minimising ``cross_entropy(logits / T, labels)``
    in float32. As in the paper's closure, the gradient of ``T`` is never zeroed between
    evaluations, so each evaluation sees the sum of the gradients computed so far.

    Returns
    -------
    float
        The temperature after the step.

    Raises
    ------
    ValueError
        Bad shapes or labels, or a fit that ends at a non-positive or non-finite temperature.
    """
    logits, labels = _checked(logits, labels, torch.float32)
    temperature = nn.Parameter(torch.tensor(PAPER_LBFGS["start"], dtype=torch.float32))
    optimizer = torch.optim.LBFGS([temperature], lr=PAPER_LBFGS["lr"], max_iter=PAPER_LBFGS["max_iter"],
                                  line_search_fn=PAPER_LBFGS["line_search_fn"])

    def closure() -> torch.Tensor:
        loss = F.cross_entropy(logits / temperature, labels)
        loss.backward()  # no zero_grad, as in the paper: gradients accumulate
        return loss

    optimizer.step(closure)
    value = float(temperature.detach())
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the paper's LBFGS temperature fit ended at T={value}; use --temp_value T, "
                         "or --temp_fit held_out for the bounded search")
    return value


def fit_temperature(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    device: torch.device | str = "cpu", batch_size: int = 512,
                    method: str = "lbfgs") -> float:
    """Fit ``T`` by minimising the NLL of ``model`` on labelled ``images``.

    Parameters
    ----------
    model : nn.Module
        Maps images to logits; one forward pass over ``images``.
    images : Tensor ``(N, C, H, W)``
    labels : Tensor ``(N,)``
    method : {"lbfgs", "bounded"}
        The paper's LBFGS step (:func:`fit_temperature_lbfgs`) or the bounded search
        (:func:`fit_temperature_to_logits`).

    Returns
    -------
    float
        The fitted temperature.
    """
    if method not in FIT_METHODS:
        raise ValueError(f"unknown temperature fit {method!r}; valid: {', '.join(FIT_METHODS)}")
    logits = collect_logits(model, images, device, batch_size)
    if method == "lbfgs":
        return fit_temperature_lbfgs(logits, labels)
    return fit_temperature_to_logits(logits, labels)


def temperature_predictor(model: nn.Module, *, fit_images: torch.Tensor | None = None,
                          fit_labels: torch.Tensor | None = None, temperature: float | None = None,
                          device: torch.device | str = "cpu", temperature_fit: str = "lbfgs",
                          **_other_methods_options: Any) -> TemperaturePredictor:
    """``temperature``, or ``T`` fitted on ``fit_images`` by ``temperature_fit`` (see
    :func:`calibration.build_predictor`)."""
    if temperature is None:
        if fit_images is None or fit_labels is None:
            raise ValueError("temperature scaling needs either temperature=T or held-out "
                             "fit_images and fit_labels to fit T on")
        temperature = fit_temperature(model, fit_images, fit_labels, device, method=temperature_fit)
    return TemperaturePredictor(model, temperature)


def fit_temperature_scaling(model: nn.Module, data: CalibrationData, values: Mapping[str, Any]) -> Predictor:
    """One model's temperature as a run fits it: ``--temp_value``, or fitted as the paper does
    (``--temp_fit paper``: LBFGS from ``T = 1`` on the model's own attack non-members) or on the
    held-out rows by a bounded search (``--temp_fit held_out``)."""
    paper = values["temp_fit"] == "paper"
    images, labels = data.attack_non_members if paper else data.held_out
    return temperature_predictor(model.to(data.device).eval(), fit_images=images, fit_labels=labels,
                                 temperature=values["temp_value"], device=data.device,
                                 temperature_fit=TEMP_FITS[values["temp_fit"]])


def _check(values: Mapping[str, Any]) -> None:
    value = values["temp_value"]
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"--temp_value must be a positive number, got {value}")
    if values["temp_fit"] not in TEMP_FITS:
        raise ValueError(f"--temp_fit must be one of {', '.join(TEMP_FITS)}, got {values['temp_fit']!r}")


TEMPERATURE = CalibrationMethod(
    name="temperature",
    switch=Option("temp_scaling", "calibrate with temperature scaling", default=False, action="store_true"),
    params=(
        Option("temp_value", "fixed temperature (the paper's run: {preset.temp_value}); omitted: fitted by "
                             "NLL (result files temp_calib_)", default=None, type=float),
        Option("temp_fit", "how a temperature without --temp_value is fitted: paper (default: LBFGS from T=1 "
                           "on each model's attack non-members, as the paper) or held_out (bounded NLL search "
                           "on the test rows that are not attack rows)", default="paper", type=str,
               choices=tuple(TEMP_FITS)),
    ),
    modifier=lambda values: temperature_modifier(values["temp_value"]),
    predictor=temperature_predictor, fit=fit_temperature_scaling, selected_by=("temp_value",), check=_check,
    modifier_prefix="temp_")
