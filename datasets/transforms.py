"""The domain transform: PIL image -> normalised tensor as the paper's pipelines build it, and a
lazily transformed view of a base set."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from datasets.domain import Domain

# Domains whose images the paper resized keeping the aspect ratio, then centre-cropped
# (Stanford Dogs: Resize(224) + CenterCrop(224)); others were squashed (CIFAR-10: Resize((32, 32))).
CENTRE_CROP_DOMAINS = ("stanford_dogs",)
RESIZE_MODES = ("squash", "crop")


class ConvertMode:
    """``PIL.Image.convert(mode)`` as a picklable transform."""

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == self.mode else image.convert(self.mode)


def domain_transform(domain: Domain, resize: str | None = None) -> T.Compose:
    """PIL image -> float32 tensor of ``domain.shape``, normalised with the domain's mean/std.

    Parameters
    ----------
    resize : {"squash", "crop"} or None
        ``"squash"``: ``Resize((s, s))`` (the paper's CIFAR-10 pipeline); ``"crop"``: ``Resize(s)``
        then ``CenterCrop(s)`` (its Stanford Dogs pipeline). ``None`` picks by ``domain.name``.
    """
    mode = resize or ("crop" if domain.name in CENTRE_CROP_DOMAINS else "squash")
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    size = domain.image_size
    steps: list = [ConvertMode("L" if domain.channels == 1 else "RGB")]
    steps += [T.Resize((size, size))] if mode == "squash" else [T.Resize(size), T.CenterCrop(size)]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(domain.mean, domain.std)])


def request_transform(request) -> T.Compose:
    """:func:`domain_transform` for a :class:`DataRequest` (honours its ``resize``)."""
    return domain_transform(request.domain, request.resize)


class TransformedSet(Dataset):
    """``base`` (items ``(PIL image, anything)``) seen through ``transform``, with fixed labels.

    Attributes
    ----------
    indices : ndarray (N,)
        Positions in ``base`` of the samples of this view, in order.
    labels : LongTensor (N,)
        The label returned for each sample (target classes or ``-1``).
    """

    def __init__(self, base: Dataset, transform: Callable, labels: Sequence[int] | torch.Tensor,
                 indices: Sequence[int] | None = None):
        self.base, self.transform = base, transform
        self.indices = np.arange(len(base)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(self.labels) != len(self.indices):
            raise ValueError(f"{len(self.labels)} labels for {len(self.indices)} samples")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.base[int(self.indices[index])][0]
        return self.transform(image), int(self.labels[index])
