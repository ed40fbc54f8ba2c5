"""How the reference pool trains: one plan from the configuration and the hardware, never from timing.

:func:`plan_pool` is a pure function of what it is given (models to train, whether they batch,
models per batched step, CPUs, GPUs, the pool flags), so the same configuration on the same
machine trains the same chunks the same way at any load, and the same models come out bit for bit.
:func:`machine` reads the hardware once (CPU count, GPU count and memory: no free-memory or load
figure). The plan is recorded in the pool's manifest note (:meth:`PoolPlan.describe`).

Backends: ``here`` (this process, its torch threads), ``processes`` (spawned local worker processes,
one torch thread each on CPU, one GPU each with CUDA) and ``ray`` (``--ray_address``, or a local
cluster with ``--pool_backend ray``), all behind one executor (:mod:`models.pool_executor`).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from models.batched_training import CPU_STEP_FLOP_LIMIT, MAX_CHUNK, chunk_size, formulation, step_flops
from models.reference_pool import ModelTrainer, ReferenceModelSpec, chunk_mode
from models.training import TrainConfig

BACKENDS = ("auto", "here", "processes", "ray")


@dataclass(frozen=True)
class Machine:
    """The hardware a plan depends on: CPUs and GPUs (0 without CUDA)."""

    cpus: int
    gpus: int = 0


@dataclass(frozen=True)
class PoolPlan:
    """One way to train the pool: ``backend``, ``workers`` (None: the Ray cluster's CPUs or GPUs, known
    once connected), models per chunk at most, whether a chunk trains as one batched model, the device
    (``cuda`` chunks go one per GPU) and why, in words."""

    backend: str
    workers: int | None
    max_chunk: int
    batched: bool
    device: str
    reason: str

    def chunks(self, count: int, workers: int | None = None) -> list[list[int]]:
        """Positions ``0..count-1`` in this plan's chunks (``workers``: the Ray cluster's, when the
        plan leaves them to it)."""
        return plan_chunks(count, workers or self.workers or 1, self.max_chunk if self.batched else 1)

    def describe(self) -> dict:
        return asdict(self)


def plan_chunks(count: int, workers: int, max_chunk: int) -> list[list[int]]:
    """Positions ``0..count-1`` in contiguous chunks: ``workers`` of them (fewer if there are fewer
    models), more when a chunk would hold more than ``max_chunk``; sizes differ by at most one."""
    if count == 0:
        return []
    chunks = min(count, max(workers, -(-count // max(max_chunk, 1))))
    bounds = np.linspace(0, count, chunks + 1).round().astype(int)
    return [list(range(bounds[i], bounds[i + 1])) for i in range(chunks)]


def plan_pool(count: int, machine: Machine, *, max_chunk: int, one_per_step: str | None = None,
              backend: str = "auto", pool_workers: int = 0, ray_address: str | None = None,
              device: str = "cpu", formulation: str | None = None) -> PoolPlan:
    """The plan for ``count`` models to train (a pure function of its arguments).

    Parameters
    ----------
    machine : CPUs and GPUs (:func:`machine`)
    max_chunk : models per batched step at most (``--pool_chunk_size``, or what fits in memory)
    one_per_step : why these models cannot train batched (BatchNorm, dropout, ``--amp``, a custom
        trainer, ``--pool_chunk_size 1``), None when they can
    backend : ``--pool_backend``: ``auto``, ``here``, ``processes`` or ``ray``
    pool_workers : ``--pool_workers`` (0: automatic, one per CPU, or one per GPU with CUDA)
    ray_address : ``--ray_address`` (implies the ``ray`` backend)
    device : ``cpu`` or ``cuda``
    formulation : how a batched step is computed (:func:`models.batched_training.formulation`), for the description

    Automatic: with ``--ray_address`` that cluster; with CUDA one chunk per GPU (in this process
    on one GPU); on CPU one worker process per core (one torch thread each: on small batched
    steps two one-thread processes beat one process on two threads), in this process on one core.
    """
    if backend not in BACKENDS:
        raise ValueError(f"--pool_backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if pool_workers < 0:
        raise ValueError(f"--pool_workers must be 0 (automatic) or positive, got {pool_workers}")
    cuda = torch.device(device).type == "cuda"
    batched = one_per_step is None
    how = (f"batched chunks ({formulation})" if formulation else "batched chunks") if batched else \
        f"one model per step ({one_per_step})"
    if ray_address or backend == "ray":
        workers = pool_workers or (None if ray_address else (machine.gpus if cuda else machine.cpus))
        where = f"the Ray cluster at {ray_address}" if ray_address else "a local Ray cluster (--pool_backend ray)"
        return PoolPlan("ray", workers, max_chunk, batched, "cuda" if cuda else "cpu", f"{how} on {where}")
    units = max(1, machine.gpus if cuda else machine.cpus)
    workers = pool_workers or units
    if backend == "here" or (backend == "auto" and workers == 1):
        return PoolPlan("here", 1, max_chunk, batched, "cuda" if cuda else "cpu", f"{how} in this process")
    kind = "GPU" if cuda else "CPU"
    return PoolPlan("processes", workers, max_chunk, batched, "cuda" if cuda else "cpu",
                    f"{how} in {workers} worker processes ({'--pool_workers' if pool_workers else f'one per {kind}'})")


def machine(device: str = "cpu") -> Machine:
    """This machine's CPUs (the ones this process may run on) and, with a CUDA ``device``, its GPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:         # not Linux
        cpus = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if torch.device(device).type == "cuda" else 0
    return Machine(cpus=max(1, cpus), gpus=gpus)


def plan_for(specs: Sequence[ReferenceModelSpec], sample: torch.Tensor, device: str = "cpu", *,
             pool_chunk_size: int = 0, backend: str = "auto", pool_workers: int = 0,
             ray_address: str | None = None, trainer: ModelTrainer | None = None) -> PoolPlan:
    """:func:`plan_pool` for ``specs`` from the pool flags: one model per step where they cannot batch,
    with ``--pool_chunk_size 1``, or on CPU where a training step costs more than
    :data:`models.batched_training.CPU_STEP_FLOP_LIMIT` (unless ``--pool_chunk_size N`` asks), else chunks of ``--pool_chunk_size`` or of what fits in memory
    (:func:`models.batched_training.chunk_size`, from the device's total memory and one ``sample``
    image ``(C, H, W)``)."""
    reason = chunk_mode(specs[0], trainer, device) or (None if pool_chunk_size != 1 else "--pool_chunk_size 1")
    batch_size = TrainConfig.from_dict(specs[0].recipe).batch_size
    if reason is None and not pool_chunk_size and torch.device(device).type == "cpu":
        flops = step_flops(specs[0].build(), sample, batch_size)
        if flops > CPU_STEP_FLOP_LIMIT:
            reason = (f"a training step costs {flops / 1e9:.1f} GFLOP, where batching no longer pays on CPU; "
                      f"--pool_chunk_size N batches it")
    max_chunk = pool_chunk_size or (chunk_size(specs[0].build(), sample, batch_size, device) if reason is None
                                    else MAX_CHUNK)
    return plan_pool(len(specs), machine(device), max_chunk=max_chunk, one_per_step=reason,
                     backend=local_backend(backend, trainer), pool_workers=pool_workers, ray_address=ray_address,
                     device=device, formulation=formulation(specs[0].build()))


def local_backend(backend: str, trainer: ModelTrainer | None) -> str:
    """``backend``, except ``auto`` with a custom trainer that cannot be pickled (a closure, a lambda):
    ``here``, the only backend it can run on (worker processes receive it pickled)."""
    if backend != "auto" or trainer is None:
        return backend
    try:
        pickle.dumps(trainer)
    except (pickle.PicklingError, AttributeError, TypeError):
        return "here"
    return backend
