"""The package's own splits (the digits default): seeded, stratified, disjoint target/shadow
train/test splits and attack subsets; and :class:`Splits`, which every protocol returns (the
paper's are in :mod:`datasets.splits.paper`)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.model_selection import train_test_split

from datasets.errors import DataSizeError

from utils.seeding import derive_seed

SPLIT_NAMES = ("target_train", "shadow_train", "target_test", "shadow_test")
ATTACK_NAMES = ("target_members", "target_non_members", "shadow_members", "shadow_non_members")


@dataclass(frozen=True)
class Splits:
    """Indices into the train pool (``*_train``) and the test pool (``*_test``), in the order used.

    ``attack`` maps ``"{role}_members"`` / ``"{role}_non_members"`` to positions within that
    role's train / test split (members / Original non-members of the attacks). ``protocol`` names
    the procedure that drew them (``"package"``, ``"paper_cifar10"``, ``"paper_stanford_dogs"``).
    """

    target_train: np.ndarray
    shadow_train: np.ndarray
    target_test: np.ndarray
    shadow_test: np.ndarray
    attack: dict = field(default_factory=dict)
    protocol: str = "package"

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}

    def with_attack(self, attack: dict[str, np.ndarray]) -> "Splits":
        return replace(self, attack={name: np.asarray(attack[name], dtype=np.int64) for name in ATTACK_NAMES})

    @property
    def shared_test(self) -> bool:
        """True when both models share one test split (the paper's Stanford Dogs protocol)."""
        return np.array_equal(self.target_test, self.shadow_test)

    def attack_indices(self) -> dict[str, np.ndarray]:
        """Pool indices of each attack subset (``split[positions]``), in the order used."""
        out = {}
        for name, positions in self.attack.items():
            role, kind = name.split("_", 1)
            out[name] = getattr(self, f"{role}_{'train' if kind == 'members' else 'test'}")[positions]
        return out


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


def package_attack_positions(splits: Splits, attack_set_size: int, seed: int) -> Splits:
    """``splits`` with the package's attack subsets: ``attack_set_size`` sorted positions per split,
    each drawn with its own seed derived from ``seed``."""
    attack = {}
    for role in ("target", "shadow"):
        for kind, split in (("members", "train"), ("non_members", "test")):
            attack[f"{role}_{kind}"] = attack_subset(
                attack_set_size, len(getattr(splits, f"{role}_{split}")), derive_seed(seed, role, kind),
                f"the {role} {split} split")
    return splits.with_attack(attack)


def complement(positions: np.ndarray, n_rows: int) -> np.ndarray:
    """Positions ``0 .. n_rows - 1`` not in ``positions`` (ascending)."""
    mask = np.ones(n_rows, dtype=bool)
    mask[positions] = False
    return np.flatnonzero(mask)
