"""Architectures by name: ``build_model("resnet18", num_classes=10, in_channels=3, image_size=32)``."""
from __future__ import annotations

from typing import Callable

from torch import nn

ModelFactory = Callable[..., nn.Module]
_ARCHITECTURES: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``factory(num_classes, in_channels, image_size, **kw) -> nn.Module``."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        _ARCHITECTURES[name] = factory
        return factory

    return decorate


def model_names() -> tuple[str, ...]:
    _load_builtin_models()
    return tuple(sorted(_ARCHITECTURES))


def build_model(arch: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
                **kwargs) -> nn.Module:
    """A freshly initialised model of architecture ``arch`` returning logits."""
    _load_builtin_models()
    if arch not in _ARCHITECTURES:
        raise ValueError(f"unknown model architecture {arch!r}; choose from {', '.join(model_names())}")
    return _ARCHITECTURES[arch](num_classes=num_classes, in_channels=in_channels,
                                image_size=image_size, **kwargs)


def _load_builtin_models() -> None:
    import models.builtin  # noqa: F401  (side effect: registration)
