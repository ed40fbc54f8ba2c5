"""scikit-learn's bundled ``digits`` (real 8x8 scans, no download) and an OOD set cut from the
sample photographs scikit-learn ships."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from datasets.domain import NO_LABEL, Domain
from datasets.registry import DataRequest, NamedSet, register_dataset

DIGITS_MAX_VALUE = 16.0  # pixel values of sklearn's digits are integers 0..16


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as images in [0, 1], shape ``(N, 1, 8, 8)``, and labels ``(N,)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / DIGITS_MAX_VALUE).unsqueeze(1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


@register_dataset("digits", "Digits")
def build_digits(request: DataRequest) -> NamedSet:
    """The whole digits set (both "splits" are the same pool; the pipeline splits it)."""
    images, labels = load_digits_tensors()
    images = _to_domain(images, request.domain)
    in_space = request.domain.num_classes == 10
    labels = labels if in_space else torch.full_like(labels, NO_LABEL)
    return NamedSet("Digits", TensorDataset(images, labels), in_space, "sklearn.datasets.load_digits")


def photo_patches(tile: int = 32) -> torch.Tensor:
    """Non-overlapping ``tile`` x ``tile`` RGB patches of scikit-learn's sample photographs
    (``china.jpg``, ``flower.jpg``), in [0, 1], shape ``(N, 3, tile, tile)``."""
    from sklearn.datasets import load_sample_images

    patches = []
    for photo in load_sample_images().images:  # (H, W, 3) uint8
        image = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float() / 255.0
        rows, cols = image.shape[1] // tile, image.shape[2] // tile
        grid = image[:, : rows * tile, : cols * tile].unfold(1, tile, tile).unfold(2, tile, tile)
        patches.append(grid.permute(1, 2, 0, 3, 4).reshape(-1, 3, tile, tile))
    return torch.cat(patches)


@register_dataset("sample_photos", "Photo Patches")
def build_sample_photos(request: DataRequest) -> NamedSet:
    """Natural-image OOD set: patches of scikit-learn's sample photographs, in the target domain."""
    tile = request.sizes.photo_tile or max(32, request.domain.image_size)
    images = _to_domain(photo_patches(tile), request.domain)
    labels = torch.full((len(images),), NO_LABEL, dtype=torch.int64)
    return NamedSet("Photo Patches", TensorDataset(images, labels), False,
                    "sklearn.datasets.load_sample_images")


def _to_domain(images: torch.Tensor, domain: Domain) -> torch.Tensor:
    """Resize/convert images in [0, 1] to ``domain``'s shape, then normalise."""
    if images.shape[1] != domain.channels:
        if domain.channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * weights).sum(1, keepdim=True)
        else:
            images = images.expand(-1, domain.channels, -1, -1)
    if images.shape[-1] != domain.image_size or images.shape[-2] != domain.image_size:
        images = F.interpolate(images, size=(domain.image_size, domain.image_size),
                               mode="bilinear", antialias=True, align_corners=False)
        images = images.clamp(0.0, 1.0)
    return domain.normalize(images.contiguous())
