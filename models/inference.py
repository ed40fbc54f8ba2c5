"""Forward passes of models over images, once per model and sample; results are cached on disk.

A :class:`Scores` record holds what attacks need: probabilities ``(N, C)`` in the predictor's own
dtype (float32 for the paper's networks, as its attacks saw them) and labels ``(N,)`` (``-1``
outside the label space). Attacks never see models or images.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.manifest import tensor_digest
from engine.scores import Scores
from utils.files import atomic_path

log = logging.getLogger(__name__)


class ForwardCounter:
    """Counts how many samples pass through a module's forward (for benchmarks and tests)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.samples = 0
        self.calls = 0
        self._handle = module.register_forward_pre_hook(self._count)

    def _count(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.calls += 1
        self.samples += len(inputs[0])

    def remove(self) -> None:
        self._handle.remove()



@torch.no_grad()
def compute_probs(predictor: torch.nn.Module, images: torch.Tensor, device: torch.device,
                  batch_size: int = 512) -> np.ndarray:
    """One forward pass of ``predictor`` (in eval mode) over ``images`` ``(N, C, H, W)``; returns
    ``(N, K)`` in the predictor's dtype (float32 stays float32; others become float64)."""
    chunks = [_numpy_dtype(predictor(images[start:start + batch_size].to(device, non_blocking=True))).cpu()
              for start in range(0, len(images), batch_size)]
    probs = torch.cat(chunks).numpy() if chunks else np.zeros((0, 0))
    if not np.isfinite(probs).all():
        raise ValueError("the model produced NaN or inf probabilities; check the checkpoint and inputs")
    return probs


def _numpy_dtype(probs: torch.Tensor) -> torch.Tensor:
    """``probs`` as float32 if it is float32, else as float64 (bfloat16 has no NumPy dtype)."""
    return probs if probs.dtype in (torch.float32, torch.float64) else probs.double()


class ScoreCache:
    """Scores on disk, keyed by model fingerprint, predictor and set identity.

    The key covers everything that changes the probabilities: the checkpoint's weights, the
    calibration method and its parameters, and a digest of the exact input tensor. Each entry
    ``scores_{key}.npz`` holds ``probs``, ``key`` (its name) and ``sha256``
    (:func:`entry_checksum` of the name and ``probs``, so an entry copied under another key fails
    it); an entry that is unreadable, fails its checksum, has the wrong number of rows or holds
    NaN/inf is recomputed and rewritten, with one warning naming the file.
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None
        if self.directory is not None and self.directory.exists() and not self.directory.is_dir():
            log.warning("score cache %s is a file, not a folder; scores are not cached", self.directory)
            self.directory = None
        self.hits = 0
        self.misses = 0
        self.repaired = 0

    @staticmethod
    def key(model_fingerprint: str, predictor_description: dict, images: torch.Tensor) -> str:
        digest = hashlib.sha256()
        digest.update(b"probs in the predictor's dtype")  # entries before this were all float64
        digest.update(model_fingerprint.encode())
        digest.update(json.dumps(predictor_description, sort_keys=True, default=str).encode())
        digest.update(tensor_digest(images).encode())
        return digest.hexdigest()[:32]

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def get_or_compute(self, key: str | None, labels: torch.Tensor, in_label_space: bool,
                       compute: Callable[[], np.ndarray], classes: int | None = None) -> Scores:
        """Return cached scores for ``key`` or call ``compute() -> probs`` and store them.

        ``classes``: the number of columns a valid entry has (not checked when None).
        """
        label_array = labels.numpy().astype(np.int64)
        probs, _ = self.array("scores", key, len(label_array), compute, classes)
        return Scores(probs, label_array, in_label_space)

    def array(self, kind: str, key: str | None, rows: int, compute: Callable[[], np.ndarray],
              classes: int | None = None,
              field: str = "probs") -> tuple[np.ndarray, bool]:
        """The ``(rows, classes)`` array cached as ``{kind}_{key}.npz`` (its ``field``), or
        ``compute()``'s result, stored with its checksum; returns it and whether it was computed.

        A damaged entry (unreadable, checksum mismatch, wrong shape, NaN) is recomputed with one
        warning naming the file.
        """
        path = self.directory / f"{kind}_{key}.npz" if self.directory and key else None
        if path is not None and path.exists():
            values, problem = read_entry(path, rows, classes, field)
            if values is not None:
                self.hits += 1
                return values, False
            log.warning("score cache entry %s is damaged (%s); recomputing it", path, problem)
            self.repaired += 1
        self.misses += 1
        values = compute()
        if path is not None:
            self._store(path, values, field)
        return values, True

    def _store(self, path: Path, values: np.ndarray, field: str = "probs") -> None:
        try:
            with atomic_path(path) as temporary:
                with open(temporary, "wb") as handle:
                    np.savez(handle, **{field: values}, sha256=np.array(entry_checksum(path.stem, values)),
                             key=np.array(path.stem))
        except OSError as error:
            log.warning("cannot write score cache entry %s (%s); scores are not cached", path, error)
            self.directory = None


def array_checksum(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def entry_checksum(name: str, array: np.ndarray) -> str:
    """sha256 binding a cache entry's name (``{kind}_{key}``) to its array (:func:`array_checksum`):
    the same array stored under another key does not match."""
    return hashlib.sha256(f"{name}\0{array_checksum(array)}".encode()).hexdigest()


def read_entry(path: Path, rows: int, classes: int | None = None,
               field: str = "probs") -> tuple[np.ndarray | None, str]:
    """``(array, "")`` of a valid cache entry (its ``field``) of shape ``(rows, classes)``, else
    ``(None, what is wrong)``. The entry must answer the key in its file name (``path.stem``)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            probs, checksum = stored[field], str(stored["sha256"])
            stored_name = str(stored["key"]) if "key" in stored.files else None
    except KeyError as error:
        return None, f"no {error} array (written by an older version?)"
    except Exception as error:  # zipfile, zlib, EOF and format errors all mean "unreadable"
        return None, f"unreadable: {type(error).__name__}"
    if stored_name is not None and stored_name != path.stem:
        return None, f"it holds the entry {stored_name}, not {path.stem} (copied from another key?)"
    if checksum != entry_checksum(path.stem, probs):
        if stored_name is None and checksum == array_checksum(probs):
            return None, "its checksum does not bind its key (written by an older version)"
        return None, "checksum mismatch"
    if probs.ndim != 2 or len(probs) != rows or (classes is not None and probs.shape[1] != classes):
        return None, f"shape {probs.shape}, expected ({rows}, {classes if classes is not None else 'classes'})"
    if not np.isfinite(probs).all():
        return None, f"NaN or inf {field}"
    return probs, ""


@torch.no_grad()
def cached_logits(model: torch.nn.Module, model_fingerprint: str, images: torch.Tensor, device: torch.device,
                  cache: ScoreCache, batch_size: int = 512) -> tuple[np.ndarray, int]:
    """Logits ``(N, C)`` float32 of ``model`` on ``images``: from the cache, or one forward per sample.

    Returns the logits and the number of samples that went through the model (0 on a cache hit).
    """
    key = ScoreCache.key(model_fingerprint, {"method": "logits"}, images) if cache.enabled else None
    forwarded = []

    def compute() -> np.ndarray:
        model_on_device = model.to(device).eval()
        counter = ForwardCounter(model_on_device)
        try:
            chunks = [model_on_device(images[s:s + batch_size].to(device)).float().cpu()
                      for s in range(0, len(images), batch_size)]
        finally:
            counter.remove()
        forwarded.append(counter.samples)
        return torch.cat(chunks).numpy()

    logits, _ = cache.array("logits", key, len(images), compute, field="logits")
    return logits, sum(forwarded)
