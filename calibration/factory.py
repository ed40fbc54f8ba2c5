"""Build a predictor by name."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from calibration.laplace import PRIOR_METHODS, LaplacePredictor
from calibration.llla_paper import PaperLaplacePredictor
from calibration.predictor import Predictor, SoftmaxPredictor
from calibration.temperature import TemperaturePredictor, fit_temperature

METHODS = ("softmax", "temperature", "llla")
LLLA_IMPLEMENTATIONS = ("paper", "laplace")
# --llla_prior choices per implementation; the first is the default
LLLA_PRIORS = {"paper": ("ood_grid", "gridsearch"), "laplace": ("gridsearch", "marglik", "ood_grid")}


def llla_prior_choice(implementation: str, prior: str | None) -> str:
    """The LLLA prior search to use: ``prior``, or the implementation's default when None.

    The paper's implementation knows ``"ood_grid"`` (its search: validation NLL + 0.25 x the
    noise term) and ``"gridsearch"`` (the NLL term alone, on the same grid); laplace-torch's
    also ``"marglik"``.
    """
    if implementation not in LLLA_IMPLEMENTATIONS:
        raise ValueError(f"--llla_impl must be one of {', '.join(LLLA_IMPLEMENTATIONS)}; "
                         f"got {implementation!r}")
    choices = LLLA_PRIORS[implementation]
    if prior is None:
        return choices[0]
    if prior not in choices:
        raise ValueError(f"--llla_prior {prior!r} is not available with --llla_impl {implementation}; "
                         f"choose from {', '.join(choices)}")
    return prior


def build_predictor(model: nn.Module, method: str = "softmax", *,
                    fit_images: torch.Tensor | None = None, fit_labels: torch.Tensor | None = None,
                    train_loader: DataLoader | None = None, temperature: float | None = None,
                    llla_prior: str | None = None, ood_images: torch.Tensor | None = None,
                    device: torch.device | str = "cpu", link_approx: str = "probit",
                    llla_impl: str = "paper", seed: int = 0, temperature_fit: str = "lbfgs") -> Predictor:
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
    if llla_impl not in LLLA_IMPLEMENTATIONS:
        raise ValueError(f"unknown llla_impl {llla_impl!r}; valid: {', '.join(LLLA_IMPLEMENTATIONS)}")
    if llla_prior is None:
        llla_prior = "ood_grid" if llla_impl == "paper" else "marglik"
    if llla_prior not in PRIOR_METHODS:
        raise ValueError(f"unknown llla_prior {llla_prior!r}; valid: {', '.join(PRIOR_METHODS)}")
    if llla_prior not in LLLA_PRIORS[llla_impl]:
        raise ValueError(f"llla_prior={llla_prior!r} is not available with llla_impl={llla_impl!r}; "
                         f"valid: {', '.join(LLLA_PRIORS[llla_impl])}")
    if train_loader is None:
        raise ValueError("llla needs train_loader, a DataLoader over the model's training set")
    if llla_prior != "marglik" and (fit_images is None or fit_labels is None):
        raise ValueError(f"llla_prior={llla_prior!r} needs held-out in-distribution fit_images and "
                         "fit_labels for its NLL term")
    if llla_prior == "ood_grid" and ood_images is None:
        raise ValueError("llla_prior='ood_grid' needs ood_images, e.g. uniform noise in the model's "
                         "input domain: domain.normalize(torch.rand(n, *domain.shape))")
    if llla_impl == "paper":
        predictor = PaperLaplacePredictor(model, seed=seed).fit(train_loader)
        predictor.optimize_prior(fit_images, fit_labels,
                                 ood_images=ood_images if llla_prior == "ood_grid" else None)
        return predictor
    predictor = LaplacePredictor(model, link_approx=link_approx).fit(train_loader)
    predictor.optimize_prior(llla_prior, val_images=fit_images, val_labels=fit_labels,
                             ood_images=ood_images)
    return predictor

