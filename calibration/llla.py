"""Last-layer Laplace (LLLA) as a calibration method: the paper's implementation
(:mod:`calibration.llla_paper`) or laplace-torch's (:mod:`calibration.laplace`), its options and
how a run feeds it."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from calibration.laplace import PRIOR_METHODS, LaplacePredictor
from calibration.llla_paper import PaperLaplacePredictor
from calibration.ood_noise import fake_data_noise
from calibration.predictor import Predictor
from calibration.spec import CalibrationData, CalibrationMethod
from utils.naming import llla_modifier
from utils.options import Option
from utils.seeding import derive_seed

LLLA_IMPLEMENTATIONS = ("paper", "laplace")
# --llla_prior choices per implementation; the first is the default
LLLA_PRIORS = {"paper": ("ood_grid", "gridsearch"), "laplace": ("gridsearch", "marglik", "ood_grid")}
MAX_LLLA_NOISE_IMAGES = 1000  # noise images of laplace-torch's OOD-aware prior search


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


def llla_predictor(model: nn.Module, *, train_loader: DataLoader | None = None,
                   fit_images: torch.Tensor | None = None, fit_labels: torch.Tensor | None = None,
                   llla_prior: str | None = None, ood_images: torch.Tensor | None = None,
                   device: torch.device | str = "cpu", link_approx: str = "probit", llla_impl: str = "paper",
                   seed: int = 0, **_other_methods_options: Any) -> Predictor:
    """An LLLA predictor fitted on ``train_loader`` with its prior tuned (see
    :func:`calibration.build_predictor` for the parameters)."""
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


def fit_llla(model: nn.Module, data: CalibrationData, values: Mapping[str, Any]) -> Predictor:
    """One model's LLLA as a run fits it.

    The paper's (as ``get_llla_calibrated_models`` feeds it): KFAC on the training split as the
    model was trained on it, in unshuffled batches of twice the batch size; the prior searched on
    the attack non-members plus as many FakeData noise images (the same for target and shadow);
    seeded from the run seed. laplace-torch's: fitted on the plain training split, the prior on the
    held-out rows (never attack rows) and up to :data:`MAX_LLLA_NOISE_IMAGES` uniform noise images.
    """
    implementation = values["llla_impl"]
    prior = llla_prior_choice(implementation, values["llla_prior"])
    model = model.to(data.device).eval()
    if implementation == "paper":
        loader = DataLoader(data.train_set, batch_size=2 * data.batch_size, shuffle=False)
        images, labels = data.attack_non_members
        noise = fake_data_noise(len(labels), data.shape, data.normalize)
        return llla_predictor(model, llla_impl="paper", train_loader=loader, llla_prior=prior,
                              fit_images=images, fit_labels=labels, ood_images=noise, device=data.device,
                              seed=derive_seed(data.seed, data.role, "llla"))
    loader = DataLoader(TensorDataset(data.train_images, data.train_labels), batch_size=data.batch_size,
                        shuffle=False)
    generator = torch.Generator().manual_seed(derive_seed(data.seed, data.role, "llla_noise"))
    n_noise = min(len(data.train_labels), MAX_LLLA_NOISE_IMAGES)
    noise = data.normalize(torch.rand((n_noise,) + tuple(data.shape), generator=generator))
    images, labels = data.held_out
    return llla_predictor(model, train_loader=loader, llla_impl="laplace", llla_prior=prior,
                          fit_images=images, fit_labels=labels, ood_images=noise, device=data.device)


def _check(values: Mapping[str, Any]) -> None:
    llla_prior_choice(values["llla_impl"], values["llla_prior"])


LLLA = CalibrationMethod(
    name="llla",
    switch=Option("llla", "calibrate with a last-layer Laplace approximation", default=False,
                  action="store_true"),
    params=(
        Option("llla_impl", "LLLA implementation: the paper's own (BackPACK KFAC, Monte Carlo predictive; "
                            "files LLLA_) or laplace-torch's (probit predictive; files LLLA_laplace_) "
                            "(default paper)", default="paper", type=str, choices=LLLA_IMPLEMENTATIONS),
        Option("llla_prior", "LLLA prior search. paper: ood_grid (default; the paper's: prior variance on "
                             "logspace(0, 3, 100) by the NLL on the attack non-members + 0.25 x mean -log p on "
                             "as many FakeData noise images) or gridsearch (the NLL term alone). laplace: "
                             "gridsearch (default; held-out NLL), marglik (marginal likelihood) or ood_grid "
                             "(+ uniform noise term)", default=None, type=str,
               choices=("ood_grid", "gridsearch", "marglik")),
    ),
    modifier=lambda values: llla_modifier(values["llla_impl"]),
    predictor=llla_predictor, fit=fit_llla, check=_check, modifier_prefix="LLLA")
