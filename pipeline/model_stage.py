"""Model stage: load the target and shadow checkpoints, or train them the same way."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from calibration.factory import result_modifier
from models import build_model
from models.checkpoints import checkpoint_path, config_path, fingerprint, load_or_train, read_metadata
from models.training import DEFAULT_LR, TrainConfig, precision_name, train_model, train_model_on_dataset
from pipeline.config import PRESETS, ExperimentConfig
from pipeline.data_stage import ExperimentData
from utils.seeding import derive_seed, seeded

log = logging.getLogger(__name__)
ROLES = ("target", "shadow")


@dataclass
class TrainedModel:
    role: str
    model: nn.Module
    checkpoint: Path
    trained: bool          # False when loaded from an existing checkpoint
    fingerprint: str
    precision: str = "fp32"  # how it was trained: "fp32", "amp-bf16" or "amp-fp16" (--amp)


def training_modifier(config: ExperimentConfig) -> str:
    """File-name modifier of the training variant (calibration is post-hoc, not part of it)."""
    return result_modifier(
        label_smoothing_factor=config.label_smoothing_factor if config.label_smoothing else None,
        weight_decay=config.weight_decay)


def train_config(config: ExperimentConfig, role: str) -> TrainConfig:
    lr = config.lr if config.lr is not None else DEFAULT_LR.get(config.model_arch, 1e-3)
    return TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=lr,
                       weight_decay=config.weight_decay,
                       label_smoothing=config.label_smoothing_factor if config.label_smoothing else 0.0,
                       seed=derive_seed(config.seed, role, "order"), amp=config.amp,
                       channels_last=config.amp)  # --amp: the fast path; default: fp32 as the paper


def load_or_train_models(config: ExperimentConfig, data: ExperimentData,
                         device: torch.device) -> dict[str, TrainedModel]:
    """Target and shadow models, each trained on its own split with the same recipe."""
    checksums = data.checksums()
    models = {}
    for role in ROLES:
        split = data.splits[f"{role}_train"]
        recipe = train_config(config, role)
        identity = {"arch": config.model_arch, "dataset": config.dataset, "role": role,
                    "train": recipe.to_dict(), "pretrained": config.pretrained,
                    "augmented": data.augmented_train is not None,
                    "train_split_sha256": checksums[f"{role}_train"],
                    "precision": precision_name(config.amp, device)}
        with seeded(derive_seed(config.seed, role, "init")):
            model = build_model(config.model_arch, num_classes=data.domain.num_classes,
                                in_channels=data.domain.channels, image_size=data.domain.image_size,
                                **({"pretrained": True} if config.pretrained else {}))
        path = checkpoint_path(config.pretrained_dir, config.model_arch, config.dataset,
                               training_modifier(config), role)
        if not (path.exists() or config.train or PRESETS[config.dataset].train_if_missing):
            raise FileNotFoundError(f"no {role} checkpoint {path}; run `bash download_pretrained_models.sh` "
                                    f"for the authors' models or add --train to train them")

        if not config.train:
            check_precision(path, config.amp)

        def fit(model: nn.Module, split=split, recipe=recipe, role=role) -> object:
            if data.augmented_train is not None:  # random crops/flips: a per-sample loader
                return train_model_on_dataset(model, data.augmented_train[role], recipe, device,
                                              desc=f"train {role}", progress=config.progress)
            return train_model(model, split.images, split.labels, recipe, device,
                               desc=f"train {role}", progress=config.progress)

        model, trained = load_or_train(model, path, identity, fit, force_train=config.train)
        model.to(device).eval()
        log.info("%s model %s from %s", role, "trained" if trained else "loaded", path)
        models[role] = TrainedModel(role, model, path, trained, fingerprint(model), identity["precision"])
    return models


def check_precision(path: Path, amp: bool) -> None:
    """Refuse to load checkpoint ``path`` as fp32 when it was trained with ``--amp``, or the reverse.

    The precision comes from the checkpoint's JSON (``"precision"``); a checkpoint without JSON
    (the authors' released files) was trained in fp32. A JSON without the key (written before it
    existed) is not checked. Raises ValueError naming the flag to change.
    """
    if not path.is_file():
        return
    metadata = read_metadata(path)
    if metadata is not None and not isinstance(metadata, dict):
        return  # unreadable: load_or_train retrains
    saved = "fp32" if metadata is None else metadata.get("precision")
    if saved is None or (saved == "fp32") == (not amp):
        return
    if amp:
        raise ValueError(f"checkpoint {path} was trained in fp32 (" +
                         ("no JSON beside it: the authors' files are fp32" if metadata is None
                          else f"{config_path(path).name} says so") +
                         "); drop --amp to load it, or add --train to retrain it with --amp")
    raise ValueError(f"checkpoint {path} was trained with --amp ({saved}, per {config_path(path).name}); "
                     "pass --amp to load it, or add --train to retrain it in fp32")
