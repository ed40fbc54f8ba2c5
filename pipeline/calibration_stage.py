"""Calibration stage: one predictor per model (softmax, temperature or LLLA), applied alike to
target and shadow."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from calibration import SoftmaxPredictor
from calibration.factory import build_predictor, llla_prior_choice
from calibration.metrics import model_metrics
from calibration.ood_noise import fake_data_noise
from pipeline.config import ExperimentConfig
from pipeline.data_stage import ExperimentData
from pipeline.model_stage import ROLES
from pipeline.results import model_metric_rows
from pipeline.splits import complement
from pipeline.scores import compute_probs
from utils.seeding import derive_seed

MAX_LLLA_NOISE_IMAGES = 1000  # noise images of laplace-torch's OOD-aware prior search


def is_calibrated(config: ExperimentConfig) -> bool:
    return config.llla or config.temp_scaling


def build_predictors(config: ExperimentConfig, models: dict, data: ExperimentData,
                     positions: dict[str, np.ndarray], device: torch.device) -> dict:
    """A probability predictor per role.

    laplace-torch's LLLA is fitted on the rows of the role's test split that are not attack
    non-members (held-out data: never attack rows); the paper's LLLA, as the paper's code, on the
    attack non-members (see :func:`paper_llla_predictor`). A temperature without ``--temp_value`` is
    fitted as the paper does (``--temp_fit paper``): LBFGS from ``T = 1`` on the role's own attack
    non-members (the target's Original non-members, the shadow's non-members); ``--temp_fit
    held_out`` uses the held-out rows and a bounded search instead.
    """
    predictors = {}
    for role in ROLES:
        model = models[role].model
        test = data.splits[f"{role}_test"]
        held_out = complement(positions[f"{role}_non_members"], len(test.labels))
        fit = test.subset(held_out if len(held_out) else np.arange(len(test.labels)))
        if config.llla and config.llla_impl == "paper":
            predictors[role] = paper_llla_predictor(config, model, data, positions, role, device)
        elif config.llla:
            train = data.splits[f"{role}_train"]
            loader = DataLoader(TensorDataset(train.images, train.labels), batch_size=config.batch_size,
                                shuffle=False)
            generator = torch.Generator().manual_seed(derive_seed(config.seed, role, "llla_noise"))
            n_noise = min(len(train.labels), MAX_LLLA_NOISE_IMAGES)
            noise = data.domain.normalize(torch.rand((n_noise,) + data.domain.shape, generator=generator))
            predictors[role] = build_predictor(model, "llla", train_loader=loader, llla_impl="laplace",
                                               llla_prior=llla_prior_choice("laplace", config.llla_prior),
                                               fit_images=fit.images, fit_labels=fit.labels,
                                               ood_images=noise, device=device)
        elif config.temp_scaling:
            paper = config.temp_fit == "paper"
            if paper:
                fit = test.subset(positions[f"{role}_non_members"])
            predictors[role] = build_predictor(model, "temperature", fit_images=fit.images,
                                               fit_labels=fit.labels, temperature=config.temp_value,
                                               device=device, temperature_fit="lbfgs" if paper else "bounded")
        else:
            predictors[role] = SoftmaxPredictor(model)
    return predictors


def paper_llla_predictor(config: ExperimentConfig, model, data: ExperimentData,
                         positions: dict[str, np.ndarray], role: str, device: torch.device):
    """The paper's LLLA for one role, fed as ``get_llla_calibrated_models`` feeds it.

    KFAC on the role's training split (with the random training transform where the preset trains
    with one, as the paper's Stanford Dogs run does), in unshuffled batches of twice the batch
    size; the prior searched on the role's attack non-members plus as many FakeData noise
    images (the same for target and shadow, as in the paper); seeded from the run seed.
    """
    train = data.splits[f"{role}_train"]
    train_set = (data.augmented_train[role] if data.augmented_train is not None
                 else TensorDataset(train.images, train.labels))
    loader = DataLoader(train_set, batch_size=2 * config.batch_size, shuffle=False)
    validation = data.splits[f"{role}_test"].subset(positions[f"{role}_non_members"])
    noise = fake_data_noise(len(validation.labels), data.domain.shape, data.domain.normalize)
    return build_predictor(model, "llla", llla_impl="paper", train_loader=loader,
                           llla_prior=llla_prior_choice("paper", config.llla_prior),
                           fit_images=validation.images, fit_labels=validation.labels,
                           ood_images=noise, device=device, seed=derive_seed(config.seed, role, "llla"))


def uncalibrated_metrics(config: ExperimentConfig, models: dict, data: ExperimentData,
                         device: torch.device) -> dict[str, float] | None:
    """Test accuracy, ECE and overconfidence of the plain softmax, when a calibration is applied."""
    if not is_calibrated(config):
        return None
    rows = {}
    for role in ROLES:
        test = data.splits[f"{role}_test"]
        probs = compute_probs(SoftmaxPredictor(models[role].model), test.images, device)
        rows.update(model_metric_rows(model_metrics(probs, test.labels.numpy()), role, "test"))
    return rows
