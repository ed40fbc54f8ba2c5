"""K same-architecture models run as one grouped network: the fast formulation of a batched chunk.

Every ``Conv2d`` of the model becomes one convolution over K times its channels with K times its
groups (model k's channels are block k), every ``Linear`` one batched matrix product over the K
blocks of its input features; activations, pooling and ``Flatten`` act on each channel (or on the
model-major flattened features) and stay as they are. The K models' inputs lie side by side on the
channel axis, ``(B, K*C, H, W)``, in channels-last memory for images. Each block of a grouped
convolution or of the batched product sees only its own model's weights and inputs, so model k
gets its own outputs and its own gradients, as under ``vmap``, up to float rounding; what changes
is the arithmetic's layout: one grouped convolution per layer, and pooling, activations and their
gradients over contiguous channels (the digits CNN's whole training step at one thread, K = 64:
1.6-1.8 ms per model-step under ``vmap``, 0.93-0.95 ms grouped; ``benchmarks/reference_pool.py``).

Which models: those whose leaf modules are all in :data:`SUPPORTED` (parameters only in ``Conv2d``
with zero padding and in ``Linear``), and whose own ``forward`` keeps the models apart, which
:func:`grouped_matches` checks on the chunk's first rows (a forward that mixes channels, e.g. a
mean over them, or reshapes to a fixed width, fails it). The others train under ``vmap``.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
             nn.Softplus, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
             nn.Identity)


class GroupedConv2d(nn.Module):
    """A ``Conv2d`` whose ``weight`` ``(K, out, in/groups, kh, kw)`` and ``bias`` ``(K, out)`` hold K
    models; input and output ``(B, K*channels, H, W)``, model k in block k."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        models = self.weight.shape[0]
        bias = None if self.bias is None else self.bias.flatten()
        return F.conv2d(x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.dilation,
                        models * self.groups)


class GroupedLinear(nn.Module):
    """A ``Linear`` whose ``weight`` ``(K, out, in)`` and ``bias`` ``(K, out)`` hold K models; input
    ``(..., K*in)``, output ``(..., K*out)``, model k in block k."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        models, _, features = self.weight.shape
        blocks = x.unflatten(-1, (models, features))                    # (..., K, in)
        out = torch.einsum("...kf,kof->...ko", blocks, self.weight)
        if self.bias is not None:
            out = out + self.bias
        return out.flatten(-2)


def groupable(model: nn.Module) -> str | None:
    """None when ``model``'s modules all have a grouped form; else why not (one phrase)."""
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        if not isinstance(module, SUPPORTED):
            return f"{name or 'the model'} is a {type(module).__name__}"
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            return f"{name} pads with {module.padding_mode!r}"
    return None


def grouped_network(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``Conv2d`` and ``Linear`` modules take K stacked models' parameters
    (call it with :func:`torch.func.functional_call` and the stacked parameters)."""
    grouped = copy.deepcopy(model)
    for name, module in list(grouped.named_modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            parent_name, _, child = name.rpartition(".")
            parent = grouped.get_submodule(parent_name) if parent_name else grouped
            replacement = GroupedConv2d(module) if isinstance(module, nn.Conv2d) else GroupedLinear(module)
            setattr(parent, child, replacement)
    return grouped


def grouped_inputs(x: torch.Tensor) -> torch.Tensor:
    """``(K, B, C, ...)`` per-model inputs as one grouped input ``(B, K*C, ...)`` (channels-last for images)."""
    grouped = x.transpose(0, 1).flatten(1, 2)
    return grouped.contiguous(memory_format=torch.channels_last) if grouped.dim() == 4 else grouped.contiguous()


def grouped_logits(network: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(K, B, classes)`` of the K models ``params`` (stacked) on their inputs ``x`` ``(K, B, ...)``."""
    out = functional_call(network, params, (grouped_inputs(x),))
    return out.unflatten(-1, (x.shape[0], -1)).transpose(0, 1)


@torch.no_grad()
def grouped_matches(network: nn.Module, base: nn.Module, params: dict, x: torch.Tensor) -> bool:
    """Whether the grouped ``network`` gives each model of ``params`` the logits its own forward
    (``base`` with model k's parameters) gives on ``x`` ``(K, B, ...)``, up to float rounding."""
    try:
        grouped = grouped_logits(network, params, x)
    except (RuntimeError, ValueError, IndexError):
        return False
    for k in range(x.shape[0]):
        alone = functional_call(base, {name: value[k] for name, value in params.items()}, (x[k],))
        if alone.shape != grouped[k].shape or not torch.allclose(alone, grouped[k], rtol=1e-4, atol=1e-5):
            return False
    return True
