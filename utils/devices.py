"""Device choice: CUDA when present, CPU otherwise, or what ``--device`` says."""
from __future__ import annotations

import torch


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when available; otherwise the named device, checked."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a device name (use auto, cpu, cuda, cuda:0)") from error
    if device.type == "meta":
        raise ValueError(f"--device {name!r} holds no data and cannot run a model; use auto, cpu or cuda")
    if device.type not in ("cpu", "cuda"):
        backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
        available = getattr(backend, "is_available", None)
        if available is None or not available():
            raise ValueError(f"--device {name!r}: no {device.type} device on this machine; use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} asked for CUDA but none is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device
