"""What the preparing stages hand forward: data, models, predictors and the non-member sets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from calibration.predictor import Predictor
from configuration.config import ExperimentConfig
from engine.manifest import StageRecord
from models.inference import ScoreCache
from pipeline.stages.data import ExperimentData, SetIndices, SplitTensors
from pipeline.stages.scorer import Scorer
from pipeline.stages.models import ROLES, TrainedModel


@dataclass(frozen=True)
class PreparedRun:
    """Everything before scoring: data, models, predictors and the non-member sets."""

    config: ExperimentConfig
    device: torch.device
    data: ExperimentData
    positions: dict[str, np.ndarray]             # attack rows: "target_members", ... -> split positions
    models: dict[str, TrainedModel]              # role -> model
    predictors: dict[str, Predictor]             # role -> calibrated probabilities
    sets: dict[str, SplitTensors]                # display name -> tensors (attack-set size)
    in_label_space: dict[str, bool]
    skipped: dict[str, str]
    original: SplitTensors                       # the target's Original non-members (rows of its test split)
    record: StageRecord = field(default_factory=StageRecord)   # checksums, models, notes, timings
    extra_figures: dict[str, str] = field(default_factory=dict)  # figures made while preparing (GAN samples)
    set_indices: dict[str, SetIndices] = field(default_factory=dict)  # key -> rows of sets from other data
    pool_ahead: Any = None                       # reference models training in the background (models.pool_executor.PoolTraining)

    def scorers(self, cache: ScoreCache) -> dict[str, Scorer]:
        """One scorer per role, reading and filling ``cache``."""
        return {role: Scorer(self.predictors[role], self.models[role].fingerprint, self.device, cache,
                             classes=self.data.domain.num_classes) for role in ROLES}
