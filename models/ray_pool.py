"""Training the reference pool through Ray: one model per task, on a local cluster or an existing one.

``ray.init`` starts a local cluster with the machine's CPUs unless ``address`` names a running one
(``--ray_address host:port``); the code path is the same. Each task asks for ``cpus_per_task``
CPUs and sets ``torch.set_num_threads`` to match, so concurrent tasks never oversubscribe the
cores; with CUDA each task also asks for a fraction of a GPU. Finished models come back to this
process as they complete (``on_done``), so an interrupted pool keeps every model that finished.
Ray is imported only here, and only when a pool is trained.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from models.reference_pool import ReferenceModelSpec, train_reference_model

log = logging.getLogger(__name__)
REPOSITORY_ROOT = str(Path(__file__).resolve().parents[1])
CONNECT_TIMEOUT_S = 5.0


def check_address(address: str) -> None:
    """One-line ValueError unless something listens at ``address`` (``host:port`` or ``ray://host:port``)."""
    if address == "auto":
        return
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray_address {address!r} is not host:port (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise ValueError(f"--ray_address {address}: no Ray cluster answers there ({error.strerror or error}); "
                         f"start one with `ray start --head --port {port}` or drop --ray_address") from None


@contextmanager
def ray_cluster(address: str | None = None, num_cpus: int | None = None) -> Iterator[dict]:
    """Connect to ``address`` or start a local cluster with ``num_cpus`` (default: all) CPUs.

    Yields the cluster's resources; shuts down what this call started (a connection to an
    existing cluster is closed, the cluster keeps running).
    """
    import ray

    if address:
        check_address(address)
    started = not ray.is_initialized()
    if started:
        paths = [REPOSITORY_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                       runtime_env=runtime_env)
        if address:
            ray.init(address=address, **options)
        else:
            # "local": always a new cluster of our own; without it Ray joins the latest cluster that
            # `ray start` left in /tmp/ray/ray_current_cluster (possibly dead, or someone else's)
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **options)
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()


def train_pool_with_ray(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                        rows: Sequence[np.ndarray], on_done: Callable[[ReferenceModelSpec, dict], None], *,
                        address: str | None = None, num_cpus: int | None = None, cpus_per_task: int = 1,
                        use_cuda: bool | None = None, train_fn: Callable | None = None) -> dict:
    """Train every spec as one Ray task; call ``on_done(spec, result)`` in this process as each finishes.

    Parameters
    ----------
    specs : models to train; rows[i] are the population rows of specs[i]
    images, labels : population tensors ``(P, C, H, W)``, ``(P,)`` (put in the object store once)
    address : existing cluster, or None for a local one with ``num_cpus`` CPUs
    cpus_per_task : CPUs (and torch threads) per task
    use_cuda : ask each task for a GPU fraction (default: when the cluster has GPUs)
    train_fn : a per-model training callable ``(spec, images, labels, rows) -> state_dict`` used
        instead of :func:`train_reference_model` (e.g. a user's recipe, :mod:`membership_audit.train_fn`)

    Returns
    -------
    dict with the cluster's CPUs and GPUs, concurrency and the GPU fraction per task.
    """
    import ray

    with ray_cluster(address, num_cpus) as resources:
        cpus, gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0.0))
        use_gpu = gpus > 0 if use_cuda is None else use_cuda and gpus > 0
        concurrency = max(1, min(len(specs), cpus // max(cpus_per_task, 1)))
        gpu_fraction = min(1.0, gpus / concurrency) if use_gpu else 0.0
        task = ray.remote(_train_task).options(num_cpus=cpus_per_task, num_gpus=gpu_fraction, max_retries=0)
        images_ref, labels_ref = ray.put(images), ray.put(labels)
        pending = {task.remote(spec, images_ref, labels_ref, rows[i], cpus_per_task, use_gpu, train_fn): spec
                   for i, spec in enumerate(specs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(done[0])
            on_done(spec, ray.get(done[0]))
        return {"cpus": cpus, "gpus": gpus, "concurrency": concurrency, "gpu_fraction": gpu_fraction}


def _train_task(spec, images, labels, rows, threads, use_gpu, train_fn=None):
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    if train_fn is not None:
        torch.set_num_threads(threads)
        start = time.perf_counter()
        state = train_fn(spec, images, labels, rows)
        return {"index": spec.index, "state_dict": state, "seconds": time.perf_counter() - start}
    return train_reference_model(spec, images, labels, rows, threads=threads, device=device)


def train_pool_sequentially(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                            rows: Sequence[np.ndarray], on_done: Callable[[ReferenceModelSpec, dict], None],
                            device: str = "cpu") -> None:
    """The same models one after another in this process (the benchmark's baseline)."""
    for spec, spec_rows in zip(specs, rows):
        on_done(spec, train_reference_model(spec, images, labels, spec_rows, device=device))
