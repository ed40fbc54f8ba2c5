"""Calibration stage: one predictor per model, the run's calibration (softmax, temperature, LLLA or
any method of :data:`calibration.CALIBRATIONS`) applied alike to target and shadow."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from calibration import CALIBRATIONS, CalibrationData, SoftmaxPredictor
from calibration.metrics import model_metrics
from configuration.config import ExperimentConfig
from pipeline.stages.data import ExperimentData
from pipeline.stages.models import ROLES
from engine.tables import model_metric_rows
from models.inference import compute_probs
from datasets.splits.seeded import complement


def calibration_data(config: ExperimentConfig, data: ExperimentData, positions: dict[str, np.ndarray],
                     role: str, device: torch.device) -> CalibrationData:
    """What ``role``'s calibration may be fitted on: its training split (as trained on: the random
    training transform where the preset trains with one), its attack non-members and the test rows
    that are not attack rows (held out; all test rows when there are none)."""
    train, test = data.splits[f"{role}_train"], data.splits[f"{role}_test"]
    attack_rows = positions[f"{role}_non_members"]
    held_out_rows = complement(attack_rows, len(test.labels))
    held_out = test.subset(held_out_rows if len(held_out_rows) else np.arange(len(test.labels)))
    non_members = test.subset(attack_rows)
    train_set = (data.augmented_train[role] if data.augmented_train is not None
                 else TensorDataset(train.images, train.labels))
    return CalibrationData(role=role, train_images=train.images, train_labels=train.labels, train_set=train_set,
                           attack_non_members=(non_members.images, non_members.labels),
                           held_out=(held_out.images, held_out.labels), batch_size=config.batch_size,
                           shape=data.domain.shape, normalize=data.domain.normalize, seed=config.seed,
                           device=device)


def build_predictors(config: ExperimentConfig, models: dict, data: ExperimentData,
                     positions: dict[str, np.ndarray], device: torch.device) -> dict:
    """A probability predictor per role, fitted by the configured method on that role's
    :func:`calibration_data` (see each method's ``fit``: the paper's LLLA and temperature use the
    role's attack non-members, as the paper's code; laplace-torch's LLLA and ``--temp_fit held_out``
    the held-out rows)."""
    method = CALIBRATIONS[config.calibration.method]
    return {role: method.fit(models[role].model, calibration_data(config, data, positions, role, device),
                             config.calibration.params)
            for role in ROLES}


def uncalibrated_metrics(config: ExperimentConfig, models: dict, data: ExperimentData,
                         device: torch.device) -> dict[str, float] | None:
    """Test accuracy, ECE and overconfidence of the plain softmax, when a calibration is applied."""
    if not config.calibrated:
        return None
    rows = {}
    for role in ROLES:
        test = data.splits[f"{role}_test"]
        probs = compute_probs(SoftmaxPredictor(models[role].model), test.images, device)
        rows.update(model_metric_rows(model_metrics(probs, test.labels.numpy()), role, "test"))
    return rows
