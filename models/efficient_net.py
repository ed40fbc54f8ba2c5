"""EfficientNet-B0 for small images (3x3 stride-1 stem, as in kuangliu/pytorch-cifar).

Tan and Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
(arXiv 1905.11946). Module and state-dict names (``layers.3.se.se1``, ``linear``) follow
kuangliu/pytorch-cifar, which the paper's authors used, so their checkpoints load with
``strict=True``. As there, every block owns an expansion conv (``conv1``/``bn1``), also the first
block whose expansion ratio is 1 and which skips it in ``forward``; the squeeze-excitation width is
a quarter of the block's *input* channels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EfficientNetConfig:
    """Per-stage settings; stage ``i`` has ``num_blocks[i]`` blocks, the first with ``stride[i]``."""

    num_blocks: tuple[int, ...]
    expansion: tuple[int, ...]
    out_channels: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dropout_rate: float = 0.2       # dropout before the classifier (training only)
    drop_connect_rate: float = 0.0  # kuangliu's B0 names 0.2 but never applies it (always 0)


B0 = EfficientNetConfig(
    num_blocks=(1, 2, 2, 3, 3, 4, 1),
    expansion=(1, 6, 6, 6, 6, 6, 6),
    out_channels=(16, 24, 40, 80, 112, 192, 320),
    kernel_size=(3, 3, 5, 3, 5, 5, 3),
    stride=(1, 2, 2, 2, 1, 2, 1),
)


class SE(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features (Swish inside)."""

    def __init__(self, channels: int, se_channels: int):
        super().__init__()
        self.se1 = nn.Conv2d(channels, se_channels, 1, bias=True)
        self.se2 = nn.Conv2d(se_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.silu(self.se1(F.adaptive_avg_pool2d(x, 1)))
        return x * self.se2(gate).sigmoid()


class Block(nn.Module):
    """MBConv: 1x1 expansion, depthwise conv, squeeze-excitation, 1x1 projection, skip."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expand_ratio: int = 1, se_ratio: float = 0.25, drop_rate: float = 0.0):
        super().__init__()
        self.expand_ratio = expand_ratio
        self.drop_rate = drop_rate
        channels = expand_ratio * in_channels
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, stride=stride,
                               padding=kernel_size // 2, groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SE(channels, int(in_channels * se_ratio))
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand_ratio == 1 else F.silu(self.bn1(self.conv1(x)))
        out = self.se(F.silu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        if not self.has_skip:
            return out
        if self.training and self.drop_rate > 0:
            keep = 1.0 - self.drop_rate
            mask = torch.empty(out.shape[0], 1, 1, 1, dtype=out.dtype, device=out.device)
            out = out * mask.bernoulli_(keep) / keep
        return out + x


class EfficientNet(nn.Module):
    """EfficientNet with a 32-channel 3x3 stem, MBConv stages, global pooling and ``linear``.

    Parameters
    ----------
    config : EfficientNetConfig
    num_classes : int
    in_channels : int
    """

    def __init__(self, config: EfficientNetConfig, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.layers = self._make_layers(in_channels=32)
        self.linear = nn.Linear(config.out_channels[-1], num_classes)

    def _make_layers(self, in_channels: int) -> nn.Sequential:
        c = self.config
        total, layers = sum(c.num_blocks), []
        for expansion, out_channels, num_blocks, kernel_size, stride in zip(
                c.expansion, c.out_channels, c.num_blocks, c.kernel_size, c.stride):
            for block_stride in [stride] + [1] * (num_blocks - 1):
                drop_rate = c.drop_connect_rate * len(layers) / total
                layers.append(Block(in_channels, out_channels, kernel_size, block_stride,
                                    expansion, se_ratio=0.25, drop_rate=drop_rate))
                in_channels = out_channels
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        out = self.layers(F.silu(self.bn1(self.conv1(x))))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        out = F.dropout(out, p=self.config.dropout_rate, training=self.training)
        return self.linear(out)


def efficient_net(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                  config: EfficientNetConfig = B0) -> EfficientNet:
    """EfficientNet-B0 (small-image stem); ``image_size`` is accepted for the registry only."""
    return EfficientNet(config, num_classes, in_channels)
