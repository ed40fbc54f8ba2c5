"""Calibration stage: one predictor per model (softmax, temperature or LLLA), applied alike to
target and shadow."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from calibration import SoftmaxPredictor
from calibration.factory import build_predictor, result_modifier
from calibration.metrics import model_metrics
from pipeline.config import ExperimentConfig
from pipeline.data_stage import ExperimentData
from pipeline.evaluation_stage import complement
from pipeline.model_stage import ROLES
from pipeline.results import model_metric_rows
from pipeline.scores import compute_probs
from utils.seeding import derive_seed

MAX_LLLA_NOISE_IMAGES = 1000  # noise images for the paper's OOD-aware LLLA prior search


def is_calibrated(config: ExperimentConfig) -> bool:
    return config.llla or config.temp_scaling


def run_modifier(config: ExperimentConfig) -> str:
    """The paper's result-file modifier of a run: training variant, then calibration
    (``temp_calib_`` for a fitted temperature, ``temp_{T}_calib_`` for ``--temp_value T``)."""
    return result_modifier(
        label_smoothing_factor=config.label_smoothing_factor if config.label_smoothing else None,
        weight_decay=config.weight_decay, llla=config.llla, temp_scaling=config.temp_scaling,
        temperature=config.temp_value if config.temp_scaling else None)


def build_predictors(config: ExperimentConfig, models: dict, data: ExperimentData,
                     positions: dict[str, np.ndarray], device: torch.device) -> dict:
    """A probability predictor per role.

    LLLA is fitted on the rows of the role's test split that are not attack non-members (held-out
    data: never attack rows). A temperature without ``--temp_value`` is fitted as the paper does
    (``--temp_fit paper``): LBFGS from ``T = 1`` on the role's own attack non-members (the target's
    Original non-members, the shadow's non-members); ``--temp_fit held_out`` uses the held-out rows
    and a bounded search instead.
    """
    predictors = {}
    for role in ROLES:
        model = models[role].model
        test = data.splits[f"{role}_test"]
        held_out = complement(positions[f"{role}_non_members"], len(test.labels))
        fit = test.subset(held_out if len(held_out) else np.arange(len(test.labels)))
        if config.llla:
            train = data.splits[f"{role}_train"]
            loader = DataLoader(TensorDataset(train.images, train.labels), batch_size=config.batch_size,
                                shuffle=False)
            generator = torch.Generator().manual_seed(derive_seed(config.seed, role, "llla_noise"))
            n_noise = min(len(train.labels), MAX_LLLA_NOISE_IMAGES)
            noise = data.domain.normalize(torch.rand((n_noise,) + data.domain.shape, generator=generator))
            predictors[role] = build_predictor(model, "llla", train_loader=loader,
                                               llla_prior=config.llla_prior, fit_images=fit.images,
                                               fit_labels=fit.labels, ood_images=noise, device=device)
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
