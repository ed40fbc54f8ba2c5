"""A user's data as tensors in the model's input domain: an ImageFolder, a ``.npz``, or a set name.

- a folder in ImageFolder layout (``root/<class>/<image>``; classes sorted by name are labels
  0, 1, ...), or a folder of images without class folders (no labels);
- a ``.npz`` with ``images`` (``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``; uint8 in 0..255 or
  floats in [0, 1]) and optional ``labels`` ``(N,)``;
- a ``.npz`` with ``features`` of any shape ``(N, ...)`` the model takes (tabular ``(N, d)``), or a
  2-D ``images`` array ``(N, d)``: passed to the model as float32, as they are (no resizing, no
  normalisation); the data kind is then ``"features"`` (:data:`FEATURES`), not ``"images"``;
- a data set name of the package's registry (``cifar10``, ``svhn``, ``digits``, ...; ``name:split``
  for a split other than ``test``), read from ``--data_root``.

Every image is resized to ``image_size`` (squashed), converted to the domain's channels and
normalised with its mean / std, exactly as the presets' data is. :func:`data_kind` tells, before
loading, which kind a spec holds and (features) the shape of one sample.
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


IMAGES, FEATURES = "images", "features"


@dataclass
class UserData:
    """Images ``(N, C, H, W)`` normalised for the model (or features ``(N, ...)`` as given), labels
    ``(N,)`` (-1: none), where they came from, and their kind (:data:`IMAGES` or :data:`FEATURES`)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    kind: str = IMAGES

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


def data_kind(spec: Any) -> tuple[str, tuple[int, ...] | None]:
    """``(kind, sample_shape)`` of the data ``spec`` holds, read without loading it as images:
    ``(FEATURES, (d,))`` for a ``.npz`` with ``features`` or a 2-D ``images`` array (or a 2-D array in
    ``(array, labels)``), else ``(IMAGES, None)`` (folders, data set names, image arrays)."""
    if isinstance(spec, UserData):
        return spec.kind, tuple(spec.images.shape[1:]) if spec.kind == FEATURES else None
    if isinstance(spec, (tuple, list)) and len(spec):
        shape = tuple(np.shape(spec[0]))
        return (FEATURES, shape[1:]) if len(shape) == 2 else (IMAGES, None)
    path = Path(str(spec))
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                if "features" in stored.files:
                    return FEATURES, tuple(stored["features"].shape[1:])
                if "images" in stored.files and stored["images"].ndim == 2:
                    return FEATURES, tuple(stored["images"].shape[1:])
        except Exception:
            return IMAGES, None   # the loader names what is wrong with the file
    return IMAGES, None


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
    if "features" in arrays:
        return _features(arrays["features"], arrays.get("labels"), what, str(path))
    if "images" not in arrays:
        raise ValueError(f"{what} {path}: missing array 'images' (N, H, W[, C]) or (N, C, H, W), or 'features' "
                         f"(N, ...) for a model on other data; has {', '.join(arrays) or 'none'}")
    return _from_arrays(arrays["images"], arrays.get("labels"), domain, what, str(path))


def _from_arrays(images: Any, labels: Any, domain: Domain, what: str, source: str) -> UserData:
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim == 2:   # (N, d): tabular features, not images
        return _features(array, labels, what, source)
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
    return UserData(tensors, _labels(labels, len(tensors), what, source), source)


def _features(values: Any, labels: Any, what: str, source: str) -> UserData:
    """Features ``(N, ...)`` of any per-sample shape, as float32 and otherwise as given."""
    array = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    if array.ndim < 2 or not len(array) or array.dtype.kind not in "biuf":
        raise ValueError(f"{what} {source}: features must be a numeric array (N, ...) with N >= 1, got "
                         f"{array.dtype} {array.shape}")
    tensor = torch.as_tensor(array.astype(np.float32))
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what} {source}: features hold NaN or infinite values")
    return UserData(tensor, _labels(labels, len(tensor), what, source), source, FEATURES)


def _labels(labels: Any, n: int, what: str, source: str) -> torch.Tensor:
    """Labels ``(n,)`` int64, or ``NO_LABEL`` everywhere when none are given."""
    if labels is None:
        return torch.full((n,), NO_LABEL, dtype=torch.int64)
    values = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    if values.shape != (n,) or values.dtype.kind not in "iu":
        raise ValueError(f"{what} {source}: labels must be integer class indices of shape ({n},), "
                         f"got {values.dtype} {values.shape}")
    return torch.as_tensor(values.astype(np.int64))


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
