"""Checkpoints: the paper's file names, atomic saves with their config, strict loads, reuse.

A checkpoint is a plain state dict saved with ``torch.save`` at
``{dir}/{arch}_{dataset}_{modifiers}{role}.pt`` (the names of the authors' released files, e.g.
``resnet18_cifar10_LS_0.0083_target.pt``), with the config that produced it beside it in
``{stem}.json``. Loading uses ``weights_only=True`` and ``strict=True``; anything wrong is reported
as one :class:`CheckpointError` line naming the file, the problem and what to do.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from utils.files import atomic_path, sha256_file, torch_save, write_json

logger = logging.getLogger(__name__)

_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WRAPPER_KEYS = ("state_dict", "model_state_dict")
_SHOWN = 3  # keys named per kind of mismatch in an error
WEIGHTS_KEY = "weights_sha256"  # in a checkpoint's config: sha256 of the weights file it describes


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's recorded config differs from the requested one (and retraining was not asked).

    Attributes
    ----------
    path : Path
    differences : list of (dotted key, recorded value, requested value)
    """

    def __init__(self, path: Path, differences: list[tuple[str, object, object]]):
        self.path, self.differences = Path(path), differences
        shown = ", ".join(f"{key} {saved!r} (requested {wanted!r})" for key, saved, wanted in differences)
        super().__init__(f"checkpoint {path} was made with other settings: {shown}; retrain it "
                         "(force_train) or request the settings it was made with")


class NonFiniteWeightsError(CheckpointError):
    """Training ended with NaN or inf weights; nothing was saved."""


def checkpoint_path(directory: str | Path, arch: str, dataset: str, modifiers: str = "",
                    role: str = "target") -> Path:
    """``{directory}/{arch}_{dataset}_{modifiers}{role}.pt``.

    Parameters
    ----------
    modifiers : str
        ``""`` or the training variant, e.g. ``"LS_0.0083_"`` or ``"L2_0.0003_"``; a missing
        trailing underscore is added.
    role : str
        ``"target"`` or ``"shadow"`` (or another name such as ``"shadow_3"``).
    """
    for name, value in (("arch", arch), ("dataset", dataset), ("role", role)):
        if not _ROLE.match(value):
            raise ValueError(f"checkpoint {name} {value!r} must be a non-empty name of letters, "
                             "digits, '_', '.', '-'")
    if modifiers and not modifiers.endswith("_"):
        modifiers += "_"
    if "/" in modifiers or "\\" in modifiers:
        raise ValueError(f"checkpoint modifiers {modifiers!r} must not contain a path separator")
    return Path(directory) / f"{arch}_{dataset}_{modifiers}{role}.pt"


def config_path(path: str | Path) -> Path:
    """The JSON config beside checkpoint ``path`` (``{stem}.json``)."""
    return Path(path).with_suffix(".json")


def save_checkpoint(model: nn.Module, path: str | Path, config: Mapping) -> Path:
    """Write ``model``'s state dict (on CPU) to ``path`` and ``config`` to ``{stem}.json``.

    Both writes are atomic; the weights are renamed into place first, so an interrupted save
    never leaves old weights beside a new config. The config also records the weights file's
    sha256 (``weights_sha256``), so new weights beside an old config (a save interrupted between
    the two renames) are detected at load time.
    """
    path = Path(path)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(path) as temporary:
        torch_save(state, temporary)
        weights_sha256 = sha256_file(temporary)
    write_json(config_path(path), {**dict(config), WEIGHTS_KEY: weights_sha256})
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (plain, or wrapped under ``state_dict``/``model_state_dict``).

    Raises
    ------
    CheckpointError
        The file is missing, corrupt, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train the model (e.g. --train) "
                              f"or put the released checkpoint at that path")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise CheckpointError(f"checkpoint {path} {_load_problem(error)}") from None
    for key in _WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"checkpoint {path} holds a {type(loaded).__name__}, not a state dict "
                              f"of tensors; save one with save_checkpoint or torch.save(model.state_dict())")
    state = dict(loaded)
    if state and all(key.startswith("module.") for key in state):  # saved from DataParallel
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load checkpoint ``path`` into ``model`` strictly (same keys, same shapes); returns ``model``.

    Raises
    ------
    CheckpointError
        One line naming the file and what is wrong (missing file, corrupt file, first
        missing/unexpected keys, shape mismatches, NaN or inf weights) and what to do.
    """
    state = read_state_dict(path)
    mismatch = _describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: {mismatch}; "
                              "check the architecture, number of classes and input channels, or "
                              "delete the file to retrain")
    non_finite = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if non_finite:
        raise CheckpointError(f"checkpoint {path} holds NaN or inf weights ({non_finite[0]}"
                              f"{', ...' if len(non_finite) > 1 else ''}); delete it and retrain (--train), "
                              "or restore or download the file again")
    model.load_state_dict(state, strict=True)
    return model


def load_or_train(model: nn.Module, path: str | Path, config: Mapping,
                  train_fn: Callable[[nn.Module], object],
                  force_train: bool = False) -> tuple[nn.Module, bool]:
    """Load ``path`` into ``model`` if it was made with ``config``; otherwise train and save.

    A checkpoint is reused when every value its ``{stem}.json`` records equals ``config``'s, or
    when it has no JSON (the authors' released files have none); a different value raises
    :class:`CheckpointMismatchError` unless ``force_train``. ``train_fn(model)`` trains ``model`` in place; the checkpoint is
    replaced (atomically) only when training returned and every weight is finite.

    Raises
    ------
    CheckpointMismatchError, NonFiniteWeightsError, CheckpointError

    Returns
    -------
    (model, trained) : tuple of nn.Module and bool
        ``trained`` is True when ``train_fn`` ran (and the checkpoint was written).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a folder, not a file; move it away or choose "
                              "another checkpoint folder")
    if not force_train and path.is_file():
        saved = _read_config(config_path(path))
        if isinstance(saved, dict) and WEIGHTS_KEY in saved:
            if saved.pop(WEIGHTS_KEY) != sha256_file(path):
                raise CheckpointError(f"checkpoint {path} is not the file its config {config_path(path).name} "
                                      "describes (a save was interrupted, or one of them was replaced); "
                                      "retrain it (--train) or restore the pair")
        differences = config_differences(saved, config) if saved is not None else []
        if not differences:
            logger.info("loading %s", path)
            return load_checkpoint(model, path), False
        raise CheckpointMismatchError(path, differences)
    train_fn(model)
    bad = non_finite_parameters(model)
    if bad:
        raise NonFiniteWeightsError(f"training for {path} ended with NaN or inf weights ({bad[0]}"
                                    f"{', ...' if len(bad) > 1 else ''}); nothing was saved and any "
                                    "existing checkpoint was kept; lower the learning rate (--lr)")
    save_checkpoint(model, path, config)
    return model, True


def non_finite_parameters(model: nn.Module) -> list[str]:
    """Names of state-dict tensors of ``model`` holding NaN or inf (floating tensors only)."""
    return [key for key, value in model.state_dict().items()
            if value.is_floating_point() and not torch.isfinite(value).all()]


def config_differences(saved: object, requested: Mapping) -> list[tuple[str, object, object]]:
    """``(dotted key, saved value, requested value)`` for every leaf the saved config records
    that differs from the requested one (``None`` where the request lacks it).

    Keys the saved config does not record (added to the config by a later version) are not
    compared, as a checkpoint without any config loads too; an unreadable saved config is one
    difference named ``"config"``.
    """
    if not isinstance(saved, Mapping):
        return [("config", saved, "readable JSON")]
    flat_saved, flat_requested = _flatten(saved), _flatten(_as_json(requested))
    return [(key, flat_saved[key], flat_requested.get(key)) for key in sorted(flat_saved)
            if flat_saved[key] != flat_requested.get(key)]


def _flatten(data: Mapping, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _load_problem(error: Exception) -> str:
    """What a failed weights-only ``torch.load`` means, in words (never suggesting an unsafe load)."""
    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            return (f"holds Python objects ({found.group(1)}) besides tensors, which this package never "
                    "unpickles; save a plain state dict with torch.save(model.state_dict(), path), or "
                    "delete it to retrain")
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        first = detail.group(1).strip() if detail else "not a plain state dict"
    if "weights_only" in first:  # never pass on torch's hint to load unsafely
        first = "unreadable as a plain state dict"
    return (f"is corrupt or not a PyTorch weights file ({type(error).__name__}: {first[:200]}); "
            "delete it to retrain, or download it again")
def read_metadata(path: str | Path) -> object | None:
    """The JSON config beside checkpoint ``path`` (dict), None without one, a string if unreadable."""
    return _read_config(config_path(path))


def fingerprint(model: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 hex digest of a state dict: each key, dtype, shape and tensor bytes, in key order."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    digest = hashlib.sha256()
    for key, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(state[key].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _describe_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """'' when keys and shapes agree, else e.g. '2 missing keys (a, b); 1 shape mismatches (...)'."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    shapes = [f"{key} file {tuple(found[key].shape)} vs model {tuple(expected[key].shape)}"
              for key in expected if key in found and found[key].shape != expected[key].shape]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:_SHOWN]) + (", ..." if len(items) > _SHOWN else "")
            parts.append(f"{len(items)} {label} ({shown})")
    return "; ".join(parts)


def _as_json(config: Mapping) -> object:
    """``config`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(dict(config), default=str))


def recorded_config(checkpoint: str | Path) -> object | None:
    """The config saved beside ``checkpoint`` (None without one; a string if it is unreadable)."""
    return _read_config(config_path(checkpoint))


def _read_config(path: Path) -> object | None:
    """The JSON at ``path``; None if there is none; a sentinel string if it is unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return "<unreadable config>"
