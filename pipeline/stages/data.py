"""Data stage: the target's domain, the four splits, and the non-member sets."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from datasets import AttackerData, DataRequest, Domain, NamedSet, build_dataset, set_declaration
from datasets.errors import ChecksumError, DataNotFoundError
from configuration.config import ExperimentConfig, row_name
from engine.manifest import tensor_digest
from datasets.splits.protocols import SplitSizes
from datasets.splits.seeded import Splits

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
    pools: dict[str, str] = field(default_factory=dict)  # "train_pool"/"test_pool" -> what indices index

    def checksums(self) -> dict[str, str]:
        return {name: tensor_digest(split.images) for name, split in self.splits.items()}


def data_request(config: ExperimentConfig, domain: Domain, split: str = "test") -> DataRequest:
    """The request every builder of the run gets: the run's data options, the test sizes of
    generated sets (``config.sizes``), no attacker data (see :func:`build_non_member_sets`)."""
    return DataRequest(domain=domain, data_root=Path(config.data_root), split=split, seed=config.seed,
                       download=config.download, allow_pickle=config.allow_pickle,
                       verify_checksums=config.verify_checksums, generator_pkl=config.generator_pkl,
                       stylegan_repo=config.stylegan_repo, sizes=config.sizes)


def load_experiment_data(config: ExperimentConfig, domain: Domain) -> ExperimentData:
    """Build the training pool(s) and cut the splits of the preset's protocol (the paper's for its
    presets, seeded stratified disjoint splits for the digits default)."""
    preset = config.preset
    train_pool = build_dataset(preset.dataset, data_request(config, domain, preset.train_pool))
    test_pool = (build_dataset(preset.dataset, data_request(config, domain, preset.test_pool))
                 if preset.test_pool else None)
    indices = draw_splits(config, _labels_of(train_pool),
                          _labels_of(test_pool) if test_pool is not None else None)
    tensors = {}
    for name, positions in indices.as_dict().items():
        if name == "shadow_test" and indices.shared_test:
            tensors[name] = tensors["target_test"]  # one shared test split (Stanford Dogs)
            continue
        pool = train_pool if name.endswith("train") or test_pool is None else test_pool
        images, labels = materialize(Subset(pool.dataset, positions.tolist()))
        tensors[name] = SplitTensors(images, labels)
    augmented = None
    if preset.augment_train:
        request = replace(data_request(config, domain, preset.train_pool), augment=True)
        pool = build_dataset(preset.dataset, request).dataset
        augmented = {role: Subset(pool, getattr(indices, f"{role}_train").tolist())
                     for role in ("target", "shadow")}
    pools = {"train_pool": _describe_pool(preset.dataset, preset.train_pool, train_pool)}
    pools["test_pool"] = (_describe_pool(preset.dataset, preset.test_pool, test_pool) if test_pool is not None
                          else pools["train_pool"])
    return ExperimentData(domain, tensors, indices, augmented, pools)


def _describe_pool(key: str, split: str, named: NamedSet) -> str:
    return f"{named.name} (data set {key}, split {split!r}): {len(named)} samples in loader order"


def split_sizes(config: ExperimentConfig) -> SplitSizes:
    """The sizes the flags ask for."""
    return SplitSizes(config.train_set_size, config.test_set_size, config.attack_set_size)


def draw_splits(config: ExperimentConfig, train_labels: np.ndarray,
                test_labels: np.ndarray | None) -> Splits:
    """Splits and attack subsets of ``config``'s preset protocol (labels of the whole pools)."""
    return config.preset.protocol.draw(train_labels, test_labels, split_sizes(config), config.seed)


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
    """The non-member rows of a run, each materialised at the protocol's size."""

    sets: dict[str, SplitTensors]      # row name (configuration.config.row_name) -> tensors
    in_label_space: dict[str, bool]    # display name -> labels are target classes
    skipped: dict[str, str]            # requested key -> one-line reason it is missing
    artifacts: dict[str, str]          # files the builders wrote (e.g. generated sample grids)
    indices: dict[str, "SetIndices"] = field(default_factory=dict)  # key -> rows taken (other data sets)


@dataclass
class SetIndices:
    """Rows of one non-member set taken from another data set, for the run's indices file.

    ``positions`` index the set as its builder defines it (e.g. STL-10 train without monkeys,
    the Fake CIFAR-10 train half), in the order used; ``base`` the same rows in the underlying
    file order where the builder selects from one (else ``None``).
    """

    positions: np.ndarray
    base: np.ndarray | None
    description: str


def build_non_member_sets(config: ExperimentConfig, data: ExperimentData,
                          original: SplitTensors, attacker: AttackerData | None = None) -> NonMemberSets:
    """Materialise every requested non-member row; missing data is skipped unless ``config.strict``.

    ``attacker`` is what attacker-side generators (the digits Fake row) may use.
    """
    rows = NonMemberSets({}, {}, {}, {})
    original_set = original.as_named_set("Original")
    request = replace(data_request(config, data.domain), attacker=attacker)
    for key in config.sets:
        try:
            named = _build_row(key, original_set, request)
        except (DataNotFoundError, ChecksumError) as error:
            if config.strict:
                raise
            log.warning("skipping non-member set %s: %s", key, error)
            rows.skipped[key] = str(error)
            continue
        if named.dataset is original_set.dataset:
            tensors = original
        else:
            declared = set_declaration(key)
            derived = bool(declared and declared.derived)  # rows of the Original non-members, in their order
            positions = np.arange(len(named)) if derived else non_member_positions(config, key, len(named))
            tensors = SplitTensors(*materialize(Subset(named.dataset, positions.tolist())))
            if not derived:
                rows.indices[key] = _set_indices(key, named, positions)
        name = row_name(config.dataset, key, named.name)  # the paper's row label
        rows.sets[name] = tensors
        rows.in_label_space[name] = named.in_label_space
        rows.artifacts.update(named.artifacts)
    return rows


def non_member_positions(config: ExperimentConfig, key: str, available: int) -> np.ndarray:
    """Rows of a non-member set to use, as the preset's split protocol draws them (the paper's
    seed-0 ``random_split`` subset of attack-set size for CIFAR-10, the whole set for Stanford Dogs,
    the package's seeded draw for digits)."""
    return config.preset.protocol.non_member_rows(key, available, split_sizes(config), config.seed)


def _set_indices(key: str, named: NamedSet, positions: np.ndarray) -> SetIndices:
    base_indices = getattr(named.dataset, "indices", None)
    base = None if base_indices is None else np.asarray(base_indices, dtype=np.int64)[positions]
    description = (f"{named.name} (--sets {key}): positions in the {len(named)} samples of the set "
                   f"as built from {named.source or 'its builder'}"
                   + ("; base: the same rows in the underlying file order" if base is not None else ""))
    return SetIndices(np.asarray(positions, dtype=np.int64), base, description)


def _build_row(key: str, original: NamedSet, request: DataRequest) -> NamedSet:
    from datasets.perturbations import perturb

    declared = set_declaration(key)
    if key == "original":
        return original
    if declared and declared.derived:
        return perturb(key, original, request.domain, request.seed)
    if declared is None:
        return build_dataset(key, request)
    return build_dataset(key, replace(request, split=declared.paper_split or request.split,
                                      seed=request.seed if declared.paper_seed is None else declared.paper_seed))


def materialize(dataset: Dataset, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(images, labels)`` of a set as two tensors (fast path for tensor-backed sets)."""
    if isinstance(dataset, TensorDataset):
        images, labels = dataset.tensors[:2]
        return images, labels.long()
    batches = list(DataLoader(dataset, batch_size=batch_size, shuffle=False))
    if not batches:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat([b[0] for b in batches]), torch.cat([torch.as_tensor(b[1]) for b in batches]).long()
