"""The paper's own last-layer Laplace approximation (LLLA), on BackPACK.

The paper's code does not use laplace-torch: it carries its own LLLA after Kristiadi et al.,
*Being Bayesian, Even Just a Bit, Fixes Overconfidence in ReLU Networks* (ICML 2020). This module
computes what that code computes; :mod:`calibration.laplace` is the laplace-torch alternative
(``--llla_impl laplace``).

For a last layer ``f = W phi + b`` (``W`` of shape ``(K, D)``), with ``n`` training samples:

Hessian
    BackPACK's ``KFAC`` of the mean cross-entropy on each training batch: an input factor
    ``A = mean_b phi phi^T`` ``(D, D)`` and an output factor ``G = mean_b g g^T`` ``(K, K)`` with
    ``g = softmax(f) - onehot(y~)`` for one label ``y~`` *sampled from the model's own
    prediction* (a Monte Carlo Fisher, so the fit is seeded); the bias gets ``G``. Over the
    batches the factors are a running average with weight ``rho_i = min(1 - 1/(i + 1), 0.95)``
    on the old value (the first batch counts alone, later ones decay as an exponential average).
    Then ``A`` and ``G`` are scaled by ``sqrt(n)`` and the bias factor by ``n``.
Prior
    Variance ``v``, precision ``tau = 1/v``: ``sqrt(tau)`` is added to the diagonal of each weight
    factor and ``tau`` to the bias factor. The logits' posterior is Gaussian with mean
    ``W phi + b`` and covariance ``(phi^T (A')^-1 phi) (G')^-1 + (B')^-1`` ``(K, K)``.
Predictive
    The mean of ``softmax(f)`` over Monte Carlo samples of the logits: 100 samples (10 while
    searching the prior), all drawn at once per batch from a seeded generator.
Prior search
    ``v`` on ``logspace(0, 3, 100)`` minimising ``NLL(val) + 0.25 * mean(-log(p_ood + 1e-8))``
    (the second mean over all samples and classes), each log taken of ``p + 1e-8``; the
    validation set is the model's attack non-members and the OOD set FakeData noise
    (:mod:`calibration.ood_noise`); the first minimum wins.

Everything is float32, as in the paper. Features ``phi`` are computed once per set, so the
search costs one forward pass instead of one per grid point.
"""
from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from calibration.predictor import Predictor
from utils.seeding import derive_seed, seeded

PAPER_PRIOR_VARIANCES = torch.logspace(0, 3, 100)  # float32, the paper's interval
PAPER_OOD_WEIGHT = 0.25                            # its lam
PAPER_PREDICTIVE_SAMPLES = 100                     # its forward(n_samples=100)
PAPER_SEARCH_SAMPLES = 10                          # its gridsearch_var0(n_samples=10)
LOG_EPSILON = 1e-8                                 # log(p + 1e-8) in the search objective
FEATURE_BATCH = 512                                # images per forward pass when collecting phi


def last_linear_layer(model: nn.Module) -> nn.Linear:
    """The model's output layer: its last child if that is ``nn.Linear`` (the paper's choice),
    else the last ``nn.Linear`` it registers."""
    children = list(model.children())
    if children and isinstance(children[-1], nn.Linear):
        return children[-1]
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"LLLA needs a model whose last layer is nn.Linear; "
                         f"{type(model).__name__} has none")
    return linears[-1]


@torch.no_grad()
def features_and_logits(model: nn.Module, layer: nn.Linear,
                        images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``phi`` ``(N, D)`` of ``layer`` and the model's logits ``(N, K)``, one forward."""
    captured = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.update(phi=inputs[0]))
    try:
        logits = model(images)
    finally:
        handle.remove()
    if "phi" not in captured:
        raise ValueError("the model's forward never ran its last nn.Linear layer")
    return captured["phi"].reshape(len(images), -1), logits


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """The raw bytes of a tensor (any dtype), on the CPU."""
    return tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes()


@dataclass(frozen=True)
class KroneckerHessian:
    """Scaled Kronecker factors of the last layer's Hessian (no prior yet).

    Attributes
    ----------
    weight : Tensor ``(K, D)``; bias : Tensor ``(K,)`` -- the MAP last layer
    input_factor : Tensor ``(D, D)`` -- ``sqrt(n) A``
    output_factor : Tensor ``(K, K)`` -- ``sqrt(n) G``
    bias_factor : Tensor ``(K, K)`` -- ``n G_b``
    n_data : int
    """

    weight: torch.Tensor
    bias: torch.Tensor
    input_factor: torch.Tensor
    output_factor: torch.Tensor
    bias_factor: torch.Tensor
    n_data: int

    def digest(self) -> str:
        """A short hash of the factors and the layer (identifies the fit in cache keys)."""
        digest = hashlib.sha256(str(self.n_data).encode())
        for tensor in (self.weight, self.bias, self.input_factor, self.output_factor, self.bias_factor):
            digest.update(tensor_bytes(tensor))
        return digest.hexdigest()[:16]


def kfac_hessian(model: nn.Module, batches: Iterable, n_data: int,
                 device: torch.device | str = "cpu") -> KroneckerHessian:
    """The paper's KFAC running average over ``batches`` of ``(images, labels)``.

    BackPACK samples one label per image from the global torch generator: run this under a
    seed (:meth:`PaperLaplacePredictor.fit` does). The model runs in eval mode (its mode is
    restored afterwards) and is not extended: BackPACK works on a copy of the last layer, fed
    the features, which gives the last layer's factors of a backward pass through the model.
    """
    if n_data < 1:
        raise ValueError(f"n_data must be positive, got {n_data}")
    was_training = model.training
    model.eval()
    try:
        return _kfac_running_average(model, batches, n_data, device)
    finally:
        model.train(was_training)


def _kfac_running_average(model: nn.Module, batches: Iterable, n_data: int,
                          device: torch.device | str) -> KroneckerHessian:
    from backpack import backpack, extend
    from backpack.extensions import KFAC

    layer = last_linear_layer(model)
    if layer.bias is None:
        raise ValueError("LLLA (the paper's) needs a last nn.Linear layer with a bias")
    copy_layer = extend(copy.deepcopy(layer))
    loss_function = extend(nn.CrossEntropyLoss())
    factors = None
    for step, (images, labels) in enumerate(batches):
        phi, _ = features_and_logits(model, layer, images.to(device))
        copy_layer.zero_grad()
        with backpack(KFAC()), warnings.catch_warnings():
            # phi needs no gradient; BackPACK only needs the layer's output gradients
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss_function(copy_layer(phi), torch.as_tensor(labels).long().to(device)).backward()
        with torch.no_grad():
            output_factor, input_factor = copy_layer.weight.kfac
            batch = (input_factor, output_factor, copy_layer.bias.kfac[0])
            rho = min(1.0 - 1.0 / (step + 1), 0.95)
            factors = batch if factors is None else tuple(
                rho * old + (1.0 - rho) * new for old, new in zip(factors, batch))
    if factors is None:
        raise ValueError("LLLA needs a non-empty training set")
    root = float(np.sqrt(n_data))
    input_factor, output_factor, bias_factor = factors
    return KroneckerHessian(layer.weight.detach().clone(), layer.bias.detach().clone(),
                            root * input_factor, root * output_factor, n_data * bias_factor, n_data)


@dataclass(frozen=True)
class LastLayerPosterior:
    """Gaussian posterior of the last layer under one prior variance.

    Attributes
    ----------
    weight : Tensor ``(K, D)``; bias : Tensor ``(K,)`` -- posterior mean (the MAP layer)
    input_covariance : Tensor ``(D, D)`` -- ``(sqrt(n) A + sqrt(tau) I)^-1``
    output_covariance : Tensor ``(K, K)`` -- ``(sqrt(n) G + sqrt(tau) I)^-1``
    bias_covariance : Tensor ``(K, K)`` -- ``(n G_b + tau I)^-1``
    prior_variance : float
    """

    weight: torch.Tensor
    bias: torch.Tensor
    input_covariance: torch.Tensor
    output_covariance: torch.Tensor
    bias_covariance: torch.Tensor
    prior_variance: float

    def logit_distribution(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(N, K)`` and covariance ``(N, K, K)`` of the logits for features ``(N, D)``."""
        mean = phi @ self.weight.T + self.bias
        scale = ((phi @ self.input_covariance) * phi).sum(dim=1)
        covariance = scale[:, None, None] * self.output_covariance + self.bias_covariance
        return mean, covariance


def prior_precision(prior_variance: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tau = 1 / v`` as a 0-d tensor of ``like``'s dtype and device; checks ``v > 0``."""
    variance = torch.as_tensor(prior_variance, dtype=like.dtype)
    if not (torch.isfinite(variance) and variance > 0):
        raise ValueError(f"the prior variance must be a positive number, got {float(variance)}")
    return (1.0 / variance).to(like.device)


def inverse_with_prior(factor: torch.Tensor, diagonal: torch.Tensor) -> torch.Tensor:
    """``(factor + diagonal * I)^-1``."""
    eye = torch.eye(len(factor), dtype=factor.dtype, device=factor.device)
    return torch.linalg.inv(factor + diagonal * eye)


def posterior(hessian: KroneckerHessian, prior_variance: float | torch.Tensor) -> LastLayerPosterior:
    """Add the prior (``sqrt(tau)`` per weight factor, ``tau`` to the bias) and invert."""
    tau = prior_precision(prior_variance, hessian.input_factor)
    return LastLayerPosterior(hessian.weight, hessian.bias,
                              inverse_with_prior(hessian.input_factor, torch.sqrt(tau)),
                              inverse_with_prior(hessian.output_factor, torch.sqrt(tau)),
                              inverse_with_prior(hessian.bias_factor, tau),
                              float(torch.as_tensor(prior_variance, dtype=tau.dtype)))


def search_losses(hessian: KroneckerHessian, variances: torch.Tensor, val_phi: torch.Tensor,
                  val_labels: torch.Tensor, ood_phi: torch.Tensor | None, ood_weight: float,
                  n_samples: int, generator: torch.Generator) -> np.ndarray:
    """The search objective at each prior variance ``(G,)``; features ``(M, D)``, ``(L, D)``.

    Same posterior as :func:`posterior`, but ``phi^T (A + sqrt(tau) I)^-1 phi`` is taken in the
    eigenbasis of ``A`` (``sum_j (Q^T phi)_j^2 / (lambda_j + sqrt(tau))``), so a grid point costs
    ``O(D)`` per image instead of a ``(D, D)`` inverse and product (2,048 features for ResNet-50).
    Draws, in order, the validation then the OOD samples of each grid point from ``generator``.
    """
    eigenvalues, basis = torch.linalg.eigh(hessian.input_factor)
    sets = [(phi @ hessian.weight.T + hessian.bias, (phi @ basis) ** 2)
            for phi in (val_phi, ood_phi) if phi is not None]
    losses = []
    for variance in variances:
        tau = prior_precision(variance, hessian.input_factor)
        output_covariance = inverse_with_prior(hessian.output_factor, torch.sqrt(tau))
        bias_covariance = inverse_with_prior(hessian.bias_factor, tau)
        probs = []
        for mean, squared in sets:
            scale = (squared / (eigenvalues + torch.sqrt(tau))).sum(dim=1)
            covariance = scale[:, None, None] * output_covariance + bias_covariance
            probs.append(mc_predictive(mean, covariance, n_samples, generator))
        ood_probs = probs[1] if ood_phi is not None else None
        losses.append(search_objective(probs[0], val_labels, ood_probs, ood_weight))
    return np.asarray(losses)


def mc_predictive(mean: torch.Tensor, covariance: torch.Tensor, n_samples: int,
                  generator: torch.Generator) -> torch.Tensor:
    """``mean_s softmax(f_s)`` for ``f_s ~ N(mean, covariance)``: ``(N, K)`` from ``(N, K)``,
    ``(N, K, K)``; all ``n_samples`` drawn in one call."""
    cholesky = torch.linalg.cholesky(covariance)
    noise = torch.randn((n_samples,) + tuple(mean.shape), generator=generator,
                        dtype=mean.dtype, device=mean.device)
    samples = mean + torch.einsum("nij,snj->sni", cholesky, noise)
    return torch.softmax(samples, dim=2).mean(dim=0)


def search_objective(probs: torch.Tensor, labels: torch.Tensor,
                     ood_probs: torch.Tensor | None, ood_weight: float) -> float:
    """``nll(log(p + 1e-8), labels) + ood_weight * mean(-log(p_ood + 1e-8))``."""
    loss = F.nll_loss(torch.log(probs + LOG_EPSILON), labels)
    if ood_probs is not None:
        loss = loss + ood_weight * -torch.log(ood_probs + LOG_EPSILON).mean()
    return float(loss)


class PaperLaplacePredictor(Predictor):
    """Posterior predictive of the paper's last-layer Laplace approximation.

    Lifecycle: ``fit(train_loader)`` -> ``optimize_prior(...)`` (or ``set_prior_variance``) ->
    ``forward``.

    Parameters
    ----------
    model : nn.Module
        Maps images ``(N, ...)`` to logits ``(N, K)`` through a last ``nn.Linear`` layer.
    n_samples : int
        Monte Carlo samples per image of the predictive (the paper: 100).
    seed : int
        Seeds BackPACK's sampled labels, the search's samples and the predictive's samples. The
        predictive draws from a generator seeded by ``seed`` and the bytes of the input batch, so
        the same images give the same probabilities whatever was predicted before.
    """

    method = "llla"

    def __init__(self, model: nn.Module, *, n_samples: int = PAPER_PREDICTIVE_SAMPLES, seed: int = 0):
        super().__init__(model.eval())
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        self.n_samples, self.seed = int(n_samples), int(seed)
        self.layer = last_linear_layer(model)
        self.hessian: KroneckerHessian | None = None
        self.posterior: LastLayerPosterior | None = None
        self.prior_method: str | None = None
        self.grid: tuple[np.ndarray, np.ndarray] | None = None  # (prior variances, objective)

    # -- lifecycle ---------------------------------------------------------------------------
    def fit(self, train_loader: DataLoader) -> "PaperLaplacePredictor":
        """Kronecker factors on the model's training data (``len(train_loader.dataset)`` = n)."""
        with seeded(derive_seed(self.seed, "llla_kfac")):
            self.hessian = kfac_hessian(self.model, train_loader, len(train_loader.dataset),
                                        self._device())
        self.posterior, self.prior_method, self.grid = None, None, None
        return self

    def set_prior_variance(self, variance: float) -> "PaperLaplacePredictor":
        """Use a fixed prior variance (the paper's ``var0`` argument)."""
        self.posterior = posterior(self._fitted(), variance)
        self.prior_method, self.grid = "fixed", None
        return self

    def optimize_prior(self, val_images: torch.Tensor, val_labels: torch.Tensor,
                       ood_images: torch.Tensor | None = None,
                       prior_variances: Sequence[float] | torch.Tensor = PAPER_PRIOR_VARIANCES,
                       ood_weight: float = PAPER_OOD_WEIGHT,
                       n_samples: int = PAPER_SEARCH_SAMPLES) -> float:
        """The paper's grid search; returns the chosen prior variance.

        Parameters
        ----------
        val_images, val_labels : Tensor ``(M, ...)``, ``(M,)``
            In-distribution data for the NLL term (the paper: the attack non-members).
        ood_images : Tensor ``(L, ...)``, optional
            Images for the OOD term (the paper: FakeData noise); None drops the term.
        prior_variances : sequence of float
            The grid (default the paper's ``logspace(0, 3, 100)``).
        ood_weight : float
            Weight of the OOD term (the paper's 0.25).
        n_samples : int
            Monte Carlo samples per image at each grid point (the paper's 10).
        """
        hessian = self._fitted()
        variances = torch.as_tensor(prior_variances, dtype=torch.float32).flatten()
        if len(variances) == 0 or not (torch.isfinite(variances).all() and (variances > 0).all()):
            raise ValueError("prior_variances must be a non-empty sequence of positive numbers")
        if len(val_images) == 0:
            raise ValueError("the LLLA prior search needs at least one validation image")
        labels = torch.as_tensor(val_labels).long().to(self._device())
        val_phi = self._features(val_images)
        ood_phi = self._features(ood_images) if ood_images is not None else None
        generator = torch.Generator(device=self._device()).manual_seed(
            derive_seed(self.seed, "llla_prior_search"))
        with torch.no_grad():
            losses = search_losses(hessian, variances, val_phi, labels, ood_phi, ood_weight,
                                   n_samples, generator)
        best = int(np.argmin(losses))
        self.posterior = posterior(hessian, variances[best])
        self.prior_method = "ood_grid" if ood_images is not None else "gridsearch"
        self.grid = (variances.double().numpy(), losses)
        return self.prior_variance

    # -- prediction --------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.layer.weight.device

    def _fitted(self) -> KroneckerHessian:
        if self.hessian is None:
            raise RuntimeError("PaperLaplacePredictor is not fitted: call fit(train_loader) first")
        return self.hessian

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        parts = [features_and_logits(self.model, self.layer, images[start:start + FEATURE_BATCH]
                                     .to(self._device()))[0]
                 for start in range(0, len(images), FEATURE_BATCH)]
        return torch.cat(parts)

    def batch_generator(self, images: torch.Tensor) -> torch.Generator:
        """The predictive's generator for one batch: seeded by ``seed`` and the batch's bytes."""
        content = hashlib.sha256(f"{tuple(images.shape)}{images.dtype}".encode())
        content.update(tensor_bytes(images))
        seed = derive_seed(self.seed, "llla_predictive", content.hexdigest())
        return torch.Generator(device=self._device()).manual_seed(seed)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K)`` for images ``(N, ...)``; one model forward per image."""
        if self.posterior is None:
            self._fitted()
            raise RuntimeError("PaperLaplacePredictor has no prior: call optimize_prior(...) or "
                               "set_prior_variance(v) after fit")
        if len(images) == 0:
            return torch.zeros(0, len(self.posterior.bias), device=images.device)
        phi, _ = features_and_logits(self.model, self.layer, images.to(self._device()))
        probs = mc_predictive(*self.posterior.logit_distribution(phi), self.n_samples,
                              self.batch_generator(images))
        return probs.to(images.device)

    # -- identity ----------------------------------------------------------------------------
    @property
    def prior_variance(self) -> float:
        if self.posterior is None:
            raise RuntimeError("PaperLaplacePredictor has no prior yet")
        return self.posterior.prior_variance

    def describe(self) -> dict:
        description = {"method": self.method, "implementation": "paper", "hessian": "kfac_backpack",
                       "predictive": "mc", "n_samples": self.n_samples, "seed": self.seed,
                       "prior_method": self.prior_method}
        if self.hessian is not None:
            description["hessian_digest"] = self.hessian.digest()
        if self.posterior is not None:
            description.update(prior_variance=self.prior_variance,
                               prior_precision=1.0 / self.prior_variance)
        return description

    def extra_repr(self) -> str:
        prior = f", prior_variance={self.prior_variance:.4g}" if self.posterior is not None else ""
        return f"paper, n_samples={self.n_samples}{prior}"
