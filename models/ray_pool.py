"""The Ray backend's cluster: checking ``--ray_address``, connecting to it or starting a local cluster,
and the task that trains one chunk there (:class:`models.pool_executor.RayExecutor` submits it).

Faults: an address that does not answer as a Ray (gRPC) server is a one-line error within
:data:`CONNECT_TIMEOUT_S` seconds; a local cluster's processes are ended when the run ends, even by
SIGKILL (:mod:`models.ray_cleanup`). Ray's own start-up warnings stay in its session logs unless
``verbose``. Ray is imported only here, and only when it is used.
"""
from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from models.reference_pool import train_chunk

REPOSITORY_ROOT = str(Path(__file__).resolve().parents[1])
CONNECT_TIMEOUT_S = 5.0          # per step of the address check (TCP connect, then the HTTP/2 answer)
_guard = None                    # the watchdog of the local cluster this process started (models.ray_cleanup)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def check_address(address: str) -> None:
    """One-line ValueError unless a Ray head (a gRPC server) answers at ``address`` within ~10 s.

    ``host:port`` or ``ray://host:port``; ``auto`` is left to Ray. A port where something else
    listens (an HTTP server, a silent socket) fails here instead of hanging in ``ray.init``.
    """
    if address == "auto":
        return
    bare = address.split("://", 1)[-1]
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray_address {address!r} is not host:port (e.g. 127.0.0.1:6379)")
    fix = f"start one with `ray start --head --port {port}` or drop --ray_address"
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as connection:
            connection.settimeout(CONNECT_TIMEOUT_S)
            connection.sendall(HTTP2_PREFACE)
            answer = _read_exactly(connection, 9)
    except OSError as error:
        raise ValueError(f"--ray_address {address}: no Ray cluster answers there "
                         f"({getattr(error, 'strerror', None) or error or 'timed out'}); {fix}") from None
    if len(answer) < 9 or answer[3] != 0x04:   # a gRPC server's first frame is SETTINGS (type 4)
        raise ValueError(f"--ray_address {address}: something listens there but it is not a Ray cluster "
                         f"(no gRPC answer); {fix}")


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = connection.recv(size - len(data))
        if not part:
            break
        data += part
    return data


@contextmanager
def ray_cluster(address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> Iterator[dict]:
    """Connect to ``address`` or start a local cluster with ``num_cpus`` (default: all) CPUs.

    Yields the cluster's resources; shuts down what this call started (a connection to an existing
    cluster is closed, the cluster keeps running). Without ``verbose`` Ray logs only errors to
    this console (its warnings, e.g. the token-authentication notice, stay in its session logs).
    """
    import ray

    from models.ray_cleanup import ProcessGuard, descendants

    if address:
        check_address(address)
    global _guard
    started = not ray.is_initialized()
    if started:
        paths = [REPOSITORY_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
        options = dict(include_dashboard=False, log_to_driver=verbose, runtime_env=runtime_env,
                       logging_level=logging.INFO if verbose else logging.ERROR)
        if address:
            ray.init(address=address, **options)
        else:
            _guard = ProcessGuard(exclude=descendants(os.getpid()))   # older children are not Ray's
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **options)  # never another run's cluster
            _guard.add(descendants(os.getpid()))
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()
        if _guard is not None:
            _guard.close()
            _guard = None


def watch_new_processes() -> None:
    """Hand the local cluster's watchdog the processes started since (workers): they end with the run too."""
    if _guard is not None:
        from models.ray_cleanup import descendants

        _guard.add(descendants(os.getpid()))


def train_chunk_task(specs, images, labels, rows, use_gpu: bool, trainer, batch: bool) -> dict:
    """One chunk in a Ray worker (one thread; its GPU when it has one): :func:`train_chunk`'s outcome."""
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    return train_chunk(specs, images, labels, rows, device=device, threads=1, trainer=trainer, batch=batch)
