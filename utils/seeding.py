"""Seeding: one ``--seed`` fixes splits, initialisation, training order and generated data."""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under ``torch.manual_seed(seed)`` and restore the previous torch RNG state."""
    import torch
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def derive_seed(seed: int, *names: str) -> int:
    """A seed for one named purpose (e.g. ``derive_seed(42, "shadow")``), stable across runs."""
    import hashlib

    digest = hashlib.sha256(":".join([str(seed), *names]).encode()).digest()
    return int.from_bytes(digest[:4], "little")
