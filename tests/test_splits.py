import numpy as np
import pytest

from datasets.errors import DataSizeError
from datasets.splits.seeded import attack_subset, make_splits


def _labels(n=400, classes=10):
    return np.arange(n) % classes


def test_single_pool_splits_are_disjoint_stratified_and_seeded():
    labels = _labels()
    splits = make_splits(labels, None, train_size=100, test_size=50, seed=3)
    parts = splits.as_dict()
    assert [len(p) for p in parts.values()] == [100, 100, 50, 50]
    union = np.concatenate(list(parts.values()))
    assert len(np.unique(union)) == len(union)
    assert np.bincount(labels[splits.target_train]).tolist() == [10] * 10
    again = make_splits(labels, None, train_size=100, test_size=50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts.values(), again.as_dict().values()))
    other = make_splits(labels, None, train_size=100, test_size=50, seed=4)
    assert not np.array_equal(other.target_train, splits.target_train)


def test_separate_test_pool():
    splits = make_splits(_labels(300), _labels(100), train_size=100, test_size=50, seed=0)
    assert len(np.intersect1d(splits.target_test, splits.shadow_test)) == 0
    assert splits.target_test.max() < 100


def test_sizes_larger_than_data_name_the_flag():
    with pytest.raises(DataSizeError, match="--train_set_size"):
        make_splits(_labels(100), None, train_size=60, test_size=10, seed=0)
    with pytest.raises(DataSizeError, match="--test_set_size"):
        make_splits(_labels(100), None, train_size=30, test_size=30, seed=0)


def test_attack_subset():
    rows = attack_subset(5, 20, seed=1, what="x")
    assert len(np.unique(rows)) == 5 and rows.max() < 20
    with pytest.raises(DataSizeError, match="--attack_set_size 30 is larger than x"):
        attack_subset(30, 20, seed=1, what="x")
