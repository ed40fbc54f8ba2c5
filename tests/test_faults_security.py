"""No code runs from a data file, verified or not, and no cache entry answers another key
(issue 18, "Security")."""
from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from datasets import CIFAR10 as CIFAR10_DOMAIN
from datasets import DataRequest, build_dataset
from datasets.cifar import ArraysOnlyCIFAR10, ArraysOnlyCIFAR100
from datasets.safe_pickle import UnsafePickleError, load_data_pickle
from pipeline.cli import main
from models.inference import ScoreCache
from tests.fixtures_data import make_tiny_cifar10, make_tiny_cifar100, use_tiny_checksums
from utils.files import md5_file

SETS = {"cifar10": (CIFAR10, ArraysOnlyCIFAR10, make_tiny_cifar10, "cifar-10-batches-py",
                    ("data_batch_1", "test_batch", "batches.meta")),
        "cifar100": (CIFAR100, ArraysOnlyCIFAR100, make_tiny_cifar100, "cifar-100-python",
                     ("train", "test", "meta"))}


class Payload:
    """Unpickling it creates ``marker`` (a stand-in for any code a crafted file would run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def craft(path: Path, marker: Path, protocol: int) -> None:
    """Overwrite ``path`` with a batch-shaped dict whose labels hold a ``__reduce__`` payload."""
    with open(path, "wb") as handle:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [Payload(marker)]}, handle,
                    protocol=protocol)


def request(root: Path, split: str, verify: bool) -> DataRequest:
    return DataRequest(CIFAR10_DOMAIN, data_root=root, split=split, verify_checksums=verify)


@pytest.mark.parametrize("key", list(SETS))
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_crafted_batch_runs_no_code_verified_or_not(tmp_path, monkeypatch, key, protocol):
    torchvision_class, _, make, folder, names = SETS[key]
    table = make(tmp_path)
    for name in names:  # each pickle-format file the set reads: a training/test batch and the meta file
        marker = tmp_path / f"ran_{name}"
        path = tmp_path / folder / name
        original = path.read_bytes()
        craft(path, marker, protocol)
        split = "test" if name in ("test_batch", "test") else "train"
        for verify in (False, True):
            if verify:  # the crafted file as if it were the published one: its MD5 is "verified"
                patched = {k: [list(entry) for entry in v] if isinstance(v, list) else dict(v)
                           for k, v in table.items()}
                for entry in patched["train_list"] + patched["test_list"]:
                    if entry[0] == name:
                        entry[1] = md5_file(path)
                if patched["meta"]["filename"] == name:
                    patched["meta"]["md5"] = md5_file(path)
                use_tiny_checksums(monkeypatch, torchvision_class, patched)
            else:
                use_tiny_checksums(monkeypatch, torchvision_class, table)
            with pytest.raises(UnsafePickleError) as caught:
                build_dataset(key, request(tmp_path, split, verify))
            message = str(caught.value)
            assert "\n" not in message and str(path) in message and "posix.system" in message, message
            assert not marker.exists(), f"code ran from {path}"
        path.write_bytes(original)


def test_a_crafted_batch_through_the_script_is_one_line_and_runs_nothing(tmp_path, capsys):
    make_tiny_cifar10(tmp_path, per_class=10)
    marker = tmp_path / "ran"
    craft(tmp_path / "cifar-10-batches-py" / "data_batch_1", marker, 2)
    argv = ["--data_root", str(tmp_path), "--results_dir", str(tmp_path / "results"), "--pretrained_dir",
            str(tmp_path / "checkpoints"), "--model_arch", "salem_cnn_relu", "--epochs", "1", "--quiet",
            "--no_figures", "--train", "--train_set_size", "30", "--test_set_size", "20",
            "--attack_set_size", "10", "--sets", "original", "--no_verify"]
    assert main("cifar10", argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in error if line.startswith("error:")]) == 1
    assert "data_batch_1" in error[-1] and "refusing to unpickle" in error[-1], error
    assert not marker.exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("key", list(SETS))
def test_valid_files_give_torchvisions_images_labels_and_classes(tmp_path, monkeypatch, key):
    torchvision_class, safe_class, make, _, _ = SETS[key]
    use_tiny_checksums(monkeypatch, torchvision_class, make(tmp_path))
    for train in (True, False):
        theirs, ours = torchvision_class(str(tmp_path), train=train), safe_class(str(tmp_path), train=train)
        assert ours.data.dtype == theirs.data.dtype and ours.data.shape == theirs.data.shape
        np.testing.assert_array_equal(ours.data, theirs.data)
        assert ours.targets == theirs.targets and ours.classes == theirs.classes
        assert ours.class_to_idx == theirs.class_to_idx
        image, label = ours[3]
        expected_image, expected_label = theirs[3]
        assert label == expected_label and np.array_equal(np.asarray(image), np.asarray(expected_image))


def test_python2_protocol_arrays_and_bytes_load(tmp_path):
    """The published batches were written by Python 2 (protocol 2, byte strings)."""
    path = tmp_path / "batch"
    value = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"filenames": [b"a.png", b"b.png"],
             b"labels": [3, 4], "scalar": np.float32(1.5), "empty": np.zeros((0, 3))}
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        loaded = load_data_pickle(path)
        np.testing.assert_array_equal(loaded[b"data"], value[b"data"])
        assert loaded[b"filenames"] == value[b"filenames"] and loaded["scalar"] == 1.5


def test_object_arrays_and_other_globals_are_refused(tmp_path):
    path = tmp_path / "batch"
    for value, named in (({"data": np.array([1, "x"], dtype=object)}, "array of Python objects"),
                         ({"data": torch.zeros(2)}, "torch")):
        path.write_bytes(pickle.dumps(value))
        with pytest.raises(UnsafePickleError, match=named):
            load_data_pickle(path)


# ---------------------------------------------------------------------------------------------
# score-cache entries are bound to their key


def test_a_cache_entry_copied_from_another_key_is_refused_and_recomputed(tmp_path, caplog):
    rng = np.random.default_rng(0)
    probs = {key: rng.dirichlet(np.ones(4), size=6) for key in ("a", "b")}
    labels = torch.arange(6) % 4
    cache = ScoreCache(tmp_path / "cache")
    calls = []

    def compute(key):
        def run():
            calls.append(key)
            return probs[key]
        return run

    for key in probs:
        cache.get_or_compute(key, labels, True, compute(key), classes=4)
    folder = tmp_path / "cache"
    (folder / "scores_b.npz").write_bytes((folder / "scores_a.npz").read_bytes())  # same shape, valid file
    with caplog.at_level(logging.WARNING):
        scores = ScoreCache(folder).get_or_compute("b", labels, True, compute("b"), classes=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(folder / "scores_b.npz") in warnings[0], warnings
    assert "scores_a" in warnings[0] and "recomputing" in warnings[0]
    np.testing.assert_array_equal(scores.probs, probs["b"])
    assert calls == ["a", "b", "b"]
    again = ScoreCache(folder).get_or_compute("b", labels, True, compute("b"), classes=4)
    np.testing.assert_array_equal(again.probs, probs["b"])
    assert calls == ["a", "b", "b"]  # healed


def test_an_entry_whose_stored_key_was_rewritten_too_is_refused(tmp_path, caplog):
    """Renaming the key inside the copy does not help: the checksum binds the key."""
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=4)
    cache = ScoreCache(tmp_path)
    cache.get_or_compute("a", torch.zeros(4, dtype=torch.long), True, lambda: probs, classes=3)
    with np.load(tmp_path / "scores_a.npz") as stored:
        arrays = dict(stored)
    arrays["key"] = np.array("scores_b")
    np.savez(tmp_path / "scores_b.npz", **arrays)
    other = probs[::-1].copy()
    with caplog.at_level(logging.WARNING):
        scores = cache.get_or_compute("b", torch.zeros(4, dtype=torch.long), True, lambda: other, classes=3)
    np.testing.assert_array_equal(scores.probs, other)
    assert cache.repaired == 1 and "checksum mismatch" in caplog.text
