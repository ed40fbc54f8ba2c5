"""The paper's presets draw exactly the paper's index sets.

The reference side of every test walks through the paper's scripts with data set objects, as they
do: ``torch.manual_seed`` + ``random_split`` on the global generator, scikit-learn's
``train_test_split`` on ``list(range(n))``, ``Subset`` of ``Subset``. Items of :class:`IndexSet`
are their own index, so reading a nested subset gives indices into the source data set.
"""
import dataclasses

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, Subset, random_split

from datasets.errors import DataSizeError
from datasets import set_declarations
from datasets.splits import paper as paper_splits
from configuration.config import config_from_preset
from pipeline.stages.data import draw_splits, non_member_positions

CIFAR_TRAIN_LABELS = np.tile(np.arange(10), 5_000)[np.random.default_rng(0).permutation(50_000)]
CIFAR_TEST_LABELS = np.tile(np.arange(10), 1_000)[np.random.default_rng(1).permutation(10_000)]
DOGS_LABELS = np.sort(np.arange(20_580) % 120)  # ImageFolder order: breed by breed


class IndexSet(Dataset):
    """``n`` samples; sample ``i`` is ``i``; ``targets`` like torchvision's sets."""

    def __init__(self, targets):
        self.targets = list(np.asarray(targets).tolist())

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return index


def read(subset) -> list[int]:
    return [int(subset[i]) for i in range(len(subset))]


# The paper's two helpers (utils/dataset_utils.py), as its scripts call them -------------------

def reference_subsample(data, size, seed=0, stratify=False):
    if stratify:
        kept, _ = train_test_split(list(range(len(data))), train_size=size, random_state=seed,
                                   stratify=data.targets)
        return Subset(data, kept)
    torch.manual_seed(seed)
    return random_split(data, [size, len(data) - size])[0]


def reference_train_val(data, fraction, seed=0, stratify=False):
    first = int(fraction * len(data))
    if stratify:  # the paper asks for stratification but passes no targets
        a, b = train_test_split(list(range(len(data))), train_size=first, test_size=len(data) - first,
                                random_state=seed, stratify=None)
        return Subset(data, a), Subset(data, b)
    torch.manual_seed(seed)
    return random_split(data, [first, len(data) - first])


def reference_cifar10(seed, train_set_size=12_500, test_set_size=5_000, attack_set_size=2_500):
    train, test = IndexSet(CIFAR_TRAIN_LABELS), IndexSet(CIFAR_TEST_LABELS)
    pool = reference_subsample(train, train_set_size * 2, seed=seed, stratify=True)
    target_train, shadow_train = reference_train_val(pool, 0.5, seed=seed, stratify=True)
    test_pool = test
    if len(test) > test_set_size * 2:
        test_pool = reference_subsample(test, test_set_size * 2, seed=seed, stratify=False)
    target_test, shadow_test = reference_train_val(test_pool, 0.5, seed=seed, stratify=False)
    sets = {"target_train": target_train, "shadow_train": shadow_train, "target_test": target_test,
            "shadow_test": shadow_test}
    sets["target_members"] = reference_subsample(target_train, attack_set_size)
    sets["target_non_members"] = reference_subsample(target_test, attack_set_size)
    sets["shadow_members"] = reference_subsample(shadow_train, attack_set_size)
    sets["shadow_non_members"] = reference_subsample(shadow_test, attack_set_size)
    return {name: read(subset) for name, subset in sets.items()}


def reference_stanford_dogs(seed):
    dogs = IndexSet(DOGS_LABELS)
    dataset_train, _ = reference_train_val(dogs, 0.8, seed=seed)
    train_no_augmentation, dataset_test = reference_train_val(dogs, 0.8, seed=seed)
    target_train, shadow_train = reference_train_val(dataset_train, 0.5, seed=seed)
    target_no_aug, shadow_no_aug = reference_train_val(train_no_augmentation, 0.5, seed=seed)
    assert read(target_train) == read(target_no_aug) and read(dataset_train) == read(train_no_augmentation)
    non_member_target, non_member_shadow = reference_train_val(dataset_test, 0.5, seed=seed)
    return {name: read(subset) for name, subset in {
        "target_train": target_train, "shadow_train": shadow_train, "target_test": dataset_test,
        "shadow_test": dataset_test, "target_non_members": non_member_target,
        "shadow_non_members": non_member_shadow,
        "target_members": reference_subsample(target_no_aug, len(non_member_target), seed=seed),
        "shadow_members": reference_subsample(shadow_no_aug, len(non_member_shadow), seed=seed)}.items()}


def package_sets(splits) -> dict[str, list[int]]:
    return {name: np.asarray(value).tolist() for name, value in {**splits.as_dict(),
                                                                 **splits.attack_indices()}.items()}


# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [42, 7])
def test_cifar10_preset_draws_the_papers_index_sets(seed):
    config = config_from_preset("cifar10", seed=seed)
    ours = package_sets(draw_splits(config, CIFAR_TRAIN_LABELS, CIFAR_TEST_LABELS))
    reference = reference_cifar10(seed)
    for name, indices in reference.items():
        assert ours[name] == indices, name  # same samples, same order
    assert [len(reference[n]) for n in ("target_train", "target_test", "target_members")] == [12_500, 5_000, 2_500]
    stratified = np.bincount(CIFAR_TRAIN_LABELS[ours["target_train"] + ours["shadow_train"]])
    assert stratified.tolist() == [2_500] * 10  # the model pool is stratified; its halves are not
    assert np.bincount(CIFAR_TRAIN_LABELS[ours["target_train"]]).tolist() != [1_250] * 10
    # --train or loading checkpoints: the same indices
    again = package_sets(draw_splits(dataclasses.replace(config, train=True), CIFAR_TRAIN_LABELS, CIFAR_TEST_LABELS))
    assert again == ours


def test_cifar10_preset_follows_the_size_flags_as_the_paper():
    sizes = {"train_set_size": 4_000, "test_set_size": 1_500, "attack_set_size": 1_000}
    config = config_from_preset("cifar10", seed=3, **sizes)
    ours = package_sets(draw_splits(config, CIFAR_TRAIN_LABELS, CIFAR_TEST_LABELS))
    assert ours == reference_cifar10(3, **sizes)  # the test pool is subsampled first here


@pytest.mark.parametrize("seed", [42, 7])
def test_stanford_dogs_preset_draws_the_papers_index_sets(seed):
    config = config_from_preset("stanford_dogs", seed=seed)
    splits = draw_splits(config, DOGS_LABELS, None)
    ours, reference = package_sets(splits), reference_stanford_dogs(seed)
    for name, indices in reference.items():
        assert ours[name] == indices, name
    assert [len(reference[n]) for n in ("target_train", "shadow_train", "target_test", "target_non_members",
                                        "target_members")] == [8_232, 8_232, 4_116, 2_058, 2_058]
    assert splits.shared_test
    assert package_sets(draw_splits(dataclasses.replace(config, train=True), DOGS_LABELS, None)) == ours


def test_ood_subsets_as_the_paper():
    """CIFAR-10: each OOD set's seed-0 random_split subset of attack-set size; Stanford Dogs: whole."""
    cifar = config_from_preset("cifar10", seed=7)
    stl_labels = np.tile(np.arange(10), 500)
    stl_non_monkeys = Subset(IndexSet(stl_labels), np.where(stl_labels != 7)[0])
    afhq_targets = np.repeat([0, 1, 2], [5_153, 4_739, 4_738])
    afhq_dogs = Subset(IndexSet(afhq_targets), np.where(afhq_targets == 1)[0])
    for key, data in {"stl10": stl_non_monkeys, "afhq_dogs": afhq_dogs, "svhn": IndexSet(np.zeros(73_257)),
                      "cifar100": IndexSet(np.zeros(50_000)), "stanford_dogs": IndexSet(DOGS_LABELS)}.items():
        expected = read(reference_subsample(data, 2_500))
        positions = non_member_positions(cifar, key, len(data))
        mapped = [int(data[int(p)]) for p in positions]
        assert mapped == expected, key
    dogs = config_from_preset("stanford_dogs")
    for key in ("afhq_dogs", "afhq_cats", "afhq_wild", "afhq_nondogs", "fake_dogs"):
        assert non_member_positions(dogs, key, 4_739).tolist() == list(range(4_739))
    seeds = {key: d.paper_seed for key, d in set_declarations().items() if d.paper_seed is not None}
    assert seeds == {"fake_cifar10": 42, "fake_dogs": 42}  # the paper's classes' fixed seed


def test_digits_keeps_its_own_splits():
    config = config_from_preset("digits")
    labels = np.arange(1_797) % 10
    splits = draw_splits(config, labels, None)
    assert splits.protocol == "package"
    assert [len(v) for v in splits.as_dict().values()] == [400, 400, 400, 400]
    assert all(np.all(np.diff(v) > 0) for v in splits.attack.values())  # sorted positions
    assert len(np.unique(np.concatenate(list(splits.as_dict().values())))) == 1_600


def test_paper_split_errors_name_the_flag():
    with pytest.raises(DataSizeError, match="--train_set_size 50"):
        paper_splits.cifar10_splits(np.arange(100) % 10, 100, 50, 20, 10, seed=0)
    with pytest.raises(DataSizeError, match="--attack_set_size 40"):
        paper_splits.cifar10_splits(np.arange(100) % 10, 100, 30, 20, 40, seed=0)
    with pytest.raises(DataSizeError, match="Stanford Dogs"):
        paper_splits.stanford_dogs_splits(5, seed=0)
