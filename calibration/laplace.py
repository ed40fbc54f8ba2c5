"""Last-layer Laplace approximation (LLLA) through the laplace-torch library (``--llla_impl
laplace``; the paper's own LLLA, the default, is :mod:`calibration.llla_paper`).

Kristiadi et al., *Being Bayesian, Even Just a Bit, Fixes Overconfidence in ReLU Networks*
(ICML 2020); Daxberger et al., *Laplace Redux* (NeurIPS 2021) for the library. The last linear
layer's weights get a Gaussian posterior (Kronecker-factored Hessian, fitted on the model's
training set); predictions integrate over it with the probit approximation (or Monte Carlo).

Lifecycle, as in laplace-torch: ``fit(train_loader)`` -> ``optimize_prior(...)`` -> ``forward``.

Prior precision, three ways (``optimize_prior(method=...)``):

``"marglik"``
    laplace-torch's post-hoc marginal-likelihood maximisation (no extra data).
``"gridsearch"``
    The prior variance on a grid (default ``logspace(-4, 4, 100)``, laplace-torch's default
    range) minimising the NLL on held-out in-distribution data.
``"ood_grid"``
    After the paper's search: prior variance on ``logspace(0, 3, 100)`` minimising
    ``NLL(val) + ood_weight * mean_ood[-(1/K) sum_k log p_k]``, i.e. the validation NLL plus the
    cross-entropy from the uniform distribution to the predictions on out-of-distribution images
    (random noise in the paper). This is the objective of ``gridsearch_var0`` in
    wiseodd/last_layer_laplace, the LLLA code the paper builds on; the second term is smallest
    when noise images get uniform predictions, the first keeps in-distribution predictions sharp.
    Note that laplace-torch adds the prior precision exactly to the Kronecker eigenvalues, while
    wiseodd's code adds its square root to each Kronecker factor, so a given variance regularises
    less here than there.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from calibration.predictor import Predictor

HESSIAN_STRUCTURES = ("kron", "diag", "full")
LINK_APPROXIMATIONS = ("probit", "mc")
PRIOR_METHODS = ("marglik", "gridsearch", "ood_grid")
PAPER_PRIOR_VARIANCES = tuple(np.logspace(0, 3, 100).tolist())      # the paper's LLLA grid
GRIDSEARCH_PRIOR_VARIANCES = tuple(np.logspace(-4, 4, 100).tolist())  # laplace-torch's range
CHUNK_ELEMENTS = 2 ** 26  # Jacobian entries (batch x classes x last-layer params) per call


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


class LaplacePredictor(Predictor):
    """Posterior predictive of a last-layer Laplace approximation.

    Parameters
    ----------
    model : nn.Module
        Maps images ``(N, C, H, W)`` to logits ``(N, K)``; its last layer must be ``nn.Linear``.
        laplace-torch works on a copy taken at :meth:`fit`; afterwards ``self.model`` is that
        copy (the module that runs at prediction time), on the device the model was on.
    hessian_structure : {"kron", "diag", "full"}
    link_approx : {"probit", "mc"}
        How the softmax is integrated over the Gaussian on the logits.
    n_samples : int
        Monte Carlo samples per input for ``link_approx="mc"``.
    seed : int
        Seed of the Monte Carlo samples (each call draws the same ones).
    """

    method = "llla"

    def __init__(self, model: nn.Module, *, hessian_structure: str = "kron",
                 link_approx: str = "probit", n_samples: int = 100, seed: int = 0):
        super().__init__(model)
        self.hessian_structure = _check_choice("hessian_structure", hessian_structure,
                                               HESSIAN_STRUCTURES)
        self.link_approx = _check_choice("link_approx", link_approx, LINK_APPROXIMATIONS)
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        self.n_samples, self.seed = int(n_samples), int(seed)
        self.prior_method: str | None = None
        self.grid: tuple[np.ndarray, np.ndarray] | None = None  # (prior variances, objective)
        self._la = None

    # -- lifecycle ---------------------------------------------------------------------------
    def fit(self, train_loader: DataLoader) -> "LaplacePredictor":
        """Fit the last-layer Hessian on the model's training data (one pass).

        Parameters
        ----------
        train_loader : DataLoader
            Batches ``(images (B, C, H, W), labels (B,))`` of the training set; ``.dataset``
            must be set (its length scales the Hessian).
        """
        from laplace import Laplace

        la = Laplace(self.model, "classification", subset_of_weights="last_layer",
                     hessian_structure=self.hessian_structure)
        la.fit(train_loader)
        self._la = la
        self.model = la.model.model
        self.prior_method, self.grid = "default", None
        return self

    def optimize_prior(self, method: str = "marglik", *, val_images: torch.Tensor | None = None,
                       val_labels: torch.Tensor | None = None,
                       ood_images: torch.Tensor | None = None,
                       prior_variances: Sequence[float] | None = None, ood_weight: float = 1.0,
                       batch_size: int = 256) -> float:
        """Tune the prior precision; returns it.

        Parameters
        ----------
        method : {"marglik", "gridsearch", "ood_grid"}
            See the module docstring.
        val_images, val_labels : Tensor ``(M, C, H, W)``, ``(M,)``
            Held-out in-distribution data (grid methods).
        ood_images : Tensor ``(L, C, H, W)``
            Out-of-distribution images, e.g. uniform noise in the model's input domain
            (``"ood_grid"`` only).
        prior_variances : sequence of float
            The grid; defaults to :data:`PAPER_PRIOR_VARIANCES` for ``"ood_grid"`` and
            :data:`GRIDSEARCH_PRIOR_VARIANCES` for ``"gridsearch"``.
        ood_weight : float
            Weight of the OOD term (``"ood_grid"``).
        """
        la = self._fitted()
        _check_choice("prior method", method, PRIOR_METHODS)
        if method == "marglik":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*link_approx.*")
                la.optimize_prior_precision(method="marglik", pred_type="glm",
                                            link_approx=self.link_approx)
        else:
            if val_images is None or val_labels is None:
                raise ValueError(f"prior method {method!r} needs held-out in-distribution data "
                                 "(val_images, val_labels) for its NLL term")
            if method == "ood_grid" and ood_images is None:
                raise ValueError("prior method 'ood_grid' needs ood_images, e.g. "
                                 "domain.normalize(torch.rand(n, *domain.shape))")
            default = PAPER_PRIOR_VARIANCES if method == "ood_grid" else GRIDSEARCH_PRIOR_VARIANCES
            variances = np.asarray(prior_variances if prior_variances is not None else default,
                                   dtype=np.float64)
            if variances.ndim != 1 or len(variances) == 0 or not (variances > 0).all():
                raise ValueError("prior_variances must be a non-empty 1-D sequence of positive numbers")
            ood = ood_images if method == "ood_grid" else None
            losses = np.array([self._grid_objective(v, val_images, val_labels, ood, ood_weight,
                                                    batch_size) for v in variances])
            self.grid = (variances, losses)
            la.prior_precision = 1.0 / float(variances[int(np.argmin(losses))])
        self.prior_method = method
        return self.prior_precision

    def _grid_objective(self, variance: float, val_images: torch.Tensor, val_labels: torch.Tensor,
                        ood_images: torch.Tensor | None, ood_weight: float, batch_size: int) -> float:
        self._la.prior_precision = 1.0 / float(variance)
        val = self._predict(val_images, batch_size).double().cpu()
        loss = F.nll_loss(val.clamp_min(1e-12).log(), torch.as_tensor(val_labels).long().cpu()).item()
        if ood_images is not None:
            ood = self._predict(ood_images, batch_size).double().cpu()
            loss += ood_weight * -ood.clamp_min(1e-12).log().mean().item()
        return loss

    # -- prediction --------------------------------------------------------------------------
    def _fitted(self):
        if self._la is None:
            raise RuntimeError("LaplacePredictor is not fitted: call fit(train_loader) first")
        return self._la

    @torch.no_grad()
    def _predict(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        la = self._fitted()
        device = next(la.model.parameters()).device
        per_sample = max(1, int(getattr(la, "n_outputs", 1)) * int(la.n_params))
        chunk = max(1, min(batch_size, CHUNK_ELEMENTS // per_sample))
        generator = None
        if self.link_approx == "mc":
            generator = torch.Generator(device=device).manual_seed(self.seed)
        outputs = []
        for start in range(0, len(images), chunk):
            batch = images[start:start + chunk].to(device)
            if generator is None:
                outputs.append(la(batch, pred_type="glm", link_approx=self.link_approx))
            else:  # la(..., link_approx="mc") ignores its generator; sample explicitly
                outputs.append(la.predictive_samples(batch, pred_type="glm", n_samples=self.n_samples,
                                                     generator=generator).mean(0))
        return torch.cat(outputs).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K)`` for images ``(N, C, H, W)``; one model forward per image.

        Large batches are split so the last-layer Jacobians stay within
        :data:`CHUNK_ELEMENTS` entries (it matters for many classes, e.g. 120 dog breeds).
        """
        if len(images) == 0:
            return torch.zeros(0, int(self._fitted().n_outputs), device=images.device)
        return self._predict(images, len(images)).to(images.device)

    # -- identity ----------------------------------------------------------------------------
    @property
    def prior_precision(self) -> float:
        """The scalar prior precision (``1 / prior variance``) in use."""
        precision = torch.as_tensor(self._fitted().prior_precision).detach().cpu()
        if precision.numel() != 1:
            raise RuntimeError("expected a scalar prior precision")
        return float(precision.item())

    def describe(self) -> dict:
        description = {"method": self.method, "hessian_structure": self.hessian_structure,
                       "link_approx": self.link_approx, "prior_method": self.prior_method}
        if self.link_approx == "mc":
            description.update(n_samples=self.n_samples, seed=self.seed)
        if self._la is not None:
            description["prior_precision"] = self.prior_precision
        return description

    def extra_repr(self) -> str:
        prior = f", prior_precision={self.prior_precision:.4g}" if self._la is not None else ""
        return f"hessian={self.hessian_structure}, link={self.link_approx}{prior}"
