"""A user's data as tensors in the model's input domain: an ImageFolder, a ``.npz``, or a set name.

- a folder in ImageFolder layout (``root/<class>/<image>``; classes sorted by name are labels
  0, 1, ...), or a folder of images without class folders (no labels);
- a ``.npz`` with ``images`` (``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``; uint8 in 0..255 or
  floats in [0, 1]) and optional ``labels`` ``(N,)``;
- a data set name of the package's registry (``cifar10``, ``svhn``, ``digits``, ...; ``name:split``
  for a split other than ``test``), read from ``--data_root``.

Every image is resized to ``image_size`` (squashed), converted to the domain's channels and
normalised with its mean / std, exactly as the presets' data is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from datasets.domain import NO_LABEL, Domain
from datasets.image_folder import class_folders, list_images, read_rgb
from datasets.transforms import domain_transform


@dataclass
class UserData:
    """Images ``(N, C, H, W)`` normalised for the model, labels ``(N,)`` (-1: none), and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).all())


def user_domain(num_classes: int, channels: int, image_size: int, mean, std) -> Domain:
    """The input domain of a user's model (``--image_size``, ``--normalize MEAN,STD``)."""
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"--normalize: {len(mean)} means and {len(std)} stds for a {channels}-channel model; give "
                         f"one value or one per channel")
    if any(s <= 0 for s in std):
        raise ValueError(f"--normalize: standard deviations must be positive, got {std}")
    return Domain("user", channels, int(image_size), mean, std, tuple(str(i) for i in range(num_classes)))


def load_user_data(spec: Any, domain: Domain, what: str, data_root: str | Path = "data",
                   download: bool = False) -> UserData:
    """``spec`` (a folder, a ``.npz`` path, a registry name, or ``(images, labels)`` tensors) as
    :class:`UserData` in ``domain``; ``what`` names the flag in errors (``--member_data``)."""
    if isinstance(spec, UserData):
        return spec
    if isinstance(spec, (tuple, list)):
        return _from_arrays(spec[0], spec[1] if len(spec) > 1 else None, domain, what, f"{what} arrays")
    path = Path(str(spec))
    if path.is_dir():
        return _from_folder(path, domain, what)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path}: no such file")
        return _from_npz(path, domain, what)
    return _from_registry(str(spec), domain, what, data_root, download)


def _from_folder(folder: Path, domain: Domain, what: str) -> UserData:
    classes = class_folders(folder)
    if classes:
        files = [(image, label) for label, sub in enumerate(classes) for image in list_images(sub)]
    else:
        files = [(image, NO_LABEL) for image in list_images(folder)]
    if not files:
        raise ValueError(f"{what} {folder}: no images found (expected <class>/<image>.png folders, ImageFolder "
                         f"layout, or images directly in the folder)")
    transform = domain_transform(domain, "squash")
    images = torch.stack([transform(read_rgb(path)) for path, _ in files])
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return UserData(images, labels, str(folder))


def _from_npz(path: Path, domain: Domain, what: str) -> UserData:
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except Exception as error:
        raise ValueError(f"{what} {path}: cannot be read as a NumPy .npz of plain arrays ({type(error).__name__})") from None
    if "images" not in arrays:
        raise ValueError(f"{what} {path}: missing array 'images' (N, H, W[, C]) or (N, C, H, W); has "
                         f"{', '.join(arrays) or 'none'}")
    return _from_arrays(arrays["images"], arrays.get("labels"), domain, what, str(path))


def _from_arrays(images: Any, labels: Any, domain: Domain, what: str, source: str) -> UserData:
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or not len(array):
        raise ValueError(f"{what} {source}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got {array.shape}")
    if array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.dtype == np.uint8:
        unit = array.astype(np.float32) / 255.0
    elif array.dtype.kind == "f" and np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1:
        unit = array.astype(np.float32)
    else:
        raise ValueError(f"{what} {source}: images must be uint8 (0..255) or floats in [0, 1], got {array.dtype} "
                         f"in [{array.min()}, {array.max()}]")
    transform = domain_transform(domain, "squash")
    tensors = torch.stack([transform(_to_pil(frame)) for frame in unit])
    if labels is None:
        label_tensor = torch.full((len(tensors),), NO_LABEL, dtype=torch.int64)
    else:
        values = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
        if values.shape != (len(tensors),) or values.dtype.kind not in "iu":
            raise ValueError(f"{what} {source}: labels must be integer class indices of shape ({len(tensors)},), "
                             f"got {values.dtype} {values.shape}")
        label_tensor = torch.as_tensor(values.astype(np.int64))
    return UserData(tensors, label_tensor, source)


def _to_pil(frame: np.ndarray) -> Image.Image:
    """A ``(C, H, W)`` image in [0, 1] as an 8-bit PIL image (what a file on disk would give)."""
    pixels = np.round(frame.transpose(1, 2, 0) * 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _from_registry(name: str, domain: Domain, what: str, data_root, download: bool) -> UserData:
    from datasets.registry import DataRequest, build_dataset, dataset_names

    base, _, split = name.partition(":")
    if base not in dataset_names():
        raise ValueError(f"{what} {name!r}: not a folder, a .npz file or a data set name ({', '.join(dataset_names())})")
    named = build_dataset(base, DataRequest(domain=domain, data_root=Path(data_root), split=split or "test",
                                            download=download, resize="squash"))
    items = [named.dataset[i] for i in range(len(named.dataset))]
    images = torch.stack([image for image, _ in items])
    labels = torch.tensor([int(label) if named.in_label_space else NO_LABEL for _, label in items], dtype=torch.int64)
    return UserData(images, labels, f"{base}:{split or 'test'}")
