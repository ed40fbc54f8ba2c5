"""Data stage: the target's domain, the four splits, and the non-member sets."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from datasets import DataRequest, Domain, NamedSet, build_dataset
from datasets.errors import ChecksumError, DataNotFoundError
from datasets.sources import PAPER_SPLITS
from pipeline.config import DERIVED_SETS, PRESETS, ExperimentConfig, row_name
from pipeline.manifest import tensor_digest
from pipeline.scores import materialize
from pipeline.splits import Splits, attack_subset, make_splits
from utils.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass
class SplitTensors:
    """Images normalised for the target ``(N, C, H, W)`` and labels ``(N,)`` of one split."""

    images: torch.Tensor
    labels: torch.Tensor

    def subset(self, positions: np.ndarray) -> "SplitTensors":
        index = torch.as_tensor(positions, dtype=torch.long)
        return SplitTensors(self.images[index], self.labels[index])

    def as_named_set(self, name: str) -> NamedSet:
        return NamedSet(name, TensorDataset(self.images, self.labels), True, "split")


@dataclass
class ExperimentData:
    """The target's domain and its four splits (target/shadow x train/test)."""

    domain: Domain
    splits: dict[str, SplitTensors]
    indices: Splits
    augmented_train: dict[str, Dataset] | None = None  # role -> train split with random augmentation

    def checksums(self) -> dict[str, str]:
        return {name: tensor_digest(split.images) for name, split in self.splits.items()}


def data_request(config: ExperimentConfig, domain: Domain, split: str = "test") -> DataRequest:
    options = dict(config.options)
    options.setdefault("verify_checksums", config.verify_checksums)  # --no_verify
    if config.generator_pkl:
        options["generator_pkl"] = config.generator_pkl
    if config.stylegan_repo:
        options["stylegan_repo"] = config.stylegan_repo
    return DataRequest(domain=domain, data_root=Path(config.data_root), split=split, seed=config.seed,
                       download=config.download, allow_pickle=config.allow_pickle, options=options)


def load_experiment_data(config: ExperimentConfig, domain: Domain) -> ExperimentData:
    """Build the training pool(s) and cut seeded, stratified, disjoint splits."""
    preset = PRESETS[config.dataset]
    train_pool = build_dataset(preset.dataset, data_request(config, domain, preset.train_pool))
    test_pool = (build_dataset(preset.dataset, data_request(config, domain, preset.test_pool))
                 if preset.test_pool else None)
    train_labels = _labels_of(train_pool)
    test_labels = _labels_of(test_pool) if test_pool is not None else None
    indices = make_splits(train_labels, test_labels, config.train_set_size, config.test_set_size,
                          config.seed)
    tensors = {}
    for name, positions in indices.as_dict().items():
        pool = train_pool if name.endswith("train") or test_pool is None else test_pool
        images, labels = materialize(Subset(pool.dataset, positions.tolist()))
        tensors[name] = SplitTensors(images, labels)
    augmented = None
    if preset.augment_train:
        request = data_request(config, domain, preset.train_pool)
        request.options["augment"] = True
        pool = build_dataset(preset.dataset, request).dataset
        augmented = {role: Subset(pool, getattr(indices, f"{role}_train").tolist())
                     for role in ("target", "shadow")}
    return ExperimentData(domain, tensors, indices, augmented)


def _labels_of(named: NamedSet) -> np.ndarray:
    """Labels of a whole pool without decoding images where the set exposes them."""
    dataset = named.dataset
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy()
    for attribute in ("targets", "labels"):
        if hasattr(dataset, attribute):
            return np.asarray(getattr(dataset, attribute))
    return materialize(dataset)[1].numpy()


@dataclass
class NonMemberSets:
    """The non-member rows of a run, each materialised at the attack-set size."""

    sets: dict[str, SplitTensors]      # row name (pipeline.config.row_name) -> tensors
    in_label_space: dict[str, bool]    # display name -> labels are target classes
    skipped: dict[str, str]            # requested key -> one-line reason it is missing
    artifacts: dict[str, str]          # files the builders wrote (e.g. generated sample grids)


def build_non_member_sets(config: ExperimentConfig, data: ExperimentData,
                          original: SplitTensors, extra_options: dict | None = None) -> NonMemberSets:
    """Materialise every requested non-member row; missing data is skipped unless ``config.strict``."""
    sets, in_space, skipped, artifacts = {}, {}, {}, {}
    original_set = original.as_named_set("Original")
    request = data_request(config, data.domain)
    if extra_options:
        request.options.update(extra_options)
    for key in config.sets:
        try:
            named = _build_row(key, original_set, request)
        except (DataNotFoundError, ChecksumError) as error:
            if config.strict:
                raise
            log.warning("skipping non-member set %s: %s", key, error)
            skipped[key] = str(error)
            continue
        if named.dataset is original_set.dataset:
            tensors = original
        else:
            positions = attack_subset(config.attack_set_size, len(named), derive_seed(config.seed, key),
                                      f"non-member set {key!r}")
            tensors = SplitTensors(*materialize(Subset(named.dataset, positions.tolist())))
        name = row_name(config.dataset, key, named.name)  # the paper's row label
        sets[name] = tensors
        in_space[name] = named.in_label_space
        artifacts.update(named.artifacts)
    return NonMemberSets(sets, in_space, skipped, artifacts)


def _build_row(key: str, original: NamedSet, request: DataRequest) -> NamedSet:
    from datasets.perturbations import perturb

    if key == "original":
        return original
    if key in DERIVED_SETS:
        return perturb(key, original, request.domain, request.seed)
    return build_dataset(key, replace(request, split=PAPER_SPLITS.get(key, request.split)))
