"""The paper's splits, step by step: the same scikit-learn and PyTorch calls, seeds and order.

Two helpers of the paper's ``utils/dataset_utils.py`` make every split; here they work on
positions ``0..n-1`` instead of data set objects (a ``Subset`` of a ``Subset`` becomes
``outer[inner]``), and keep the order the paper's calls return:

- ``get_subsampled_dataset(data, size, seed=0, stratify=False)``: with ``stratify`` the first
  part of ``train_test_split(range(n), train_size=size, random_state=seed, stratify=targets)``;
  otherwise the first part of ``random_split(data, [size, n - size])`` after
  ``torch.manual_seed(seed)`` -> :func:`subsample`.
- ``get_train_val_split(data, fraction, seed, stratify=False)``: ``int(fraction * n)`` samples,
  then with ``stratify`` ``train_test_split(range(n), ..., random_state=seed)`` *without* targets
  (the paper passes none, so this split is shuffled but not stratified); otherwise
  ``random_split`` after ``torch.manual_seed(seed)`` -> :func:`train_val`.

``torch.manual_seed(seed)`` followed by ``random_split`` draws ``torch.randperm(n)`` from the
default CPU generator; a fresh ``torch.Generator().manual_seed(seed)`` draws the same
permutation without touching the global RNG state.

CIFAR-10 (``experiments/cifar10_experiments.py``), all with the run's ``--seed`` unless named:

1. model pool: ``get_subsampled_dataset(train, 2 * train_set_size, seed, stratify=True)``
   (stratified by the 50,000 labels);
2. target / shadow train: ``get_train_val_split(pool, 0.5, seed, stratify=True)`` (not stratified);
3. test pool: all 10,000 test images, or, when ``10,000 > 2 * test_set_size``,
   ``get_subsampled_dataset(test, 2 * test_set_size, seed)`` (``random_split``);
4. target / shadow test: ``get_train_val_split(test_pool, 0.5, seed)`` (``random_split``);
5. members and non-members: ``get_subsampled_dataset(split, attack_set_size)``, seed 0, of each
   model's train and test split; every OOD set's subset likewise (seed 0, attack-set size).

Stanford Dogs (``experiments/stanford_dogs_experiments.py``), all 20,580 images in ImageFolder order:

1. train / test: ``get_train_val_split(all, 0.8, seed)`` (16,464 / 4,116);
2. target / shadow train: ``get_train_val_split(train, 0.5, seed)`` (8,232 each);
3. non-members of target / shadow: ``get_train_val_split(test, 0.5, seed)`` (2,058 each); both
   models' test accuracy and ECE use the whole test part;
4. members: ``get_subsampled_dataset(model_train, len(non_members), seed)`` (``random_split``);
5. the OOD sets (AFHQ, Fake Dogs) are used whole. ``--train_set_size``, ``--test_set_size`` and
   ``--attack_set_size`` do not enter these splits in the paper's script.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import random_split

from datasets.errors import DataSizeError
from datasets.splits.seeded import Splits

PAPER_SUBSET_SEED = 0  # get_subsampled_dataset's default seed, used for attack and OOD subsets (CIFAR-10)
STANFORD_DOGS_TRAIN_FRACTION = 0.8


def random_split_parts(n: int, first: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``random_split(range(n), [first, n - first])`` after ``torch.manual_seed(seed)``.

    Returns
    -------
    (head, tail) : int64 arrays of shapes ``(first,)`` and ``(n - first,)``, in the order drawn.
    """
    generator = torch.Generator().manual_seed(int(seed))
    head, tail = random_split(range(n), [first, n - first], generator=generator)
    return np.asarray(head.indices, dtype=np.int64), np.asarray(tail.indices, dtype=np.int64)


def subsample(n: int, size: int, seed: int = PAPER_SUBSET_SEED, stratify: np.ndarray | None = None,
              what: str = "subset") -> np.ndarray:
    """Positions kept by the paper's ``get_subsampled_dataset`` on a set of ``n`` samples.

    Parameters
    ----------
    stratify : ndarray (n,) or None
        Labels: stratified ``train_test_split``; ``None``: ``random_split``.
    what : str
        Names the flag and set in the error raised when ``size`` does not fit.
    """
    if size > n:
        raise DataSizeError(f"{what}: asked for {size} samples but the set holds {n}")
    if stratify is None:
        return random_split_parts(n, size, seed)[0]
    try:
        kept, _ = train_test_split(np.arange(n), train_size=size, random_state=seed,
                                   stratify=np.asarray(stratify))
    except ValueError as error:
        raise DataSizeError(f"{what}: scikit-learn cannot draw {size} of {n} samples stratified "
                            f"({error})") from error
    return np.asarray(kept, dtype=np.int64)


def train_val(n: int, fraction: float, seed: int, sklearn: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The two parts of the paper's ``get_train_val_split`` on ``n`` samples.

    ``sklearn=True`` is the paper's ``stratify=True``: ``train_test_split`` with no targets
    (shuffled, not stratified); otherwise ``random_split``. The first part has ``int(fraction * n)``
    samples.
    """
    first = int(fraction * n)
    if not sklearn:
        return random_split_parts(n, first, seed)
    head, tail = train_test_split(np.arange(n), train_size=first, test_size=n - first, random_state=seed)
    return np.asarray(head, dtype=np.int64), np.asarray(tail, dtype=np.int64)


def cifar10_splits(train_labels: np.ndarray, n_test: int, train_set_size: int, test_set_size: int,
                   attack_set_size: int, seed: int) -> Splits:
    """The CIFAR-10 script's splits (see the module docstring), indices in the paper's order.

    Parameters
    ----------
    train_labels : ndarray (N_train,)
        Labels of the published training split (50,000 for CIFAR-10).
    n_test : int
        Size of the published test split (10,000).
    """
    train_labels = np.asarray(train_labels)
    n_train = len(train_labels)
    if 2 * train_set_size >= n_train:
        raise DataSizeError(f"--train_set_size {train_set_size}: the paper draws 2 x {train_set_size} of "
                            f"the {n_train} training images, which must be fewer than {n_train}; "
                            f"lower --train_set_size")
    pool = subsample(n_train, 2 * train_set_size, seed, stratify=train_labels,
                     what=f"--train_set_size {train_set_size}")
    first, second = train_val(len(pool), 0.5, seed, sklearn=True)
    test_pool = np.arange(n_test)
    if n_test > 2 * test_set_size:
        test_pool = subsample(n_test, 2 * test_set_size, seed, what=f"--test_set_size {test_set_size}")
    target_test, shadow_test = (test_pool[part] for part in train_val(len(test_pool), 0.5, seed))
    splits = Splits(pool[first], pool[second], target_test, shadow_test, protocol="paper_cifar10")
    attack = {}
    for name, kind in (("train", "members"), ("test", "non_members")):
        for role in ("target", "shadow"):
            split = getattr(splits, f"{role}_{name}")
            attack[f"{role}_{kind}"] = subsample(
                len(split), attack_set_size, PAPER_SUBSET_SEED,
                what=f"--attack_set_size {attack_set_size} (the {role} {name} split)")
    return splits.with_attack(attack)


def stanford_dogs_splits(n_images: int, seed: int) -> Splits:
    """The Stanford Dogs script's splits of all ``n_images`` images (see the module docstring).

    ``target_test`` and ``shadow_test`` are the same array: the shared test part (4,116 images).
    """
    if n_images < 10:
        raise DataSizeError(f"Stanford Dogs: the paper's 0.8 / 0.5 splits need at least 10 images, "
                            f"found {n_images}")
    train, test = train_val(n_images, STANFORD_DOGS_TRAIN_FRACTION, seed)
    target_part, shadow_part = train_val(len(train), 0.5, seed)
    target_non_members, shadow_non_members = train_val(len(test), 0.5, seed)
    splits = Splits(train[target_part], train[shadow_part], test, test, protocol="paper_stanford_dogs")
    members = {role: subsample(len(getattr(splits, f"{role}_train")), len(non_members), seed,
                               what=f"Stanford Dogs {role} members")
               for role, non_members in (("target", target_non_members), ("shadow", shadow_non_members))}
    return splits.with_attack({"target_members": members["target"], "target_non_members": target_non_members,
                               "shadow_members": members["shadow"], "shadow_non_members": shadow_non_members})
