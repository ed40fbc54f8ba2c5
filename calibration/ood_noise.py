"""The noise images of the paper's LLLA prior search: torchvision ``FakeData`` in the data set's
input domain.

The paper builds ``FakeData(size=attack_set_size, image_size=(C, S, S),
transform=<the data set's test transform>)``: image ``i`` is ``torch.randn(C, S, S)`` drawn
after ``torch.manual_seed(i)``, turned into 8-bit pixels by ``ToPILImage`` (``x * 255`` cast to
``uint8``, which wraps modulo 256 on the usual platforms: nearly uniform bytes), then scaled to
[0, 1] and normalised like the data. The same images serve the target and the shadow model (both
use ``random_offset=0``). This module makes the same images without PIL and with the
wrap-around written out, so they do not depend on the platform's float-to-byte cast.
"""
from __future__ import annotations

from typing import Callable

import torch


def fake_data_pixels(count: int, shape: tuple[int, ...], offset: int = 0) -> torch.Tensor:
    """``FakeData``'s images as pixels in [0, 1]: ``(count, *shape)`` float32, ``k / 255``."""
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    images = torch.empty((count,) + tuple(shape))
    for index in range(count):
        generator = torch.Generator().manual_seed(index + offset)
        images[index] = torch.randn(tuple(shape), generator=generator)
    scaled = (images * 255).to(torch.int64)   # numpy's float -> integer cast truncates toward 0
    return torch.remainder(scaled, 256).to(torch.float32) / 255


def fake_data_noise(count: int, shape: tuple[int, ...],
                    normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The paper's LLLA noise set: :func:`fake_data_pixels` passed through ``normalize``
    (e.g. ``domain.normalize``); ``(count, *shape)``."""
    return normalize(fake_data_pixels(count, shape))
