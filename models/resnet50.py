"""ResNet-50 (torchvision) with its classifier sized for the data set; optional ImageNet init.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv 1512.03385). The paper trains it on Stanford Dogs (120 classes, 224x224), optionally
starting from torchvision's ImageNet weights (``--pretrained``). Those weights are never
downloaded here: they are read from ``weights_path`` or from the torch hub cache.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet50 as torchvision_resnet50

from models.checkpoints import CheckpointError, load_checkpoint

# torchvision's file for ResNet50_Weights.IMAGENET1K_V1, what ``resnet50(pretrained=True)`` used
IMAGENET_V1_FILE = "resnet50-0676ba61.pth"
IMAGENET_V1_URL = f"https://download.pytorch.org/models/{IMAGENET_V1_FILE}"


def find_imagenet_weights(weights_path: str | Path | None = None) -> Path:
    """The local ImageNet ResNet-50 weights: ``weights_path`` or ``<torch hub>/checkpoints/resnet50-*.pth``.

    The V1 file (``resnet50-0676ba61.pth``) is preferred in the cache, then any other match.

    Raises
    ------
    FileNotFoundError
        One line naming where it looked and how to provide the file.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"resnet50 weights_path {str(path)!r} does not exist; pass the path "
                                    f"of a downloaded {IMAGENET_V1_FILE} ({IMAGENET_V1_URL})")
        return path
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = sorted(cache.glob("resnet50-*.pth"), key=lambda p: (p.name != IMAGENET_V1_FILE, p.name))
    if not candidates:
        raise FileNotFoundError(f"resnet50 pretrained=True needs ImageNet weights, found none in "
                                f"{cache} (resnet50-*.pth) and no weights_path was given; download "
                                f"{IMAGENET_V1_URL} and copy it into {cache} or pass weights_path=...")
    return candidates[0]


def resnet50(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
             pretrained: bool = False, weights_path: str | Path | None = None) -> nn.Module:
    """torchvision ResNet-50 with ``fc`` replaced by ``Linear(2048, num_classes)``.

    Parameters
    ----------
    num_classes : int
    in_channels : int
        Image channels; ImageNet weights need 3.
    image_size : int
        Accepted for the registry; the network pools globally and takes any size >= 32.
    pretrained : bool
        Start from ImageNet weights (all layers but ``fc``), read without network access.
    weights_path : str or Path, optional
        Local file with torchvision's ImageNet state dict; implies ``pretrained=True``. Without
        it the torch hub cache is searched.

    Returns
    -------
    nn.Module
        Maps images ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``.
    """
    pretrained = pretrained or weights_path is not None
    if pretrained and in_channels != 3:
        raise ValueError(f"resnet50 ImageNet weights expect 3 input channels, got in_channels={in_channels}; "
                         "use pretrained=False for this data set")
    weights = find_imagenet_weights(weights_path) if pretrained else None
    model = torchvision_resnet50(weights=None)
    if weights is not None:
        try:
            load_checkpoint(model, weights)
        except CheckpointError as error:
            raise ValueError(f"resnet50 ImageNet weights unusable: {error}") from error
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model
