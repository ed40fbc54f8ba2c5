"""Model stage: load the target and shadow checkpoints, or train them the same way."""
from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models import build_model
from models.checkpoints import (WEIGHTS_KEY, CheckpointError, CheckpointMismatchError, checkpoint_path,
                                config_differences, config_path, fingerprint, load_or_train, read_metadata,
                                recorded_config)
from models.dp_training import dp_accounting
from models.training import DEFAULT_LR, TrainConfig, precision_name, train_model, train_model_on_dataset
from configuration.config import ExperimentConfig
from pipeline.stages.data import ExperimentData, SplitTensors
from utils.files import remove_stale_temporaries
from utils.locks import hold_locks, refuse_if_held
from utils.devices import resolve_device
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


def train_config(config: ExperimentConfig, role: str) -> TrainConfig:
    lr = config.lr if config.lr is not None else DEFAULT_LR.get(config.model_arch, 1e-3)
    return TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=lr,
                       weight_decay=config.weight_decay,
                       label_smoothing=config.label_smoothing_factor if config.label_smoothing else 0.0,
                       seed=derive_seed(config.seed, role, "order"), amp=config.amp,
                       channels_last=config.amp,  # --amp: the fast path; default: fp32 as the paper
                       dp_epsilon=config.dp_epsilon, dp_delta=config.dp_delta,
                       dp_max_grad_norm=config.dp_max_grad_norm)


# Checkpoint-config keys -> the flag that sets them (for "made with other settings" errors).
IDENTITY_FLAGS = {"arch": "--model_arch", "seed": "--seed", "train.epochs": "--epochs",
                  "train.batch_size": "--batch_size", "train.lr": "--lr", "train.weight_decay": "--weight_decay",
                  "train.label_smoothing": "--label_smoothing_factor", "train.seed": "--seed",
                  "train.amp": "--amp", "precision": "--amp", "train.dp_epsilon": "--dp_epsilon",
                  "train.dp_delta": "--dp_delta", "train.dp_max_grad_norm": "--dp_max_grad_norm", "pretrained": "--pretrained", "augmented": "the training augmentation",
                  "train_split_sha256": "the training split (--seed, --train_set_size, --test_set_size "
                                        "or the data files)"}


def checkpoint_identity(config: ExperimentConfig, role: str, train_split_sha256: str | None = None,
                        device: torch.device | None = None) -> dict:
    """What a checkpoint's JSON records about how it was made (the split digest once data is loaded;
    the precision on ``device``, default the one ``--device`` resolves to)."""
    identity = {"arch": config.model_arch, "dataset": config.dataset, "role": role, "seed": config.seed,
                "train": train_config(config, role).to_dict(), "pretrained": config.pretrained,
                "augmented": config.preset.augment_train,
                "precision": precision_name(config.amp, device or resolve_device(config.device))}
    if train_split_sha256 is not None:
        identity["train_split_sha256"] = train_split_sha256
    if config.dp_epsilon is not None:
        identity["dp"] = dp_accounting(config.train_set_size, train_config(config, role)).to_dict()
    return identity


def checkpoint_paths(config: ExperimentConfig) -> dict[str, Path]:
    """Role -> checkpoint file of this configuration."""
    return {role: checkpoint_path(config.pretrained_dir, config.model_arch, config.dataset,
                                  config.training_modifier(), role) for role in ROLES}


def mismatch_message(error: CheckpointMismatchError) -> str:
    """A :class:`CheckpointMismatchError` in flags: what differs and the two ways forward."""
    parts, flags = [], []
    keys = {key for key, _, _ in error.differences}
    for key, saved, wanted in error.differences:
        name = IDENTITY_FLAGS.get(key, key)
        if key == "train.seed":  # derived from --seed: name the flag, not the derived number
            if "seed" not in keys:
                parts.append("--seed (another value)")
            continue
        if key == "train_split_sha256":
            if "seed" not in keys:
                parts.append(name)
            continue
        parts.append(f"{name} {saved} (requested {wanted})")
        if name.startswith("--"):
            flags.append(f"{name} {saved}")
    rerun = f" ({' '.join(flags)})" if flags else ""
    return (f"checkpoint {error.path} was trained with other settings: {', '.join(parts)}; pass --train "
            f"to retrain it (this replaces the checkpoint), or rerun with the settings it was trained "
            f"with{rerun}")


def check_checkpoints(config: ExperimentConfig) -> bool:
    """Before any work: each checkpoint path is usable, and without ``--train`` an existing
    checkpoint's recorded flags match the requested ones. Returns whether a model will be trained.

    Raises
    ------
    ValueError naming the path or the differing flags; FileNotFoundError when a checkpoint is
    missing and the data set does not train missing models.
    """
    will_train = False
    for role, path in checkpoint_paths(config).items():
        if path.is_dir():
            raise ValueError(f"checkpoint path {path} is a folder, not a file; move it away or pass "
                             f"another --pretrained_dir")
        if not path.exists():
            if not (config.train or config.preset.train_if_missing):
                raise FileNotFoundError(f"no {role} checkpoint {path}; run `bash "
                                        f"download_pretrained_models.sh` for the authors' models or add "
                                        f"--train to train them")
            will_train = True
        elif config.train:
            will_train = True
        elif config_path(path).is_file():
            check_precision(path, config.amp)
            saved = recorded_config(path)
            saved = {k: v for k, v in saved.items() if k not in ("train_split_sha256", WEIGHTS_KEY)} \
                if isinstance(saved, dict) else saved
            differences = config_differences(saved, checkpoint_identity(config, role))
            if differences:
                raise ValueError(mismatch_message(CheckpointMismatchError(path, differences)))
    return will_train


def checkpoint_write_lock(config: ExperimentConfig) -> AbstractContextManager:
    """A context holding the locks on this configuration's checkpoints when the run will write
    them (:func:`check_checkpoints`; :mod:`utils.locks`), else nothing. A second run that would
    write them, or read them while they are written, stops at once with one line naming the
    holder's pid."""
    fix = "wait for it to finish, or pass another --pretrained_dir"
    if not check_checkpoints(config):
        refuse_if_held(checkpoint_paths(config).values(), fix)
        return nullcontext([])
    return hold_locks(checkpoint_paths(config).values(), "training the target and shadow models", fix)


def load_or_train_models(config: ExperimentConfig, data: ExperimentData,
                         device: torch.device) -> dict[str, TrainedModel]:
    """Target and shadow models, each trained on its own split with the same recipe."""
    checksums = data.checksums()
    remove_stale_temporaries(config.pretrained_dir)  # half-written checkpoints of killed runs
    models = {}
    for role in ROLES:
        split = data.splits[f"{role}_train"]
        recipe = train_config(config, role)
        identity = checkpoint_identity(config, role, checksums[f"{role}_train"], device)
        with seeded(derive_seed(config.seed, role, "init")):
            model = build_model(config.model_arch, num_classes=data.domain.num_classes,
                                in_channels=data.domain.channels, image_size=data.domain.image_size,
                                **({"pretrained": True} if config.pretrained else {}))
        path = checkpoint_paths(config)[role]
        if not (path.exists() or config.train or config.preset.train_if_missing):
            raise FileNotFoundError(f"no {role} checkpoint {path}; run `bash download_pretrained_models.sh` "
                                    f"for the authors' models or add --train to train them")

        if not config.train:
            check_precision(path, config.amp)

        def fit(model: nn.Module, split: SplitTensors = split, recipe: TrainConfig = recipe,
                role: str = role) -> object:
            if data.augmented_train is not None:  # random crops/flips: a per-sample loader
                return train_model_on_dataset(model, data.augmented_train[role], recipe, device,
                                              desc=f"train {role}", progress=config.progress)
            return train_model(model, split.images, split.labels, recipe, device,
                               desc=f"train {role}", progress=config.progress)

        try:
            model, trained = load_or_train(model, path, identity, fit, force_train=config.train)
        except CheckpointMismatchError as error:
            raise ValueError(mismatch_message(error)) from None
        except CheckpointError as error:  # name the model: its role
            raise CheckpointError(f"{role} model: {error}") from None
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
