"""One declaration per training data set: its domain, its experiment preset and its split protocol.

:class:`DatasetPreset` holds everything a run needs to know about the data a target is trained
on: the domain (classes, channels, image size, normalisation; :mod:`datasets.domain`), the preset
(architecture, epochs, sizes, default non-member rows), the split protocol
(:mod:`datasets.splits.protocols`) and the row names where its paper script spells a set
differently. The sets' own display names and paper seeds are declared where their builders are
registered (:func:`datasets.registry.register_dataset`).

A new training data set: a module with its builder and a :func:`register_preset` call, imported by
:mod:`datasets.builtin`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from datasets.domain import CIFAR10, DIGITS, Domain
from datasets.splits.protocols import PACKAGE, PAPER_CIFAR10, PAPER_STANFORD_DOGS, SplitProtocol

DomainOf = Callable[[Path, "int | None"], Domain]   # (data root, --model_input_image_size) -> Domain


def fixed_domain(domain: Domain) -> DomainOf:
    """A domain that depends on neither the data root nor the image size flag."""
    return lambda data_root, image_size: domain


def _stanford_dogs_domain(data_root: Path, image_size: int | None) -> Domain:
    from datasets.stanford_dogs import stanford_dogs_domain_from_root

    return stanford_dogs_domain_from_root(data_root, image_size or 224)


@dataclass(frozen=True)
class DatasetPreset:
    """Defaults for experiments whose target is trained on ``dataset``."""

    dataset: str                      # registry key of the training data
    model_arch: str
    epochs: int
    batch_size: int
    train_set_size: int
    test_set_size: int
    attack_set_size: int
    label_smoothing_factor: float
    weight_decay: float               # value of the paper's L2 runs (off by default)
    temp_value: float                 # value of the paper's temperature run
    sets: tuple[str, ...]             # default non-member rows, in table order
    train_pool: str                   # published split the train (and, if one pool, test) splits come from
    test_pool: str | None             # published split of the test splits; None: cut from train_pool
    domain: DomainOf = fixed_domain(DIGITS)   # the target's input domain
    protocol: SplitProtocol = PACKAGE  # who draws splits and subsets
    train_if_missing: bool = False    # no checkpoint and no --train: train (True) or ask for one
    augment_train: bool = False       # train on the set's random training transform (per-sample loader)
    row_names: tuple[tuple[str, str], ...] = ()  # (set key, row name) where the paper's script differs
    reference_models: int = 0         # the script's default --reference_models (LiRA / RMIA; 0 = off)


PRESETS: dict[str, DatasetPreset] = {}


def register_preset(preset: DatasetPreset) -> DatasetPreset:
    """Declare the training data set ``preset.dataset`` (its experiments' defaults)."""
    if preset.dataset in PRESETS:
        raise ValueError(f"training data set {preset.dataset!r} is declared twice")
    PRESETS[preset.dataset] = preset
    return preset


register_preset(DatasetPreset(
    dataset="digits", model_arch="small_cnn", epochs=60, batch_size=32,
    train_set_size=400, test_set_size=400, attack_set_size=200,
    label_smoothing_factor=0.1, weight_decay=3e-4, temp_value=10.0,
    sets=("original", "permuted", "scaled", "no_normalization", "noise", "sample_photos", "fake_digits"),
    train_pool="all", test_pool=None, domain=fixed_domain(DIGITS), train_if_missing=True, reference_models=64))
register_preset(DatasetPreset(
    dataset="cifar10", model_arch="resnet18", epochs=100, batch_size=64,
    train_set_size=12_500, test_set_size=5_000, attack_set_size=2_500,
    label_smoothing_factor=0.0083, weight_decay=3e-4, temp_value=10.0,
    sets=("original", "permuted", "scaled", "no_normalization", "stl10", "cifar100", "svhn",
          "stanford_dogs", "fake_cifar10", "afhq_dogs", "afhq_cats"),
    train_pool="train", test_pool="test", domain=fixed_domain(CIFAR10), protocol=PAPER_CIFAR10))
register_preset(DatasetPreset(
    dataset="stanford_dogs", model_arch="resnet50", epochs=100, batch_size=64,
    train_set_size=8_232, test_set_size=2_058, attack_set_size=2_058,
    label_smoothing_factor=0.1, weight_decay=1e-3, temp_value=10.0,
    sets=("original", "fake_dogs", "afhq_dogs", "afhq_cats", "afhq_wild", "afhq_nondogs",
          "permuted", "scaled", "no_normalization"),  # the paper's Stanford Dogs row order
    train_pool="all", test_pool=None,  # the paper pooled all 20,580 images
    domain=_stanford_dogs_domain, augment_train=True, protocol=PAPER_STANFORD_DOGS,
    row_names=(("afhq_dogs", "AFHQ-Dogs"), ("afhq_cats", "AFHQ-Cats"), ("afhq_wild", "AFHQ-Wilds"),
               ("afhq_nondogs", "AFHQ-NonDogs"))))


def preset_for(dataset: str) -> DatasetPreset:
    """The declaration of training data set ``dataset`` (data set modules may declare more)."""
    if dataset not in PRESETS:
        from datasets.registry import _load_builtin_builders

        _load_builtin_builders()
    if dataset not in PRESETS:
        raise ValueError(f"unknown experiment data set {dataset!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[dataset]
