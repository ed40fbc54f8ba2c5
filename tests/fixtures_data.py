"""Tiny files in the real on-disk formats of the paper's data sets (for tests; no network).

Each ``make_tiny_*`` writes under ``root`` in the layout the loaders expect and returns what a test
needs to accept those files in place of the published ones (their MD5s). torchvision keeps its
checksums as class attributes: patch them with :func:`use_tiny_checksums` (``monkeypatch`` undoes
it), so the loaders keep checking real files against the real values.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from datasets.domain import CIFAR10_CLASSES
from utils.files import md5_file

STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


def _pixels(seed: int, count: int, height: int, width: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, channels), dtype=np.uint8)


def _pickle(path: Path, data: dict) -> list:
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return [path.name, md5_file(path)]


def use_tiny_checksums(monkeypatch, cls: type, table: dict) -> None:
    """Set ``cls``'s checksum attributes (``train_list``, ``meta``, ``split_list``, ...) to ``table``."""
    for attribute, value in table.items():
        monkeypatch.setattr(cls, attribute, value)


def _cifar_rows(seed: int, labels: np.ndarray) -> np.ndarray:
    """CIFAR rows: (N, 3072) uint8, channel planes R, G, B of 32x32 each."""
    return _pixels(seed, len(labels), 32, 32).transpose(0, 3, 1, 2).reshape(len(labels), -1)


def make_tiny_cifar10(root: str | Path, per_class: int = 3) -> dict:
    """``root/cifar-10-batches-py`` with ``per_class`` images per class in train and in test."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.tile(np.arange(10), per_class)
    train_list = []
    for number, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        rows = _cifar_rows(number, labels[part])
        train_list.append(_pickle(folder / f"data_batch_{number}",
                                  {"batch_label": f"training batch {number} of 5", "data": rows,
                                   "labels": labels[part].tolist()}))
    test = _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels.tolist(),
                                           "data": _cifar_rows(99, labels)})
    meta = _pickle(folder / "batches.meta", {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072})
    return {"train_list": train_list, "test_list": [test],
            "meta": {"filename": meta[0], "key": "label_names", "md5": meta[1]}}


def make_tiny_cifar100(root: str | Path, per_class: int = 1) -> dict:
    """``root/cifar-100-python`` (train, test, meta) with ``per_class`` images of each fine class."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    fine = np.tile(np.arange(100), per_class)
    entries = {}
    for seed, name in enumerate(("train", "test")):
        entries[name] = _pickle(folder / name, {"fine_labels": fine.tolist(), "data": _cifar_rows(seed, fine),
                                                "coarse_labels": (fine // 5).tolist()})
    meta = _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                                     "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return {"train_list": [entries["train"]], "test_list": [entries["test"]],
            "meta": {"filename": meta[0], "key": "fine_label_names", "md5": meta[1]}}


def make_tiny_svhn(root: str | Path, sizes: dict | None = None, folder: str = "svhn") -> dict:
    """``root/svhn/{train,test}_32x32.mat`` (X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0);
    returns a ``split_list`` for torchvision's SVHN."""
    from torchvision.datasets import SVHN

    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    split_list = {key: list(value) for key, value in SVHN.split_list.items()}
    for seed, (split, count) in enumerate((sizes or {"train": 12, "test": 8}).items()):
        digits = np.arange(count) % 10
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
        X = _pixels(seed, count, 32, 32).transpose(1, 2, 3, 0)
        path = out / f"{split}_32x32.mat"
        scipy.io.savemat(str(path), {"X": X, "y": y})
        split_list[split][2] = md5_file(path)
    return {"split_list": split_list}


def make_tiny_stl10(root: str | Path, per_class: int = 2) -> dict:
    """``root/stl10_binary`` with train/test binaries (no unlabeled_X.bin) and class_names.txt."""
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")
    table = {}
    for seed, (split, stem) in enumerate((("train_list", "train"), ("test_list", "test"))):
        labels = np.tile(np.arange(10), per_class)
        images = _pixels(seed, len(labels), 96, 96).transpose(0, 3, 2, 1)  # (N, C, W, H): column-major
        (folder / f"{stem}_X.bin").write_bytes(np.ascontiguousarray(images).tobytes())
        (folder / f"{stem}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
        table[split] = [[f"{stem}_X.bin", md5_file(folder / f"{stem}_X.bin")],
                        [f"{stem}_y.bin", md5_file(folder / f"{stem}_y.bin")]]
    table["train_list"].append(["unlabeled_X.bin", "0" * 32])  # never read for train/test
    return table


def _cell(strings: list[str]) -> np.ndarray:
    cells = np.empty((len(strings), 1), dtype=object)
    for row, text in enumerate(strings):
        cells[row, 0] = np.array([text])
    return cells


def make_tiny_stanford_dogs(root: str | Path, breeds: int = 3, per_breed: int = 4,
                            test_per_breed: int = 2) -> dict:
    """``root/stanford_dogs/Images/<synset>-<breed>/*.jpg`` of mixed sizes, plus
    ``train_list.mat``/``test_list.mat`` in the published fields; returns the breed names and
    the MD5s to patch into :mod:`datasets.sources`."""
    from datasets.verification import paper_folder_md5

    base = Path(root) / "stanford_dogs"
    names = [f"Breed_{chr(ord('A') + index)}" for index in range(breeds)]
    lists = {"train": ([], []), "test": ([], [])}
    for index, name in enumerate(names):
        synset = f"n020{index:05d}"
        folder = base / "Images" / f"{synset}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(per_breed):
            height, width = 40 + 6 * number, 30 + 4 * index
            Image.fromarray(_pixels(index * 100 + number, 1, height, width)[0]).save(
                folder / f"{synset}_{number:04d}.jpg")
            split = "test" if number < test_per_breed else "train"
            lists[split][0].append(f"{synset}-{name}/{synset}_{number:04d}.jpg")
            lists[split][1].append(index + 1)
    md5s = {}
    for split, (files, labels) in lists.items():
        path = base / f"{split}_list.mat"
        scipy.io.savemat(str(path), {"file_list": _cell(files),
                                     "annotation_list": _cell([f[:-4] for f in files]),
                                     "labels": np.asarray(labels, dtype=np.float64).reshape(-1, 1)})
        md5s[f"stanford_dogs/{split}_list.mat"] = md5_file(path)
    return {"breeds": tuple(names), "file_md5": md5s,
            "folder_md5": {"stanford_dogs/Images": paper_folder_md5(base / "Images")}}


def make_tiny_afhq(root: str | Path, per_class: int = 3, val_per_class: int = 2,
                   suffix: str = ".jpg") -> dict:
    """``root/afhq/{train,val}/{cat,dog,wild}/`` images; returns the folder MD5 to patch."""
    from datasets.verification import paper_folder_md5

    base = Path(root) / "afhq"
    for split, count in (("train", per_class), ("val", val_per_class)):
        for index, name in enumerate(("cat", "dog", "wild")):
            folder = base / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                Image.fromarray(_pixels(index * 50 + number + (split == "val") * 7, 1, 48, 48)[0]).save(
                    folder / f"flickr_{name}_{number:06d}{suffix}")
    return {"folder_md5": {"afhq": paper_folder_md5(base)}}
