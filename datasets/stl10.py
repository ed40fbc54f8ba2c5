"""STL-10 (torchvision's binaries) as a CIFAR-10-like set: monkeys removed, labels mapped.

Files: ``<data_root>/stl10_binary/`` or ``<data_root>/stl10/stl10_binary/`` (the paper's layout).
Images (96x96) are resized to the target's size.
"""
from __future__ import annotations

import os

import numpy as np
from torchvision.datasets import STL10
from torchvision.datasets.utils import check_integrity

from datasets.domain import CIFAR10_CLASSES
from datasets.image_folder import check_split, first_existing, no_labels
from datasets.torchvision_sets import open_torchvision
from datasets.transforms import TransformedSet, request_transform
from datasets.registry import DataRequest, NamedSet, as_path, register_dataset

SPLITS = ("train", "test")
STL10_MONKEY = 7
# STL-10 class -> CIFAR-10 class (airplane, bird, car, cat, deer, dog, horse, -, ship, truck)
STL10_TO_CIFAR10 = {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5, 6: 7, 8: 8, 9: 9}


class STL10Split(STL10):
    """torchvision's STL-10 reader that checks (with torchvision's MD5s) only the files of the
    split it reads, so the 2.6 GB ``unlabeled_X.bin`` is not needed for ``train``/``test``."""

    def split_files(self) -> list[tuple[str, str]]:
        files = self.test_list if self.split == "test" else self.train_list[:2]
        return [tuple(entry) for entry in files]

    def _check_integrity(self) -> bool:
        return all(check_integrity(os.path.join(self.root, self.base_folder, name), md5)
                   for name, md5 in self.split_files())


def stl10_kept_and_labels(stl_labels: np.ndarray, cifar_space: bool) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the non-monkey samples, and their labels (CIFAR-10 classes or -1)."""
    stl_labels = np.asarray(stl_labels, dtype=np.int64)
    kept = np.flatnonzero(stl_labels != STL10_MONKEY)
    if not cifar_space:
        return kept, no_labels(len(kept)).numpy()
    return kept, np.array([STL10_TO_CIFAR10[int(label)] for label in stl_labels[kept]], dtype=np.int64)


@register_dataset("stl10", "STL-10", paper_split="train")
def build_stl10(request: DataRequest) -> NamedSet:
    """STL-10 ``train`` (5,000 - 500 monkeys = 4,500; the paper's row) or ``test`` (7,200)."""
    split = check_split(request.split, SPLITS, "stl10")
    data_root = as_path(request.data_root)
    root = first_existing([data_root, data_root / "stl10"], STL10.base_folder)
    folder = root / STL10.base_folder
    files = STL10.test_list if split == "test" else STL10.train_list[:2]
    base = open_torchvision(lambda: STL10Split(str(root), split=split, download=request.download),
                            "STL-10", folder, [tuple(entry) for entry in files], STL10.url,
                            request.download, request.verify_checksums)
    cifar_space = tuple(request.domain.class_names) == CIFAR10_CLASSES
    kept, labels = stl10_kept_and_labels(base.labels, cifar_space)
    return NamedSet("STL-10", TransformedSet(base, request_transform(request), labels, kept),
                    cifar_space, str(folder))
