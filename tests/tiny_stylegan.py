"""A tiny stand-in for a StyleGAN2-ADA ``G_ema`` (same attributes and call), picklable for tests."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn


class TinyGenerator(nn.Module):
    """``G(z, c, truncation_psi=1, noise_mode="random")`` -> images in [-1, 1], ``(N, C, R, R)``.

    Like StyleGAN it adds noise drawn from the global RNG on every call, so outputs depend on the
    seed and on the call order, and ``truncation_psi`` pulls latents towards zero.
    """

    def __init__(self, z_dim: int = 8, c_dim: int = 10, img_resolution: int = 8, img_channels: int = 3):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        weight = torch.randn(z_dim + c_dim, img_channels * img_resolution ** 2,
                             generator=torch.Generator().manual_seed(0))
        self.weight = nn.Parameter(weight)

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        codes = z * truncation_psi
        if self.c_dim:
            codes = torch.cat([codes, c.to(z.dtype)], dim=1)
        out = codes @ self.weight
        if noise_mode == "random":
            out = out + 0.5 * torch.randn(out.shape, device=out.device)
        return torch.tanh(out).view(-1, self.img_channels, self.img_resolution, self.img_resolution)


class PlainGenerator(TinyGenerator):
    """A generator whose call takes no ``truncation_psi``."""

    def forward(self, z, c):
        return super().forward(z, c)


def write_generator_pickle(path: str | Path, generator: nn.Module | None = None, **kwargs) -> Path:
    """Pickle ``{"G_ema": generator}`` (default ``TinyGenerator(**kwargs)``) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump({"G_ema": generator or TinyGenerator(**kwargs)}, handle)
    return path
