"""A user's architecture and training function by import path (``package.module:name``), and
their checkpoint loaded with ``weights_only=True``; every failure is one line naming the flag."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn


def import_callable(path: str, flag: str) -> Callable:
    """The callable ``package.module:name``; a one-line ValueError naming ``flag`` when it cannot be had."""
    module_name, _, attribute = str(path).partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{flag} {path!r}: expected package.module:name (e.g. my_project.models:make_model)")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raises while importing
        raise ValueError(f"{flag} {path!r}: cannot import {module_name} ({type(error).__name__}: {error}); "
                         f"run from the folder that holds it or add that folder to PYTHONPATH") from None
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ValueError(f"{flag} {path!r}: {module_name} has no callable {attribute!r}")
    return target


def build_user_model(factory: str | Callable, flag: str = "--model") -> nn.Module:
    """Call the factory (an import path or a callable) with no arguments; it must return an ``nn.Module``."""
    make = import_callable(factory, flag) if isinstance(factory, str) else factory
    try:
        model = make()
    except Exception as error:
        raise ValueError(f"{flag} {factory!r}: the factory raised {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{flag} {factory!r}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_user_checkpoint(model: nn.Module, path: str | Path, flag: str = "--checkpoint") -> nn.Module:
    """Load the state dict at ``path`` (``torch.load(weights_only=True)``) into ``model`` strictly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{flag} {path}: cannot be read as a state dict with weights_only=True "
                         f"({type(error).__name__}); save it with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{flag} {path}: holds a {type(state).__name__}, not a state dict of tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise ValueError(f"{flag} {path}: keys do not fit the model: {len(missing)} missing, {len(unexpected)} "
                         f"unexpected (first: {first!r}); is it a checkpoint of this --model?")
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(f"{flag} {path}: {len(wrong)} tensor(s) have other shapes than the model's (first: "
                         f"{wrong[0]!r} {tuple(state[wrong[0]].shape)} vs {tuple(expected[wrong[0]].shape)})")
    model.load_state_dict(state, strict=True)
    return model.eval()
