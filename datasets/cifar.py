"""CIFAR-10 and CIFAR-100 from torchvision's python pickles, in a target's domain.

Files are looked for in ``<data_root>/cifar-10-batches-py`` (``cifar-100-python``), or in
``<data_root>/cifar10/...`` (``cifar100/...``), the layout of the paper's CIFAR-10 script.
torchvision checks every file against the MD5s in ``CIFAR10.train_list``/``test_list``/``meta``.
"""
from __future__ import annotations

from torchvision.datasets import CIFAR10, CIFAR100

from datasets.image_folder import check_split, first_existing, no_labels
from datasets.torchvision_sets import open_torchvision
from datasets.transforms import TransformedSet, request_transform
from datasets.registry import DataRequest, NamedSet, as_path, register_dataset

SPLITS = ("train", "test")


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
    return load_cifar(CIFAR10, "cifar10", "CIFAR-10", request)


@register_dataset("cifar100", "CIFAR100", paper_split="train")
def build_cifar100(request: DataRequest) -> NamedSet:
    """CIFAR-100 ``train`` (50,000; the paper's OOD rows) or ``test`` (10,000), fine labels."""
    return load_cifar(CIFAR100, "cifar100", "CIFAR100", request)
