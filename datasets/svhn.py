"""SVHN (cropped digits, torchvision's ``.mat`` files), in a target's domain.

Files: ``<data_root>/svhn/{train,test}_32x32.mat`` (the paper's layout, preferred) or
``<data_root>/{train,test}_32x32.mat``. torchvision checks them against ``SVHN.split_list``.
Labels are kept only for a target whose classes are the digits ``"0"`` ... ``"9"``.
"""
from __future__ import annotations

from torchvision.datasets import SVHN

from datasets.image_folder import check_split, first_existing, no_labels
from datasets.torchvision_sets import open_torchvision
from datasets.transforms import TransformedSet, request_transform
from datasets.registry import DataRequest, NamedSet, as_path, register_dataset

SPLITS = ("train", "test")
DIGIT_CLASSES = tuple(str(digit) for digit in range(10))


@register_dataset("svhn", "SVHN", paper_split="train")
def build_svhn(request: DataRequest) -> NamedSet:
    """SVHN ``train`` (73,257; the paper's OOD row) or ``test`` (26,032)."""
    split = check_split(request.split, SPLITS, "svhn")
    url, filename, md5 = SVHN.split_list[split]
    data_root = as_path(request.data_root)
    root = first_existing([data_root / "svhn", data_root], filename)
    base = open_torchvision(lambda: SVHN(str(root), split=split, download=request.download),
                            "SVHN", root, [(filename, md5)], url, request.download,
                            request.verify_checksums)
    in_space = tuple(request.domain.class_names) == DIGIT_CLASSES
    labels = base.labels if in_space else no_labels(len(base))
    return NamedSet("SVHN", TransformedSet(base, request_transform(request), labels), in_space,
                    str(root / filename))
