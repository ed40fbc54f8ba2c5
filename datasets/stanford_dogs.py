"""Stanford Dogs (120 breeds, 20,580 photographs) in its published layout.

Files under ``<data_root>/stanford_dogs/`` (``images.tar`` and ``lists.tar`` extracted there)::

    Images/n02085620-Chihuahua/n02085620_10074.jpg ...
    train_list.mat  test_list.mat   (fields file_list, annotation_list, labels 1..120)

Splits: ``train`` (12,000) and ``test`` (8,580) from the published lists, and ``all`` (every image,
the pool the paper split itself). Samples are in ImageFolder order (breed folder, then file name).
Checksums: the split files' MD5s and the Images folder's paper-definition MD5
(:mod:`datasets.sources`); pass ``--no_verify`` (``verify_checksums=False``) to use another copy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from torchvision import transforms as T
from torchvision.datasets.utils import download_and_extract_archive

from datasets.domain import Domain, stanford_dogs_domain
from datasets.errors import DataNotFoundError
from datasets.image_folder import (PathSet, check_split, class_folders, first_existing, list_images,
                                   no_labels)
from datasets.torchvision_sets import fetch_archive
from datasets.transforms import ConvertMode, TransformedSet, request_transform
from datasets.verification import verify_files, verify_folder
from datasets.registry import DataRequest, NamedSet, register_dataset
from datasets.sources import FILE_MD5, FOLDER_MD5, SOURCES

SPLITS = ("train", "test", "all")
NAME = "Stanford Dogs"
TRAIN_RESIZE, TRAIN_CROP, TRAIN_ROTATION = 230, 224, 20  # the paper's training augmentation


def dogs_root(data_root: str | Path) -> Path:
    """``<data_root>/stanford_dogs`` (or the paper's doubled ``stanford_dogs/stanford_dogs``)."""
    data_root = Path(data_root).expanduser()
    return first_existing([data_root / "stanford_dogs", data_root / "stanford_dogs" / "stanford_dogs"],
                          "Images")


def _how_to_get(source_key: str) -> str:
    source = SOURCES[source_key]
    return f"get {source.url} (md5 {source.md5}) and extract it there, or pass --download"


def breed_folders(root: Path) -> list[Path]:
    images = root / "Images"
    folders = class_folders(images) if images.is_dir() else []
    if not folders:
        raise DataNotFoundError(f"{NAME}: missing Images/<synset>-<breed>/ folders in {root}; "
                                f"{_how_to_get('stanford_dogs_images')}")
    return folders


def stanford_dogs_class_names(data_root: str | Path) -> tuple[str, ...]:
    """Breed names in label order, from the folder names (``n02085620-Chihuahua`` -> ``Chihuahua``)."""
    return tuple(folder.name.split("-", 1)[-1] for folder in breed_folders(dogs_root(data_root)))


def stanford_dogs_domain_from_root(data_root: str | Path, image_size: int = 224) -> Domain:
    """The Stanford Dogs target's domain, its breed list read from ``data_root``."""
    return stanford_dogs_domain(stanford_dogs_class_names(data_root), image_size)


def read_split_list(path: Path) -> tuple[list[str], np.ndarray]:
    """Relative image paths and 0-based labels of a published ``*_list.mat``."""
    mat = scipy.io.loadmat(str(path))
    files = [str(np.asarray(item).ravel()[0]) for item in mat["file_list"].ravel()]
    return files, mat["labels"].ravel().astype(np.int64) - 1


def _ensure_files(root: Path, split: str, request: DataRequest) -> None:
    """Download what is missing (if asked), then check presence and checksums."""
    split_file = f"{split}_list.mat"
    if request.download:
        needed = (("stanford_dogs_images", "Images"), ("stanford_dogs_lists", split_file))
        for key, marker in needed[:1] if split == "all" else needed:
            if not (root / marker).exists():
                fetch_archive(download_and_extract_archive, NAME, SOURCES[key], root)
    breed_folders(root)  # raises when Images/ is missing
    verify = request.verify_checksums
    if split != "all":
        verify_files(NAME, root, [(split_file, FILE_MD5[f"stanford_dogs/{split_file}"])],
                     _how_to_get("stanford_dogs_lists"), verify)
    verify_folder(root / "Images", FOLDER_MD5["stanford_dogs/Images"], root / ".Images.md5.json",
                  NAME, f"re-extract {SOURCES['stanford_dogs_images'].filename}", verify)


def _split_samples(root: Path, split: str) -> tuple[list[Path], np.ndarray]:
    images = root / "Images"
    if split == "all":
        paths, labels = [], []
        for index, folder in enumerate(breed_folders(root)):
            files = list_images(folder)
            paths += files
            labels += [index] * len(files)
        return paths, np.asarray(labels, dtype=np.int64)
    relative, labels = read_split_list(root / f"{split}_list.mat")
    order = sorted(range(len(relative)), key=lambda i: tuple(relative[i].split("/", 1)))
    paths = [images / relative[i] for i in order]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise DataNotFoundError(f"{NAME}: {len(missing)} images of {split}_list.mat are missing from "
                                f"{images} (e.g. {missing[0].relative_to(images)}); "
                                f"{_how_to_get('stanford_dogs_images')}")
    return paths, labels[order]


def train_augmentation(domain: Domain) -> T.Compose:
    """The paper's training transform, scaled to ``domain.image_size`` (230/224 at 224)."""
    size = domain.image_size
    return T.Compose([ConvertMode("L" if domain.channels == 1 else "RGB"),
                      T.RandomRotation(degrees=TRAIN_ROTATION),
                      T.Resize(round(size * TRAIN_RESIZE / TRAIN_CROP)), T.RandomCrop((size, size)),
                      T.RandomHorizontalFlip(p=0.5), T.ToTensor(), T.Normalize(domain.mean, domain.std)])


@register_dataset("stanford_dogs", NAME, paper_split="all")
def build_stanford_dogs(request: DataRequest) -> NamedSet:
    """Stanford Dogs; ``request.augment`` applies the paper's random training transform."""
    split = check_split(request.split, SPLITS, "stanford_dogs")
    root = dogs_root(request.data_root)
    _ensure_files(root, split, request)
    breeds = stanford_dogs_class_names(request.data_root)
    paths, labels = _split_samples(root, split)
    domain = request.domain
    in_space = domain.name == "stanford_dogs"
    if in_space and tuple(domain.class_names) != breeds:
        raise ValueError(f"the target's {domain.num_classes} class names differ from the "
                         f"{len(breeds)} breed folders in {root / 'Images'}; build the domain with "
                         f"stanford_dogs_domain_from_root")
    augment = request.augment
    transform = train_augmentation(domain) if augment else request_transform(request)
    labels = labels if in_space else no_labels(len(paths))
    return NamedSet(NAME, TransformedSet(PathSet(paths), transform, labels), in_space, str(root))
