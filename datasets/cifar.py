"""CIFAR-10 and CIFAR-100 from torchvision's python pickles, in a target's domain.

Files are looked for in ``<data_root>/cifar-10-batches-py`` (``cifar-100-python``), or in
``<data_root>/cifar10/...`` (``cifar100/...``), the layout of the paper's CIFAR-10 script.
torchvision checks every file against the MD5s in ``CIFAR10.train_list``/``test_list``/``meta``.
The files are pickles: they are read with :func:`datasets.safe_pickle.load_data_pickle`, which
builds only the arrays, lists and strings they hold, so no file (verified or not, ``--no_verify``)
can run code; the images and labels are those torchvision's own loader returns.
"""
from __future__ import annotations

import os

import numpy as np
from torchvision.datasets import CIFAR10, CIFAR100, VisionDataset
from torchvision.datasets import cifar as torchvision_cifar

from datasets.errors import DamagedFileError
from datasets.image_folder import check_split, first_existing, no_labels
from datasets.safe_pickle import load_data_pickle
from datasets.torchvision_sets import open_torchvision
from datasets.transforms import TransformedSet, request_transform
from datasets.registry import DataRequest, NamedSet, as_path, register_dataset

SPLITS = ("train", "test")
PIXELS = 3 * 32 * 32  # one CIFAR row: the R, G and B planes of a 32x32 image


class _ArraysOnlyCifar:
    """torchvision's CIFAR class (mixed in before it) reading its pickles with
    :func:`load_data_pickle`: same checks, same ``data`` (N, 32, 32, 3) uint8, ``targets``,
    ``classes``; a file holding anything else is a one-line error naming it."""

    def __init__(self, root, train: bool = True, transform=None, target_transform=None,
                 download: bool = False) -> None:
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        entries = [self._read_batch(name) for name, _ in (self.train_list if train else self.test_list)]
        self.data = np.vstack([data for data, _ in entries]).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        self.targets = [label for _, labels in entries for label in labels]
        self._load_meta()

    def _fix(self) -> str:
        return f"delete it and get it again from {self.url}"

    def _read_batch(self, name: str) -> tuple[np.ndarray, list]:
        """``(data (N, 3072) uint8, labels)`` of one batch file (``labels`` or ``fine_labels``)."""
        path = os.path.join(self.root, self.base_folder, name)
        entry = load_data_pickle(path, self._fix())
        data = entry.get("data") if isinstance(entry, dict) else None
        labels = (entry.get("labels", entry.get("fine_labels")) if isinstance(entry, dict) else None)
        if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                or data.shape[1] != PIXELS or not isinstance(labels, list) or len(labels) != len(data)
                or not all(isinstance(label, int) for label in labels)):
            raise DamagedFileError(f"{path} is not a CIFAR batch (a dict of uint8 'data' rows of "
                                   f"{PIXELS} values and as many integer labels); {self._fix()}")
        return data, labels

    def _load_meta(self) -> None:
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        if not torchvision_cifar.check_integrity(path, self.meta["md5"]):
            raise RuntimeError("Dataset metadata file not found or corrupted. You can use download=True to download it")
        meta = load_data_pickle(path, self._fix())
        classes = meta.get(self.meta["key"]) if isinstance(meta, dict) else None
        if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
            raise DamagedFileError(f"{path} is not a CIFAR meta file (no list of class names under "
                                   f"{self.meta['key']!r}); {self._fix()}")
        self.classes = classes
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}


class ArraysOnlyCIFAR10(_ArraysOnlyCifar, CIFAR10):
    """torchvision's CIFAR10, its pickles read without running code (:class:`_ArraysOnlyCifar`)."""


class ArraysOnlyCIFAR100(_ArraysOnlyCifar, CIFAR100):
    """torchvision's CIFAR100, its pickles read without running code (:class:`_ArraysOnlyCifar`)."""


def cifar_files(cls: type[CIFAR10]) -> list[tuple[str, str]]:
    """(file name, MD5) of every file torchvision's ``cls`` checks, read at call time."""
    return [(name, md5) for name, md5 in cls.train_list + cls.test_list] + [
        (cls.meta["filename"], cls.meta["md5"])]


def load_cifar(cls: type[CIFAR10], key: str, display: str, request: DataRequest) -> NamedSet:
    """One split of CIFAR-10/100; labels kept when the target's class names are the set's."""
    split = check_split(request.split, SPLITS, key)
    data_root = as_path(request.data_root)
    root = first_existing([data_root, data_root / key], cls.base_folder)
    base = open_torchvision(
        lambda: cls(str(root), train=split == "train", download=request.download),
        display, root / cls.base_folder, cifar_files(cls), cls.url, request.download,
        request.verify_checksums)
    in_space = tuple(base.classes) == tuple(request.domain.class_names)
    labels = base.targets if in_space else no_labels(len(base))
    return NamedSet(display, TransformedSet(base, request_transform(request), labels), in_space,
                    str(root / cls.base_folder))


@register_dataset("cifar10", "CIFAR-10", paper_split="test")
def build_cifar10(request: DataRequest) -> NamedSet:
    """CIFAR-10 ``train`` (50,000) or ``test`` (10,000)."""
    return load_cifar(ArraysOnlyCIFAR10, "cifar10", "CIFAR-10", request)


@register_dataset("cifar100", "CIFAR100", paper_split="train")
def build_cifar100(request: DataRequest) -> NamedSet:
    """CIFAR-100 ``train`` (50,000; the paper's OOD rows) or ``test`` (10,000), fine labels."""
    return load_cifar(ArraysOnlyCIFAR100, "cifar100", "CIFAR100", request)
