"""Seeded, stratified, disjoint splits into target/shadow train/test, and attack subsets."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from datasets.errors import DataSizeError

SPLIT_NAMES = ("target_train", "shadow_train", "target_test", "shadow_test")


@dataclass(frozen=True)
class Splits:
    """Indices into the train pool (``*_train``) and the test pool (``*_test``)."""

    target_train: np.ndarray
    shadow_train: np.ndarray
    target_test: np.ndarray
    shadow_test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}


def _stratified_take(indices: np.ndarray, labels: np.ndarray, size: int, seed: int,
                     what: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into a stratified part of ``size`` and the rest."""
    if size > len(indices):
        raise DataSizeError(f"{what}: asked for {size} samples but only {len(indices)} are left; "
                            f"lower the size flag")
    if size == len(indices):
        return np.sort(indices), indices[:0]
    counts = np.bincount(labels[indices])
    stratify = labels[indices] if counts[counts > 0].min() >= 2 and size >= len(counts) else None
    taken, rest = train_test_split(indices, train_size=size, random_state=seed, stratify=stratify)
    return np.sort(taken), rest


def make_splits(train_labels: np.ndarray, test_labels: np.ndarray | None, train_size: int,
                test_size: int, seed: int) -> Splits:
    """Disjoint stratified splits.

    Parameters
    ----------
    train_labels : ndarray (N_train,)
        Labels of the pool the models train on.
    test_labels : ndarray (N_test,) or None
        Labels of a separate test pool; ``None`` when one pool serves both (then all four splits
        are drawn, disjoint, from ``train_labels``).
    train_size, test_size : int
        Samples per model in its train and test split.
    """
    train_labels = np.asarray(train_labels)
    rest = np.arange(len(train_labels))
    target_train, rest = _stratified_take(rest, train_labels, train_size, seed, "--train_set_size (target)")
    shadow_train, rest = _stratified_take(rest, train_labels, train_size, seed + 1, "--train_set_size (shadow)")
    if test_labels is None:
        test_pool, test_labels_all = rest, train_labels
    else:
        test_labels_all = np.asarray(test_labels)
        test_pool = np.arange(len(test_labels_all))
    target_test, test_pool = _stratified_take(test_pool, test_labels_all, test_size, seed + 2,
                                              "--test_set_size (target)")
    shadow_test, _ = _stratified_take(test_pool, test_labels_all, test_size, seed + 3,
                                      "--test_set_size (shadow)")
    return Splits(target_train, shadow_train, target_test, shadow_test)


def attack_subset(size: int, available: int, seed: int, what: str) -> np.ndarray:
    """``size`` sorted positions out of ``available``, drawn without replacement."""
    if size <= 0:
        raise DataSizeError(f"--attack_set_size must be positive, got {size}")
    if size > available:
        raise DataSizeError(f"--attack_set_size {size} is larger than {what} ({available} samples); "
                            f"lower --attack_set_size")
    return np.sort(np.random.default_rng(seed).choice(available, size=size, replace=False))
