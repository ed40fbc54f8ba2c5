"""AFHQ (Animal Faces-HQ, v1 as published with StarGAN v2): cats, dogs and wild animals.

Files: ``afhq.zip`` extracted into ``<data_root>``, giving ``<data_root>/afhq/{train,val}/
{cat,dog,wild}/*.jpg|png`` (``<data_root>/afhq/afhq/...``, the paper's CIFAR-10 layout, also works).
Splits: ``train`` (the paper's rows), ``test`` (the ``val`` folder) and ``all``. Labels are ``-1``:
no target of the paper has these classes. The ``afhq`` folder is checked against the paper's
folder MD5 (:mod:`datasets.sources`); ``--no_verify`` (``verify_checksums=False``)
accepts another copy with a warning.
"""
from __future__ import annotations

from pathlib import Path

from torchvision.datasets.utils import download_and_extract_archive

from datasets.errors import DataNotFoundError
from datasets.image_folder import PathSet, check_split, first_existing, list_images, no_labels
from datasets.torchvision_sets import fetch_archive
from datasets.transforms import TransformedSet, request_transform
from datasets.verification import verify_folder
from datasets.registry import DataRequest, NamedSet, as_path, register_dataset
from datasets.sources import FOLDER_MD5, SOURCES

SPLIT_FOLDERS = {"train": ("train",), "test": ("val",), "all": ("train", "val")}
SUBSETS = {  # registry key -> (display name, class folders)
    "afhq_cats": ("AFHQ Cats", ("cat",)),
    "afhq_dogs": ("AFHQ Dogs", ("dog",)),
    "afhq_wild": ("AFHQ Wilds", ("wild",)),
    "afhq_nondogs": ("AFHQ NonDogs", ("cat", "wild")),
}


def afhq_folder(data_root: Path) -> Path:
    """The extracted ``afhq`` folder (holding ``train/`` and ``val/``)."""
    return first_existing([data_root / "afhq", data_root / "afhq" / "afhq"], "train")


def _ensure_files(request: DataRequest, display: str) -> Path:
    source, data_root = SOURCES["afhq"], as_path(request.data_root)
    folder = afhq_folder(data_root)
    if not (folder / "train").is_dir() and request.download:
        fetch_archive(download_and_extract_archive, display, source, data_root)
        folder = afhq_folder(data_root)
    if not (folder / "train").is_dir():
        raise DataNotFoundError(f"{display}: missing afhq/train/ in {data_root}; get "
                                f"{source.url} (md5 {source.md5}) and unzip it there, or pass --download")
    verify_folder(folder, FOLDER_MD5["afhq"], folder.parent / ".afhq.md5.json", display,
                  f"unzip {source.filename} again", request.verify_checksums)
    return folder


def load_afhq(key: str, request: DataRequest) -> NamedSet:
    """The images of one AFHQ subset (classes of ``SUBSETS[key]``) in the requested split."""
    display, classes = SUBSETS[key]
    split = check_split(request.split, tuple(SPLIT_FOLDERS), key)
    folder = _ensure_files(request, display)
    paths = []
    for split_folder in SPLIT_FOLDERS[split]:
        for name in classes:
            class_folder = folder / split_folder / name
            if not class_folder.is_dir():
                raise DataNotFoundError(f"{display}: missing {class_folder}; unzip "
                                        f"{SOURCES['afhq'].filename} again or pass --download")
            paths += list_images(class_folder)
    return NamedSet(display, TransformedSet(PathSet(paths), request_transform(request),
                                            no_labels(len(paths))), False, str(folder))


def _register(key: str) -> None:
    @register_dataset(key, SUBSETS[key][0], paper_split="train")
    def build(request: DataRequest) -> NamedSet:
        return load_afhq(key, request)

    build.__doc__ = f"{SUBSETS[key][0]} (AFHQ classes {', '.join(SUBSETS[key][1])}), labels -1."


for _key in SUBSETS:
    _register(_key)
