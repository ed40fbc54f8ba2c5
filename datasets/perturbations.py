"""Perturbed copies of a set, as in the paper: Permuted, Scaled, No Normalization, Noise.

Each perturbation takes a :class:`NamedSet` whose images are normalised for the target and
returns a new one; randomness is drawn per sample from ``(seed, index)`` so any subset of the
result is reproducible on its own.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import Dataset

from datasets.domain import NO_LABEL, Domain
from datasets.registry import NamedSet, SetDeclaration, declare_set


def _sample_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


class _MappedSet(Dataset):
    """Applies ``fn(image, index) -> image`` to every image of ``base``."""

    def __init__(self, base: Dataset, fn: Callable[[torch.Tensor, int], torch.Tensor],
                 keep_labels: bool = True):
        self.base, self.fn, self.keep_labels = base, fn, keep_labels

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return self.fn(image, index), (int(label) if self.keep_labels else NO_LABEL)


def permuted(named: NamedSet, domain: Domain, seed: int) -> NamedSet:
    """Pixel positions shuffled per image (all channels moved together)."""

    def shuffle(image: torch.Tensor, index: int) -> torch.Tensor:
        channels, height, width = image.shape
        order = torch.randperm(height * width, generator=_sample_generator(seed, index))
        return image.reshape(channels, -1)[:, order].reshape(channels, height, width)

    return NamedSet("Permuted", _MappedSet(named.dataset, shuffle), named.in_label_space,
                    f"permuted({named.name})")


def scaled(named: NamedSet, domain: Domain, seed: int) -> NamedSet:
    """The normalised image multiplied by 255."""
    return NamedSet("Scaled", _MappedSet(named.dataset, lambda image, _: image * 255.0),
                    named.in_label_space, f"scaled({named.name})")


def no_normalization(named: NamedSet, domain: Domain, seed: int) -> NamedSet:
    """The image in [0, 1], with the target's normalisation undone."""
    return NamedSet("No Normalization",
                    _MappedSet(named.dataset, lambda image, _: domain.denormalize(image)),
                    named.in_label_space, f"no_normalization({named.name})")


class _NoiseSet(Dataset):
    """Uniform random images in [0, 1], normalised for the target; labels ``-1``."""

    def __init__(self, size: int, domain: Domain, seed: int):
        self.size, self.domain, self.seed = size, domain, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        if not 0 <= index < self.size:
            raise IndexError(index)
        image = torch.rand(self.domain.shape, generator=_sample_generator(self.seed, index))
        return self.domain.normalize(image), NO_LABEL


def noise(named: NamedSet, domain: Domain, seed: int) -> NamedSet:
    """As many uniform-noise images as ``named`` holds."""
    return NamedSet("Noise", _NoiseSet(len(named), domain, seed), False,
                    f"noise({named.name})")


# Each perturbation: its --sets key, its display name (row name) and the function.
_DECLARED = (("permuted", "Permuted", permuted), ("scaled", "Scaled", scaled),
             ("no_normalization", "No Normalization", no_normalization), ("noise", "Noise", noise))
PERTURBATIONS: dict[str, Callable[[NamedSet, Domain, int], NamedSet]] = {key: fn for key, _, fn in _DECLARED}
# The derived non-member rows: the Original non-members themselves, and each perturbation of them.
declare_set(SetDeclaration("original", "Original", derived=True))
for _key, _display, _ in _DECLARED:
    declare_set(SetDeclaration(_key, _display, derived=True))


def perturb(kind: str, named: NamedSet, domain: Domain, seed: int) -> NamedSet:
    """Apply the perturbation called ``kind`` to ``named``."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {', '.join(PERTURBATIONS)}")
    return PERTURBATIONS[kind](named, domain, seed)

