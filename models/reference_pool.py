"""Reference-model pool: K models of the target's architecture and recipe on random halves of a
population, their membership matrix, checkpoints, and resuming an interrupted pool.

The membership design is balanced: every population sample is IN for ``K // 2`` or ``K // 2 + 1``
models (so each has IN and OUT models when K >= 2), and each model trains on about half the
population. Training one model (:func:`train_reference_model`) is a plain function of tensors, so
it runs the same in this process or in a Ray task (:mod:`models.ray_pool`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import build_model
from models.checkpoints import (WEIGHTS_KEY, CheckpointError, checkpoint_path, config_path, fingerprint,
                                load_checkpoint, save_checkpoint)
from models.training import TrainConfig, train_model
from utils.files import atomic_path, sha256_file
from utils.seeding import seeded


def balanced_membership(num_models: int, num_samples: int, seed: int) -> np.ndarray:
    """Bool (K, N): column i is True for a seeded random ``K // 2`` (odd K: ``K // 2`` or ``+ 1``) models."""
    if num_models < 1:
        raise ValueError(f"--reference_models must be at least 1, got {num_models}")
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((num_models, num_samples)), axis=0)   # a random order of models per sample
    n_in = np.full(num_samples, num_models // 2)
    if num_models % 2:
        n_in += rng.random(num_samples) < 0.5
    return ranks < n_in[None, :]


@dataclass(frozen=True)
class ReferenceModelSpec:
    """Everything that defines reference model ``index`` (saved beside its checkpoint)."""

    index: int
    arch: str
    num_classes: int
    in_channels: int
    image_size: int
    recipe: dict             # TrainConfig.to_dict()
    init_seed: int
    population_sha256: str   # images and labels of the population
    members_sha256: str      # which population rows it trains on

    def identity(self) -> dict:
        return {"role": f"reference_{self.index}", "arch": self.arch, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "image_size": self.image_size, "train": self.recipe,
                "init_seed": self.init_seed, "population_sha256": self.population_sha256,
                "members_sha256": self.members_sha256}

    def build(self) -> nn.Module:
        """The freshly initialised model (seeded)."""
        with seeded(self.init_seed):
            return build_model(self.arch, num_classes=self.num_classes, in_channels=self.in_channels,
                               image_size=self.image_size)


def train_reference_model(spec: ReferenceModelSpec, images: torch.Tensor, labels: torch.Tensor,
                          rows: np.ndarray, threads: int | None = None, device: str = "cpu") -> dict:
    """Train reference model ``spec.index`` on ``images[rows]``; returns its CPU state dict and timing.

    ``threads`` sets ``torch.set_num_threads`` for the duration (one Ray task per core must not
    oversubscribe the machine); the previous count is restored.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        model = spec.build()
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        train_model(model, images[index], labels[index], TrainConfig.from_dict(spec.recipe), device,
                    desc=f"reference {spec.index}", progress=False)
        state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
        return {"index": spec.index, "state_dict": state, "seconds": time.perf_counter() - start}
    finally:
        torch.set_num_threads(previous)


class ReferencePool:
    """Checkpoints ``{dir}/{arch}_{dataset}_{modifiers}reference_{k}.pt`` (+ ``.json``) and the
    membership matrix ``..._reference_membership.npy``."""

    def __init__(self, directory: str | Path, arch: str, dataset: str, modifiers: str = ""):
        self.directory, self.arch, self.dataset, self.modifiers = Path(directory), arch, dataset, modifiers

    def path(self, index: int) -> Path:
        return checkpoint_path(self.directory, self.arch, self.dataset, self.modifiers, f"reference_{index}")

    @property
    def membership_path(self) -> Path:
        return checkpoint_path(self.directory, self.arch, self.dataset, self.modifiers,
                               "reference_membership").with_suffix(".npy")

    def save_membership(self, membership: np.ndarray) -> Path:
        with atomic_path(self.membership_path) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, membership)
        return self.membership_path

    def load_trained(self, spec: ReferenceModelSpec) -> nn.Module | None:
        """Model ``spec.index`` if a checkpoint made with ``spec`` exists; None when it must be trained.

        Raises
        ------
        ValueError
            The checkpoint there is of another architecture (one line naming the file).
        """
        path = self.path(spec.index)
        if not path.is_file():
            return None
        try:
            saved = json.loads(config_path(path).read_text())
        except (OSError, ValueError):
            return None
        if saved.get("arch") != spec.arch:
            raise ValueError(f"reference model {path} is a {saved.get('arch')!r} model but the target is "
                             f"{spec.arch!r}; reference models must share the target's architecture: "
                             f"delete the file to retrain it")
        if not isinstance(saved, dict):
            return None
        recorded_weights = saved.pop(WEIGHTS_KEY, None)
        if saved != json.loads(json.dumps(spec.identity())):
            return None
        if recorded_weights is not None and recorded_weights != sha256_file(path):
            return None  # weights and config from different saves: retrain this model
        model = spec.build()
        try:
            return load_checkpoint(model, path)
        except CheckpointError as error:
            raise ValueError(f"reference model {error}") from None

    def save(self, spec: ReferenceModelSpec, state_dict: dict) -> tuple[nn.Module, str]:
        """Load ``state_dict`` into a fresh model of ``spec``, save it; returns (model, fingerprint)."""
        model = spec.build()
        model.load_state_dict(state_dict, strict=True)
        save_checkpoint(model, self.path(spec.index), spec.identity())
        return model, fingerprint(model)


def check_same_architecture(target: nn.Module, reference: nn.Module, what: str = "reference model") -> None:
    """Raise a one-line ValueError unless ``reference`` has the target's class and parameter shapes."""
    expected = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    if type(target) is not type(reference) or expected != found:
        raise ValueError(f"{what} is a {type(reference).__name__} with {len(found)} tensors but the target is a "
                         f"{type(target).__name__} with {len(expected)}; reference models must share the "
                         f"target's architecture")


def digest_rows(*arrays) -> str:
    """SHA-256 of arrays' bytes (population identity, member rows)."""
    digest = hashlib.sha256()
    for array in arrays:
        data = array.detach().cpu().contiguous().numpy() if isinstance(array, torch.Tensor) else np.ascontiguousarray(array)
        digest.update(str(data.dtype).encode() + str(data.shape).encode())
        digest.update(data.tobytes())
    return digest.hexdigest()
