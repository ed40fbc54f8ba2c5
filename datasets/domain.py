"""The input domain of a target model: image geometry, normalisation and label space.

Every data set is delivered *in the target's domain*: resized to its image size, with its number
of channels, normalised with its mean/std, and with labels mapped into its label space (or -1
where a set has no label the target knows).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NO_LABEL = -1  # label of a sample outside the target's label space


@dataclass(frozen=True)
class Domain:
    """What a target model expects as input.

    Attributes
    ----------
    name : str
        Name of the data set the target is trained on (``"digits"``, ``"cifar10"``, ...).
    channels, image_size : int
        Input tensor shape is ``(channels, image_size, image_size)``.
    mean, std : tuple of float
        Per-channel normalisation applied after scaling pixels to [0, 1].
    class_names : tuple of str
        The label space; label ``i`` names ``class_names[i]``.
    """

    name: str
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        view = (-1, 1, 1) if like.dim() == 3 else (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(view)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(view)
        return mean, std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1], shape ``(C, H, W)`` or ``(N, C, H, W)``, to the model's input."""
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        mean, std = self._stats(images)
        return images * std + mean


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

DIGITS = Domain("digits", channels=1, image_size=8, mean=(0.3053,), std=(0.3761,),
                class_names=tuple(str(i) for i in range(10)))
CIFAR10 = Domain("cifar10", channels=3, image_size=32, mean=(0.4914, 0.4822, 0.4465),
                 std=(0.2470, 0.2435, 0.2616), class_names=CIFAR10_CLASSES)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def stanford_dogs_domain(class_names: tuple[str, ...], image_size: int = 224) -> Domain:
    """Domain of a Stanford Dogs target (120 breeds, ImageNet normalisation)."""
    return Domain("stanford_dogs", 3, image_size, IMAGENET_MEAN, IMAGENET_STD, class_names)
