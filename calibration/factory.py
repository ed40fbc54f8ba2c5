"""Build a predictor by name, and the paper's result-file modifiers.

>>> result_modifier(label_smoothing_factor=0.0083)
'LS_0.0083_'
>>> result_modifier(weight_decay=3e-4, temperature=10)
'L2_0.0003_temp_10.0_calib_'
>>> result_modifier(temp_scaling=True)
'temp_calib_'
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import DataLoader

from calibration.laplace import PRIOR_METHODS, LaplacePredictor
from calibration.predictor import Predictor, SoftmaxPredictor, format_number
from calibration.temperature import TemperaturePredictor, fit_temperature, temperature_modifier

METHODS = ("softmax", "temperature", "llla")


def build_predictor(model: nn.Module, method: str = "softmax", *,
                    fit_images: torch.Tensor | None = None, fit_labels: torch.Tensor | None = None,
                    train_loader: DataLoader | None = None, temperature: float | None = None,
                    llla_prior: str = "marglik", ood_images: torch.Tensor | None = None,
                    device: torch.device | str = "cpu", link_approx: str = "probit",
                    temperature_fit: str = "lbfgs") -> Predictor:
    """A predictor (images ``(N, C, H, W)`` -> probabilities ``(N, K)``) for ``model``.

    Parameters
    ----------
    model : nn.Module
        Trained classifier returning logits; moved to ``device`` and set to eval mode.
    method : {"softmax", "temperature", "llla"}
    fit_images, fit_labels : Tensor ``(M, C, H, W)``, ``(M,)``
        Held-out in-distribution data (non-members): fits ``T`` when ``temperature`` is None;
        the NLL term of the ``"gridsearch"`` / ``"ood_grid"`` LLLA priors.
    train_loader : DataLoader
        The model's training set, batches ``(images, labels)`` (``"llla"``).
    temperature : float, optional
        Fixed temperature (the paper's run uses 10); None fits it on ``fit_images``.
    temperature_fit : {"lbfgs", "bounded"}
        How ``T`` is fitted: the paper's LBFGS step from ``T = 1`` or a bounded search
        (:mod:`calibration.temperature`).
    llla_prior : {"marglik", "gridsearch", "ood_grid"}
        How the LLLA prior precision is tuned (see :mod:`calibration.laplace`).
    ood_images : Tensor ``(L, C, H, W)``
        Out-of-distribution images (noise) for ``llla_prior="ood_grid"``.
    device : torch.device or str
    link_approx : {"probit", "mc"}
        LLLA predictive approximation.
    """
    key = method.lower() if isinstance(method, str) else method
    if key not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; valid: {', '.join(METHODS)}")
    model = model.to(device).eval()
    if key == "softmax":
        return SoftmaxPredictor(model)
    if key == "temperature":
        if temperature is None:
            if fit_images is None or fit_labels is None:
                raise ValueError("temperature scaling needs either temperature=T or held-out "
                                 "fit_images and fit_labels to fit T on")
            temperature = fit_temperature(model, fit_images, fit_labels, device, method=temperature_fit)
        return TemperaturePredictor(model, temperature)
    if llla_prior not in PRIOR_METHODS:
        raise ValueError(f"unknown llla_prior {llla_prior!r}; valid: {', '.join(PRIOR_METHODS)}")
    if train_loader is None:
        raise ValueError("llla needs train_loader, a DataLoader over the model's training set")
    if llla_prior != "marglik" and (fit_images is None or fit_labels is None):
        raise ValueError(f"llla_prior={llla_prior!r} needs held-out in-distribution fit_images and "
                         "fit_labels for its NLL term")
    if llla_prior == "ood_grid" and ood_images is None:
        raise ValueError("llla_prior='ood_grid' needs ood_images, e.g. uniform noise in the model's "
                         "input domain: domain.normalize(torch.rand(n, *domain.shape))")
    predictor = LaplacePredictor(model, link_approx=link_approx).fit(train_loader)
    predictor.optimize_prior(llla_prior, val_images=fit_images, val_labels=fit_labels,
                             ood_images=ood_images)
    return predictor


def result_modifier(label_smoothing_factor: float | None = None, weight_decay: float = 0.0,
                    llla: bool = False, temperature: float | str | None = None,
                    temp_scaling: bool = False) -> str:
    """The paper's file-name modifier: ``LS_{f}_``, ``L2_{wd}_``, ``LLLA_``, ``temp_{T}_calib_``.

    A single modifier is named exactly as the paper's scripts name it (numbers as ``str`` of the
    float; a fitted temperature, ``temp_scaling=True`` without ``temperature``, is ``temp_calib_``).
    The paper's scripts keep only the first of these in that order (an ``if/elif`` chain, so e.g.
    its LS + temperature run overwrites its LS run's files); here every set part is kept, in that
    fixed order, and they concatenate: ``LS_0.1_L2_0.001_temp_calib_``. Unset parts (None, 0,
    False) are left out, so a plain run gives ``""``. A string ``temperature`` is written verbatim.
    """
    parts = []
    if label_smoothing_factor:
        parts.append(f"LS_{format_number(_non_negative('label_smoothing_factor', label_smoothing_factor))}_")
    if weight_decay:
        parts.append(f"L2_{format_number(_non_negative('weight_decay', weight_decay))}_")
    if llla:
        parts.append("LLLA_")
    if temperature is not None or temp_scaling:
        if temperature is not None and not isinstance(temperature, str):
            temperature = _non_negative("temperature", temperature)
            if temperature == 0:
                raise ValueError("temperature must be positive, got 0")
        parts.append(temperature_modifier(temperature))
    return "".join(parts)


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {value}")
    return value
