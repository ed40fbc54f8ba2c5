"""The small CNN of Salem et al.'s membership inference experiments (ReLU variant).

Salem, Zhang, Humbert, Berrang, Fritz, Backes, "ML-Leaks: Model and Data Independent Membership
Inference Attacks and Defenses on Machine Learning Models", NDSS 2019 (arXiv 1806.01246).
Module and state-dict names (``model.0``, ``model.3``, ``model.7``, ``out``) match the checkpoints
released with "To Trust or Not To Trust Prediction Scores for Membership Inference Attacks".
"""
from __future__ import annotations

import torch
from torch import nn


class SalemCNN(nn.Module):
    """conv5x5(32) - act - pool2 - conv5x5(32) - act - pool2 - flatten - linear(128) - act - out.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    image_size : int
        Height and width of the (square) input; the flattened features number
        ``32 * (image_size // 4) ** 2`` (2048 for 32x32 CIFAR-10 images).
    activation : type of nn.Module
        ``nn.ReLU`` (the paper's ``salem_cnn_relu``) or e.g. ``nn.Tanh``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        if image_size < 4:
            raise ValueError(f"SalemCNN needs images of at least 4x4 pixels, got image_size={image_size}")
        features = 32 * (image_size // 4) ** 2
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), activation(), nn.MaxPool2d(2, stride=2),
            nn.Conv2d(32, 32, 5, padding=2), activation(), nn.MaxPool2d(2, stride=2),
            nn.Flatten(),
            nn.Linear(features, 128), activation(),
        )
        self.out = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, in_channels, image_size, image_size)``."""
        return self.out(self.model(x))


def salem_cnn_relu(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> SalemCNN:
    return SalemCNN(num_classes, in_channels, image_size, activation=nn.ReLU)
