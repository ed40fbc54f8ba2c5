"""Split protocols: who draws a training data set's splits and its non-member subsets.

A protocol is declared once (:class:`SplitProtocol`) and named by the data set's preset
(:class:`datasets.presets.DatasetPreset`); a new data set with its own protocol declares one beside
its builder. The three here: the package's seeded stratified splits, and the paper's CIFAR-10 and
Stanford Dogs scripts' splits (:mod:`datasets.splits.paper`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from datasets.splits import paper as paper_splits
from datasets.splits.seeded import Splits, attack_subset, make_splits, package_attack_positions
from utils.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSizes:
    """The requested sizes (``--train_set_size``, ``--test_set_size``, ``--attack_set_size``)."""

    train: int
    test: int
    attack: int


@dataclass(frozen=True)
class SplitProtocol:
    """How one data set's splits and non-member subsets are drawn.

    Attributes
    ----------
    name : recorded in the splits file and the manifest (``Splits.protocol``)
    description : for the ``--seed`` help text (``"the paper's CIFAR-10 splits"``)
    draw : ``(train_labels, test_labels or None, sizes, seed) -> Splits`` over the whole pool(s)
    non_member_rows : ``(set key, rows available, sizes, seed) -> positions`` of a non-member set
    sizes_note : appended to the size flags' help where the protocol does not use them
    """

    name: str
    description: str
    draw: Callable[[np.ndarray, np.ndarray | None, SplitSizes, int], Splits]
    non_member_rows: Callable[[str, int, SplitSizes, int], np.ndarray]
    sizes_note: str = ""


def _package_draw(train_labels: np.ndarray, test_labels: np.ndarray | None, sizes: SplitSizes,
                  seed: int) -> Splits:
    splits = make_splits(train_labels, test_labels, sizes.train, sizes.test, seed)
    return package_attack_positions(splits, sizes.attack, seed)


def _package_rows(key: str, available: int, sizes: SplitSizes, seed: int) -> np.ndarray:
    return attack_subset(sizes.attack, available, derive_seed(seed, key), f"non-member set {key!r}")


def _cifar10_draw(train_labels: np.ndarray, test_labels: np.ndarray | None, sizes: SplitSizes,
                  seed: int) -> Splits:
    return paper_splits.cifar10_splits(train_labels, len(test_labels), sizes.train, sizes.test, sizes.attack, seed)


def _cifar10_rows(key: str, available: int, sizes: SplitSizes, seed: int) -> np.ndarray:
    return paper_splits.subsample(available, sizes.attack, paper_splits.PAPER_SUBSET_SEED,
                                  what=f"--attack_set_size {sizes.attack} (non-member set "
                                       f"{key!r}); lower --attack_set_size")


def _stanford_dogs_draw(train_labels: np.ndarray, test_labels: np.ndarray | None, sizes: SplitSizes,
                        seed: int) -> Splits:
    splits = paper_splits.stanford_dogs_splits(len(train_labels), seed)
    _warn_ignored_sizes(sizes, splits)
    return splits


def _warn_ignored_sizes(sizes: SplitSizes, splits: Splits) -> None:
    """The paper's Stanford Dogs script sizes its splits by fractions; say so when flags differ."""
    effective = {"train_set_size": (sizes.train, len(splits.target_train)),
                 "test_set_size": (sizes.test, len(splits.target_test)),
                 "attack_set_size": (sizes.attack, len(splits.attack["target_non_members"]))}
    differ = [f"--{name} {asked} (protocol: {value})" for name, (asked, value) in effective.items()
              if asked != value]
    if differ:
        log.warning("stanford_dogs follows the paper's protocol (0.8 / 0.5 splits of all images, "
                    "members sized like the non-members); ignoring %s", ", ".join(differ))


def _whole_set(key: str, available: int, sizes: SplitSizes, seed: int) -> np.ndarray:
    return np.arange(available)


PACKAGE = SplitProtocol("package", "seeded stratified splits", _package_draw, _package_rows)
PAPER_CIFAR10 = SplitProtocol("paper_cifar10", "the paper's CIFAR-10 splits", _cifar10_draw, _cifar10_rows)
PAPER_STANFORD_DOGS = SplitProtocol(
    "paper_stanford_dogs", "the paper's Stanford Dogs splits", _stanford_dogs_draw, _whole_set,
    sizes_note=" (not used by the paper's Stanford Dogs splits: 0.8 / 0.5 of all images)")
