"""Reference-model pool: K models of the target's architecture and recipe on random halves of a
population, their membership matrix, checkpoints, and resuming an interrupted pool.

The membership design is balanced: every population sample is IN for ``K // 2`` or ``K // 2 + 1``
models (so each has IN and OUT models when K >= 2), and each model trains on about half the
population. Training is a plain function of tensors (:func:`train_chunk`: a chunk of models as one
batched model, or one model per step with a pluggable :data:`ModelTrainer`), so it runs the same in
this process, a worker process or a Ray task (:mod:`models.pool_executor`). The pool is generic over the membership
matrix: any ``(K, P)`` bool matrix, models with training sets of different sizes included.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from models import build_model
from models.batched_training import batchable, train_stacked
from models.checkpoints import (WEIGHTS_KEY, CheckpointError, checkpoint_path, config_path, fingerprint,
                                load_checkpoint, read_metadata, save_checkpoint)
from models.training import TrainConfig, train_model
from utils.files import atomic_path, sha256_file
from utils.seeding import seeded

log = logging.getLogger(__name__)


def population_membership(num_models: int, population_rows: int, train_rows: int, seed: int) -> np.ndarray:
    """Bool (K, P): each model trains on ``train_rows`` distinct rows and every row is IN for
    ``K * train_rows / P`` models (the floor or the ceiling when that is not an integer).

    Models are drawn in turn; each takes the rows with the fewest models so far, ties broken by a
    seeded random order, so training sets differ between models.
    """
    check_layout(num_models, population_rows, train_rows)
    rng = np.random.default_rng(seed)
    membership = np.zeros((num_models, population_rows), dtype=bool)
    counts = np.zeros(population_rows, dtype=np.int64)
    for k in range(num_models):
        order = np.lexsort((rng.random(population_rows), counts))        # fewest models first, random ties
        membership[k, order[:train_rows]] = True
        counts[order[:train_rows]] += 1
    return membership


def check_layout(num_models: int, population_rows: int, train_rows: int) -> None:
    """Every population row must be IN for at least one model and OUT for at least one."""
    if not 0 < train_rows < population_rows:
        raise ValueError(f"reference population: {population_rows} rows cannot give reference models "
                         f"{train_rows} training rows each and leave OUT models for every row")
    if num_models * train_rows < population_rows:
        need = -(-population_rows // train_rows)
        raise ValueError(f"--reference_models {num_models}: the reference population has {population_rows} rows "
                         f"and each model trains on {train_rows} (as many as the target), so every row is IN "
                         f"for a model only with K >= {need}; use --reference_models {need} or more")


def balanced_membership(num_models: int, num_samples: int, seed: int) -> np.ndarray:
    """Bool (K, N): column i is True for a seeded random ``K // 2`` (odd K: ``K // 2`` or ``+ 1``) models."""
    if num_models < 1:
        raise ValueError(f"--reference_models must be at least 1, got {num_models}")
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((num_models, num_samples)), axis=0)   # a random order of models per sample
    n_in = np.full(num_samples, num_models // 2)
    if num_models % 2:
        n_in += rng.random(num_samples) < 0.5
    return ranks < n_in[None, :]


@dataclass(frozen=True)
class ReferenceModelSpec:
    """Everything that defines reference model ``index`` (saved beside its checkpoint)."""

    index: int
    arch: str
    num_classes: int
    in_channels: int
    image_size: int
    recipe: dict             # TrainConfig.to_dict()
    init_seed: int
    population_sha256: str   # images and labels of the population
    members_sha256: str      # which population rows it trains on

    def identity(self) -> dict:
        return {"role": f"reference_{self.index}", "arch": self.arch, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "image_size": self.image_size, "train": self.recipe,
                "init_seed": self.init_seed, "population_sha256": self.population_sha256,
                "members_sha256": self.members_sha256}

    def build(self) -> nn.Module:
        """The freshly initialised model (seeded)."""
        with seeded(self.init_seed):
            return build_model(self.arch, num_classes=self.num_classes, in_channels=self.in_channels,
                               image_size=self.image_size)


ModelTrainer = Callable[[ReferenceModelSpec, torch.Tensor, torch.Tensor, np.ndarray], dict]
"""A per-model training function: ``(spec, population images, labels, rows) -> state dict``; it
trains a fresh ``spec.build()`` on ``images[rows]`` with ``spec.recipe``. The pool's fallback path
(and a user's own training function) plug in here."""


def default_trainer(spec: ReferenceModelSpec, images: torch.Tensor, labels: torch.Tensor, rows: np.ndarray,
                    device: str = "cpu") -> dict:
    """The package's recipe (:func:`models.training.train_model`) on ``images[rows]``; a CPU state dict."""
    model = spec.build()
    index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    train_model(model, images[index], labels[index], TrainConfig.from_dict(spec.recipe), device,
                desc=f"reference {spec.index}", progress=False)
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


def train_reference_model(spec: ReferenceModelSpec, images: torch.Tensor, labels: torch.Tensor,
                          rows: np.ndarray, threads: int | None = None, device: str = "cpu") -> dict:
    """Train reference model ``spec.index`` alone on ``images[rows]``; its CPU state dict and timing.

    ``threads`` sets ``torch.set_num_threads`` for the duration (the previous count is restored).
    """
    with torch_threads(threads):
        start = time.perf_counter()
        state = default_trainer(spec, images, labels, rows, device)
        return {"index": spec.index, "state_dict": state, "seconds": time.perf_counter() - start}


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block (None: unchanged)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def chunk_mode(spec: ReferenceModelSpec, trainer: ModelTrainer | None = None, device: str = "cpu") -> str | None:
    """None when models of ``spec``'s kind train batched on ``device``; else why they train one per step."""
    if trainer is not None:
        return "a custom training function trains one model at a time"
    reason = batchable(spec.build(), TrainConfig.from_dict(spec.recipe), device)
    return f"{spec.arch} trains one model per step ({reason})" if reason else None


def train_chunk(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                rows: Sequence[np.ndarray], device: str = "cpu", threads: int | None = None,
                trainer: ModelTrainer | None = None, on_progress: Callable[[float], None] | None = None,
                batch: bool = True, on_result: Callable[[dict], None] | None = None) -> dict:
    """Train one chunk of models: batched (:func:`models.batched_training.train_stacked`) when
    ``batch`` and the architecture allow, else one model per step with ``trainer`` (default: :func:`default_trainer`).

    Never raises for a failing model: returns ``{"results": [{"index", "state_dict", "seconds"}...],
    "failed": None or {"models": [indices], "reason": str}, "batched": bool}`` so the models that
    finished are kept (in a batched chunk, a model whose loss turns NaN stops and the others finish).
    ``on_result(result)`` is called for each model as soon as it is trained (one per step: after each
    model, so an interrupt keeps every finished one). ``on_progress(models)`` is called with each
    increment of models done (a batched chunk reports ``len(specs) / epochs`` per epoch).
    """
    results, start = [], time.perf_counter()
    batched = batch and chunk_mode(specs[0], trainer, device) is None

    def finished(result: dict) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    with torch_threads(threads):
        if batched:
            epochs = max(1, TrainConfig.from_dict(specs[0].recipe).epochs)
            try:
                states, diverged = train_stacked(
                    [spec.build() for spec in specs], [TrainConfig.from_dict(spec.recipe) for spec in specs],
                    images, labels, rows, device,
                    on_epoch=(lambda e: on_progress(len(specs) / epochs)) if on_progress else None)
            except (torch.OutOfMemoryError, MemoryError) as error:
                return _failed(results, [spec.index for spec in specs],
                               f"out of memory ({type(error).__name__}); pass a smaller --pool_chunk_size", batched)
            seconds = (time.perf_counter() - start) / len(specs)
            for spec, state in zip(specs, states):
                if state is not None:
                    finished({"index": spec.index, "state_dict": state, "seconds": seconds})
            if diverged:
                epochs_seen = ", ".join(map(str, sorted(set(diverged.values()))))
                return _failed(results, [specs[k].index for k in sorted(diverged)],
                               f"a NaN or inf training loss in epoch {epochs_seen} (lower --lr?)", batched)
            return {"results": results, "failed": None, "batched": True}
        train = trainer or (lambda spec, x, y, r: default_trainer(spec, x, y, r, device))
        non_finite = []
        for position, (spec, spec_rows) in enumerate(zip(specs, rows)):
            started = time.perf_counter()
            try:
                state = train(spec, images, labels, spec_rows)
            except (torch.OutOfMemoryError, MemoryError) as error:
                return _failed(results, [s.index for s in specs[position:]],
                               f"out of memory ({type(error).__name__})", batched)
            except (RuntimeError, ValueError) as error:
                return _failed(results, [s.index for s in specs[position:]], error_summary(error), batched)
            if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
                non_finite.append(spec.index)      # the next models still train
                continue
            finished({"index": spec.index, "state_dict": state, "seconds": time.perf_counter() - started})
            if on_progress:
                on_progress(1.0)
    if non_finite:
        return _failed(results, non_finite, "NaN or inf weights after training (lower --lr?)", batched)
    return {"results": results, "failed": None, "batched": False}


def error_summary(error: BaseException) -> str:
    """``"TypeName: first line of its message"`` (the message may be empty)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _failed(results: list, models: list[int], reason: str, batched: bool) -> dict:
    return {"results": results, "failed": {"models": models, "reason": reason}, "batched": batched}


class PoolRecordError(ValueError):
    """The pool's folder holds files of another pool, or a damaged record (one line, names the file)."""


class ReferencePool:
    """One pool's folder ``{dir}/{arch}_{dataset}_{modifiers}reference_pool_K{K}_{id}/``, named by
    what defines the pool (every model's spec: recipe, seeds, population, rows), holding
    ``reference_{k}.pt`` (+ ``.json``) and the record ``membership.npz``: the membership matrix
    ``(K, P)`` and, in the same file (written atomically), the pool's identity and the sha256 of
    every checkpoint saved so far. Pools of another K, population or recipe live in other folders.
    """

    RECORD = "membership.npz"

    def __init__(self, directory: str | Path, arch: str, dataset: str, modifiers: str,
                 specs: Sequence[ReferenceModelSpec], membership: np.ndarray):
        self.specs, self.membership = list(specs), np.asarray(membership, dtype=bool)
        identity = json.dumps([spec.identity() for spec in self.specs], sort_keys=True)
        self.pool_id = hashlib.sha256(identity.encode() + digest_rows(self.membership).encode()).hexdigest()
        name = f"reference_pool_K{len(self.specs)}_{self.pool_id[:12]}"
        self.directory = checkpoint_path(directory, arch, dataset, modifiers, name).with_suffix("")
        self.weights: dict[int, str] = {}

    def path(self, index: int) -> Path:
        return self.directory / f"reference_{index}.pt"

    @property
    def membership_path(self) -> Path:
        return self.directory / self.RECORD

    def open(self, replace: bool = False) -> None:
        """Create the folder and record, or read the record back and check it describes this pool.

        ``replace`` (``--train``): start a fresh record; every model is retrained.

        Raises
        ------
        PoolRecordError
            The record is damaged or describes another pool (one line naming it).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.membership_path.exists() and not replace:
            membership, record = self._read_record()
            if (record.get("pool_id") != self.pool_id or membership.shape != self.membership.shape
                    or not np.array_equal(membership, self.membership)):
                raise PoolRecordError(f"the pool record {self.membership_path} describes another pool than this "
                                      f"run's (membership or identity differ); delete {self.directory} or pass --train")
            self.weights = {int(k): v for k, v in record.get("weights", {}).items()}
        else:
            self.weights = {}
        self._write_record()

    def _read_record(self) -> tuple[np.ndarray, dict]:
        try:
            with np.load(self.membership_path, allow_pickle=False) as stored:
                membership, record = stored["membership"], json.loads(str(stored["record"]))
            if not isinstance(record, dict) or membership.dtype != bool:
                raise ValueError("not a pool record")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:   # truncated, empty, other
            raise PoolRecordError(f"the pool record {self.membership_path} is damaged ({type(error).__name__}); "
                                  f"delete {self.directory} or pass --train") from None
        return membership, record

    def _write_record(self) -> None:
        record = {"pool_id": self.pool_id, "models": len(self.specs),
                  "specs": [spec.identity() for spec in self.specs],
                  "weights": {str(k): v for k, v in sorted(self.weights.items())}}
        with atomic_path(self.membership_path) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, membership=self.membership, record=np.array(json.dumps(record)))

    def load_trained(self, spec: ReferenceModelSpec) -> nn.Module | None:
        """Model ``spec.index`` if its checkpoint was made with ``spec``; None when it must be trained
        (no checkpoint, or a save that was interrupted between weights and config).

        Raises
        ------
        PoolRecordError
            The checkpoint's config is unreadable, of another architecture or model, or its weights
            differ from the pool record's (one line naming the file; ``--train`` replaces it).
        """
        path = self.path(spec.index)
        if not path.is_file():
            return None
        saved = read_metadata(path)
        if saved is None:
            log.warning("reference model %s has no config beside it (an interrupted save): retraining it", path)
            return None
        if not isinstance(saved, dict):
            raise PoolRecordError(f"reference model config {config_path(path)} is unreadable or not a JSON object; "
                                  f"delete it or pass --train to retrain the model")
        if saved.get("arch") != spec.arch:
            raise PoolRecordError(f"reference model {path} is a {saved.get('arch')!r} model but the target is "
                                  f"{spec.arch!r}; reference models must share the target's architecture: "
                                  f"delete the file or pass --train to retrain it")
        recorded_weights = saved.pop(WEIGHTS_KEY, None)
        if saved != json.loads(json.dumps(spec.identity())):
            raise PoolRecordError(f"reference model {path} was made for another pool (its config differs from "
                                  f"model {spec.index}'s); delete it or pass --train to retrain it")
        actual = sha256_file(path)
        if recorded_weights is not None and recorded_weights != actual:
            log.warning("reference model %s: weights and config from different saves (an interrupted save): "
                        "retraining it", path)
            return None
        if spec.index in self.weights and self.weights[spec.index] != actual:
            raise PoolRecordError(f"reference model {path} is not the file the pool record {self.membership_path} "
                                  f"lists; delete it or pass --train to retrain it")
        model = spec.build()
        try:
            model = load_checkpoint(model, path)
        except CheckpointError as error:
            raise PoolRecordError(f"reference model {error}") from None
        if spec.index not in self.weights:
            self.weights[spec.index] = actual
            self._write_record()
        return model

    def save(self, spec: ReferenceModelSpec, state_dict: dict) -> tuple[nn.Module, str]:
        """Load ``state_dict`` into a fresh model of ``spec``, save it and record it; (model, fingerprint)."""
        model = spec.build()
        model.load_state_dict(state_dict, strict=True)
        path = save_checkpoint(model, self.path(spec.index), spec.identity())
        self.weights[spec.index] = sha256_file(path)
        self._write_record()
        return model, fingerprint(model)


def check_same_architecture(target: nn.Module, reference: nn.Module, what: str = "reference model") -> None:
    """Raise a one-line ValueError unless ``reference`` has the target's class and parameter shapes."""
    expected = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    if type(target) is not type(reference) or expected != found:
        raise ValueError(f"{what} is a {type(reference).__name__} with {len(found)} tensors but the target is a "
                         f"{type(target).__name__} with {len(expected)}; reference models must share the "
                         f"target's architecture")


def digest_rows(*arrays) -> str:
    """SHA-256 of arrays' bytes (population identity, member rows)."""
    digest = hashlib.sha256()
    for array in arrays:
        data = array.detach().cpu().contiguous().numpy() if isinstance(array, torch.Tensor) else np.ascontiguousarray(array)
        digest.update(str(data.dtype).encode() + str(data.shape).encode())
        digest.update(data.tobytes())
    return digest.hexdigest()
