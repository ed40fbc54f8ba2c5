"""The calibration methods a run can choose (one registry), and building a predictor by name."""
from __future__ import annotations

import inspect
from typing import Any, Mapping

import torch
from torch import nn

from calibration.llla import LLLA
from calibration.predictor import SOFTMAX, Predictor
from calibration.spec import CalibrationMethod, CalibrationSpec
from calibration.temperature import TEMPERATURE
from utils.options import Option

CALIBRATIONS: dict[str, CalibrationMethod] = {method.name: method for method in (SOFTMAX, TEMPERATURE, LLLA)}
METHODS = tuple(CALIBRATIONS)


def modifier_prefixes() -> tuple[str, ...]:
    """How the calibration methods' result-file modifiers begin (``"LLLA"``, ``"temp_"``)."""
    return tuple(method.modifier_prefix for method in CALIBRATIONS.values() if method.modifier_prefix)


def calibration_options() -> list[Option]:
    """Every calibration flag: each method's switch, then its options."""
    return [option for method in CALIBRATIONS.values()
            for option in ((method.switch,) if method.switch else ()) + method.params]


def calibration_spec(values: Mapping[str, Any]) -> CalibrationSpec:
    """The calibration that option ``values`` (name -> value, from flags or keywords) ask for.

    A method is chosen by its switch (``--llla``) or by one of its ``selected_by`` options
    (``--temp_value``); none chosen is the plain softmax; two are an error naming the flags.
    """
    chosen = [method for method in CALIBRATIONS.values()
              if (method.switch and values.get(method.switch.name))
              or any(values.get(name) is not None for name in method.selected_by)]
    if len(chosen) > 1:
        flags = [_choosing_flag(method, values) for method in chosen]
        raise ValueError(f"{' and '.join(flags)} choose different calibrations "
                         f"({', '.join(method.name for method in chosen)}); pass only one of them")
    method = chosen[0] if chosen else SOFTMAX
    params = {option.name: values[option.name] if values.get(option.name) is not None else option.default
              for option in method.params}
    spec = CalibrationSpec(method.name, params)
    check_spec(spec)
    return spec


def check_spec(spec: CalibrationSpec) -> None:
    """Raise ValueError (naming the flag) for an unknown method or bad option values."""
    if spec.method not in CALIBRATIONS:
        raise ValueError(f"unknown calibration method {spec.method!r}; valid: {', '.join(CALIBRATIONS)}")
    method = CALIBRATIONS[spec.method]
    missing = {option.name for option in method.params} - set(spec.params)
    if missing:
        raise ValueError(f"calibration {spec.method} lacks option(s) {', '.join(sorted(missing))}")
    if method.check:
        method.check(spec.params)


def spec_modifier(spec: CalibrationSpec) -> str:
    """The paper's result-file modifier of ``spec`` (``""``, ``LLLA_``, ``temp_10.0_calib_``)."""
    return CALIBRATIONS[spec.method].modifier(spec.params)


def build_predictor(model: nn.Module, method: str = "softmax", *,
                    device: torch.device | str = "cpu", **options: Any) -> Predictor:
    """A predictor (images ``(N, C, H, W)`` -> probabilities ``(N, K)``) for ``model``.

    Parameters
    ----------
    model : nn.Module
        Trained classifier returning logits; moved to ``device`` and set to eval mode.
    method : a key of :data:`CALIBRATIONS` ("softmax", "temperature", "llla"); any case
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
    llla_prior : {"ood_grid", "gridsearch", "marglik"}, optional
        How the LLLA prior is tuned (see :func:`llla_prior_choice`); None: ``"ood_grid"`` for
        the paper's implementation, ``"marglik"`` for laplace-torch's.
    ood_images : Tensor ``(L, C, H, W)``
        Out-of-distribution images (noise) for ``llla_prior="ood_grid"``.
    device : torch.device or str
    link_approx : {"probit", "mc"}
        LLLA predictive approximation of laplace-torch's implementation.
    llla_impl : {"paper", "laplace"}
        The paper's own LLLA (:mod:`calibration.llla_paper`) or laplace-torch's
        (:mod:`calibration.laplace`).
    seed : int
        Seed of the paper's LLLA (sampled KFAC labels, Monte Carlo predictive).
    """
    key = method.lower() if isinstance(method, str) else method
    if key not in CALIBRATIONS:
        raise ValueError(f"unknown calibration method {method!r}; valid: {', '.join(CALIBRATIONS)}")
    predictor = CALIBRATIONS[key].predictor
    accepted = {name for name, p in inspect.signature(predictor).parameters.items()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"model"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"calibration {key}: unknown option(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(accepted - {'device'})) or 'none'}")
    return predictor(model.to(device).eval(), device=device, **options)


def _choosing_flag(method: CalibrationMethod, values: Mapping[str, Any]) -> str:
    if method.switch and values.get(method.switch.name):
        return method.switch.cli_flag
    return next(f"--{name}" for name in method.selected_by if values.get(name) is not None)
