"""Reference models of a user's architecture, trained with the user's recipe by the reference pool.

The user writes ``train_fn(model, images, labels, seed) -> None``: it trains ``model`` (a fresh
``nn.Module`` from ``--model``'s factory, on CPU) in place on ``images`` ``(n, C, H, W)``
(normalised as the audited data) and ``labels`` ``(n,)``, with ``seed`` fixing its randomness.
:class:`UserTrainFn` wraps it as the pool's per-model training callable
(:data:`models.reference_pool.ModelTrainer`, ``(spec, images, labels, rows) -> state_dict``), which
:func:`models.pool_executor.train_pool` runs one model per step, in this process or, with
``--ray_address``, in Ray tasks. The models live in the package's one store of reference models
(:class:`models.reference_pool.ReferencePool`: ``{reference_dir}/{name}_audit_reference_pool_K{K}_{id}/``
with its record, lock and integrity checks), saved as they complete, so a failed pool keeps them
and a rerun with the same inputs loads them instead of training them again.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from membership_audit.user_model import build_user_model, import_callable
from models.reference_pool import digest_rows
from utils.seeding import seeded


class TrainFnError(RuntimeError):
    """A user's ``--train_fn`` raised while training one reference model."""


@dataclass(frozen=True)
class UserReferenceSpec:
    """What defines reference model ``index`` of a user's pool (saved beside its checkpoint)."""

    index: int
    factory: str          # --model, package.module:factory
    train_fn: str         # --train_fn, package.module:function
    init_seed: int
    train_seed: int
    population_sha256: str
    members_sha256: str

    @property
    def arch(self) -> str:
        """The architecture, as the pool's record names it: the factory."""
        return self.factory

    def identity(self) -> dict:
        """What the pool's record and the checkpoint's config keep (:class:`models.reference_pool.ReferencePool`)."""
        return {"role": f"reference_{self.index}", "arch": self.factory, **asdict(self)}

    def build(self) -> nn.Module:
        with seeded(self.init_seed):
            return build_user_model(self.factory)


class UserTrainFn:
    """The pool's training callable ``(spec, images, labels, rows) -> state_dict`` around a user's
    ``train_fn(model, images, labels, seed) -> None``."""

    def __init__(self, train_fn: str | Callable):
        self.train_fn = train_fn

    def __call__(self, spec: UserReferenceSpec, images: torch.Tensor, labels: torch.Tensor,
                 rows: np.ndarray) -> dict[str, torch.Tensor]:
        train = import_callable(self.train_fn, "--train_fn") if isinstance(self.train_fn, str) else self.train_fn
        model = spec.build()
        index = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        try:
            with seeded(spec.train_seed):
                train(model, images[index].clone(), labels[index].clone(), spec.train_seed)
        except Exception as error:
            raise TrainFnError(f"--train_fn {spec.train_fn} raised on reference model {spec.index}: "
                               f"{type(error).__name__}: {error}") from None
        return {key: value.detach().cpu() for key, value in model.state_dict().items()}


def train_user_pool(specs: list[UserReferenceSpec], images: torch.Tensor, labels: torch.Tensor,
                    membership: np.ndarray, reference_dir: Path, name: str, train_fn: str | Callable,
                    ray_address: str | None = None) -> tuple[list[nn.Module], dict]:
    """The K reference models from the package's one store of reference models
    (:class:`models.reference_pool.ReferencePool`: its folder under ``reference_dir``, record, lock and
    integrity checks): loaded where trained with these specs, the rest trained by the pool
    (:func:`models.pool_executor.train_pool`, ``train_fn`` as its per-model trainer); returns the
    models and a manifest note.

    Raises a one-line ValueError naming the models whose ``train_fn`` raised; every model that
    finished stays saved (a rerun trains only the missing ones).
    """
    from models.pool_executor import PoolTrainingError, train_pool
    from models.reference_pool import ReferencePool
    from utils.locks import hold_locks

    pool = ReferencePool(reference_dir, name, "audit", "", specs, membership)
    models, seconds = {}, {}
    with hold_locks([pool.directory], "loading or training the audit's reference models",
                    fix="wait for it to finish, or pass another --reference_dir"):
        pool.open()
        for spec in specs:
            if (model := pool.load_trained(spec)) is not None:
                models[spec.index] = model.eval()
        missing = [spec for spec in specs if spec.index not in models]

        def on_done(spec: UserReferenceSpec, result: dict) -> None:
            model, _ = pool.save(spec, result["state_dict"])
            models[spec.index], seconds[spec.index] = model.eval(), round(result["seconds"], 3)

        pool_info = None
        if missing:
            rows = [np.flatnonzero(membership[spec.index]) for spec in missing]
            try:
                with _import_paths_exported():
                    pool_info = train_pool(missing, images, labels, rows, on_done, max_chunk=1, address=ray_address,
                                           trainer=UserTrainFn(train_fn), batch=False)
            except PoolTrainingError as error:
                raise ValueError(f"--train_fn {train_fn} failed: {error}; {len(models)} finished reference model(s) "
                                 f"kept in {pool.directory}") from None
    note = {"models": len(specs), "loaded": len(specs) - len(missing), "trained": len(missing),
            "train_seconds": seconds, "pool": pool_info, "ray_address": ray_address or "local",
            "folder": str(pool.directory), "membership": str(pool.membership_path), "pool_id": pool.pool_id}
    return [models[spec.index] for spec in specs], note


def user_reference_specs(count: int, factory: str, train_fn: str, seed: int, images: torch.Tensor,
                         labels: torch.Tensor, membership: np.ndarray) -> list[UserReferenceSpec]:
    from utils.seeding import derive_seed

    population = digest_rows(images, labels)
    return [UserReferenceSpec(k, str(factory), str(train_fn), derive_seed(seed, f"reference_{k}", "init"),
                              derive_seed(seed, f"reference_{k}", "train"), population,
                              digest_rows(np.flatnonzero(membership[k]))) for k in range(count)]


@contextmanager
def _import_paths_exported() -> Iterator[None]:
    """Let Ray workers import the user's modules: while open, this process's import folders are on
    PYTHONPATH (read by :func:`models.ray_pool.ray_cluster`); the previous value is restored."""
    previous = os.environ.get("PYTHONPATH")
    current = [p for p in (previous or "").split(os.pathsep) if p]
    extra = [str(Path(p or ".").resolve()) for p in sys.path if (p == "" or Path(p).is_dir())
             and "site-packages" not in p and not p.startswith(sys.base_prefix)]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(current + extra))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
