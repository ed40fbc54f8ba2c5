"""A small CNN for the embedded default (8x8 grey digits), sized to train in seconds on a CPU."""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 conv + max-pool blocks, a hidden linear layer, then a linear classifier.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    width : int
        Channels of the first conv block; the second has ``2 * width``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32,
                 image_size: int = 8):
        super().__init__()
        if image_size < 4:
            raise ValueError(f"SmallCNN needs images of at least 4x4 pixels, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
        )
        side = image_size // 4
        self.hidden = nn.Sequential(nn.Linear(2 * width * side * side, 128), nn.ReLU())
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        return self.fc(self.hidden(self.features(x)))


def small_cnn(num_classes: int = 10, in_channels: int = 1, image_size: int = 8) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, image_size=image_size)
