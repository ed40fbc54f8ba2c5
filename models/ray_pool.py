"""Training the reference pool in chunks: in this process, or one Ray task per chunk.

:func:`train_pool` splits the models to train into chunks (:func:`plan_chunks`): as many chunks as
workers (CPUs of the cluster, one torch thread each; with CUDA one chunk per GPU), more when a chunk
would exceed the models that fit in memory at once. Each chunk trains as one batched model
(:func:`models.reference_pool.train_chunk`); models that train one per step (``batch`` False, i.e.
``--pool_chunk_size 1``, a custom trainer, BatchNorm or dropout) go one per chunk, so each is
saved as it finishes, in this process or as its own Ray task.
Batching and Ray are used only where they pay: with ``--ray_address`` the chunks go to that cluster;
otherwise :func:`estimate_pool_seconds` (a few timed steps of the real chunks at this process's
threads and at one thread per worker, plus :data:`RAY_START_S` for a cluster, and of one model
alone) picks the fastest of batched here, batched on a local cluster and one model per step here
(on 2 CPU cores batching pays for the digits CNN, not for salem_cnn_relu on 32x32 inputs). Models
that can only train one per step use a local cluster when there are at least two workers and two
tasks' worth of :data:`MIN_MODELS_PER_TASK` models. Otherwise no cluster starts.
Finished chunks come back as they complete (``on_done`` per model), so an interrupted or failing
pool keeps every model that finished. Ray is imported only here, and only when it is used.

Faults: an address that does not answer as a Ray (gRPC) server is a one-line error within
:data:`CONNECT_TIMEOUT_S` seconds; a task whose worker dies is retried once, then the models of that
chunk are named in one line (:class:`PoolTrainingError`) after the other chunks finished; a local
cluster's processes are ended when the run ends, even by SIGKILL (:mod:`models.ray_cleanup`).
Ray's own start-up warnings stay in its session logs unless ``verbose``.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from models.batched_training import train_stacked
from models.reference_pool import (ModelTrainer, ReferenceModelSpec, chunk_mode, error_summary, train_chunk,
                                   train_reference_model)
from models.training import TrainConfig

log = logging.getLogger(__name__)
REPOSITORY_ROOT = str(Path(__file__).resolve().parents[1])
CONNECT_TIMEOUT_S = 5.0          # per step of the address check (TCP connect, then the HTTP/2 answer)
MIN_MODELS_PER_TASK = 8          # one-per-step models: a local cluster needs at least 2 tasks' worth of this many
RAY_START_S = 10.0               # a local cluster's fixed cost on 2 cores: ray.init ~3.6 s, workers (torch
                                 # import) ~3.1 s, shutdown ~1.9 s (benchmarks/reference_pool.py)
PROBE_STEPS = 3                  # timed batched steps per estimate (after one untimed warm-up step)
SWITCH_MARGIN = 1.3              # the automatic choice leaves batched-here only for a way this much faster:
                                 # near-ties would make the same config train differently run to run
MIN_BATCHED = 4                  # fewer models than this train one per step (a stacked step costs more)
_guard = None                    # the watchdog of the local cluster this process started (models.ray_cleanup)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


class PoolTrainingError(ValueError):
    """Models of the pool could not be trained (one line naming them); finished models are saved.
    A ValueError, so the scripts print it as one line (exit 2) like other errors of a run.
    ``failures``: ``(model indices, reason)`` pairs, so that failures of several parts combine."""

    def __init__(self, failures: list[tuple[list[int], str]]):
        self.failures = list(failures)
        parts = [f"reference model(s) {', '.join(map(str, models))}: {reason}" for models, reason in self.failures]
        super().__init__("; ".join(parts) + " (the other models are saved; rerun to train the missing ones)")


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


def plan_chunks(count: int, workers: int, max_chunk: int) -> list[list[int]]:
    """Positions ``0..count-1`` in contiguous chunks: ``workers`` of them (fewer if there are fewer
    models), more when a chunk would hold more than ``max_chunk``; sizes differ by at most one."""
    if count == 0:
        return []
    chunks = min(count, max(workers, -(-count // max(max_chunk, 1))))
    bounds = np.linspace(0, count, chunks + 1).round().astype(int)
    return [list(range(bounds[i], bounds[i + 1])) for i in range(chunks)]


def pool_progress(total: int, enabled: bool, initial: int = 0) -> tqdm:
    """A models-done bar with ETA; in a log that is not a terminal it writes a line at most every 30 s."""
    stream = sys.stderr
    terminal = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(total=total, initial=initial, desc="reference models", unit="model", disable=not enabled,
                mininterval=0.5 if terminal else 30.0, maxinterval=60.0 if terminal else 300.0,
                bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]", file=stream, leave=not terminal)


def _bounded_update(bar: tqdm) -> Callable[[float], None]:
    """``bar.update`` for fractional progress that never passes ``bar.total`` (float sums of epoch
    fractions can; tqdm then warns and shows a negative ETA)."""
    def update(amount: float) -> None:
        bar.update(max(0.0, min(amount, bar.total - bar.n)))
    return update


def train_pool(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
               rows: Sequence[np.ndarray], on_done: Callable[[ReferenceModelSpec, dict], None], *,
               max_chunk: int, address: str | None = None, workers: int | None = None,
               device: str = "cpu", progress: bool = False, trainer: ModelTrainer | None = None,
               use_ray: bool | None = None, verbose: bool = False, batch: bool = True,
               allow_ray: bool = True) -> dict:
    """Train ``specs`` (``rows[i]``: the population rows of ``specs[i]``) in chunks; ``on_done(spec,
    result)`` runs in this process for each model as its chunk finishes.

    Parameters
    ----------
    max_chunk : models per batched step at most (memory)
    address : an existing Ray cluster (``--ray_address``); None: local
    workers : local workers (default: this machine's CPUs; one per GPU with CUDA)
    use_ray : force a local Ray cluster (True), or batched chunks in this process (False); None: the
        fastest of batched here, batched on a local cluster (when ``allow_ray``) and one model per step
        here, from :func:`estimate_pool_seconds` (models trained one per step: module docstring)
    trainer : a per-model training function (no batching); None: the package's recipe
    batch : train each chunk as one batched model (where the architecture allows); False: one model
        per step inside each chunk

    Returns
    -------
    dict: how it ran (``"ray"`` or ``"local"``), workers, chunk sizes, and whether chunks were batched.

    Raises
    ------
    PoolTrainingError
        Some models failed (NaN loss, out of memory, a worker that died twice); the others are saved.
    """
    cuda = torch.device(device).type == "cuda"
    if workers is None:
        workers = max(1, torch.cuda.device_count()) if cuda else (os.cpu_count() or 1)
    if not specs:
        return {"mode": "local", "workers": 1, "chunks": [], "batched": batch}
    if not (batch and chunk_mode(specs[0], trainer) is None):
        max_chunk = 1          # one model per step: one model per chunk (or task), each saved as it finishes
    estimate = None
    if address:
        use_ray = True
    elif max_chunk > 1 and use_ray is None:
        # batched here, unless a local cluster (when allowed) or one model per step is predicted
        # SWITCH_MARGIN times faster by the timed steps; chunks of fewer than MIN_BATCHED: one per step
        choice = "one_per_step_s"
        if len(specs) >= MIN_BATCHED:
            estimate = estimate_pool_seconds(specs, images, labels, rows, workers, max_chunk, device,
                                             with_ray=allow_ray and workers >= 2)
            choice = pick_fastest(estimate)
            log.info("reference pool: estimated %s: %s", ", ".join(
                f"{key[:-2].replace('_', ' ')} {value:.0f} s" for key, value in estimate.items() if key.endswith("_s")),
                choice[:-2].replace("_", " "))
        use_ray = choice == "ray_s"
        if choice == "one_per_step_s":
            batch, max_chunk = False, 1
    elif use_ray is None:        # one model per step: heavy models, where one task per model pays
        use_ray = workers >= 2 and len(specs) >= 2 * MIN_MODELS_PER_TASK
    local_chunks = plan_chunks(len(specs), 1, max_chunk)    # in this process: the biggest chunks that fit
    bar = pool_progress(len(specs), progress)
    try:
        if use_ray:
            info = _train_with_ray(specs, images, labels, rows, on_done, bar, max_chunk=max_chunk, address=address,
                                   num_cpus=None if address else workers, use_cuda=cuda, trainer=trainer,
                                   verbose=verbose, batch=batch)
        else:
            info = _train_here(specs, images, labels, rows, on_done, bar, local_chunks, device, trainer, batch)
    finally:
        bar.close()
    if estimate is not None:
        info["estimate"] = estimate
    return info


def pick_fastest(estimate: dict) -> str:
    """``"here_s"`` (batched in this process) unless another ``*_s`` estimate is :data:`SWITCH_MARGIN`
    times faster; then the fastest."""
    others = {key: value for key, value in estimate.items() if key.endswith("_s") and key != "here_s"}
    fastest = min(others, key=others.get, default=None)
    if fastest is not None and others[fastest] * SWITCH_MARGIN < estimate["here_s"]:
        return fastest
    return "here_s"


def estimate_pool_seconds(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                          rows: Sequence[np.ndarray], workers: int, max_chunk: int, device: str = "cpu",
                          with_ray: bool = True) -> dict:
    """Predicted wall time of the pool three ways, from :data:`PROBE_STEPS` timed steps of each (about a
    second): ``here_s`` batched in this process (the chunks of ``plan_chunks(K, 1, max_chunk)`` with
    this process's threads), ``one_per_step_s`` one model after another in this process, and (with
    ``with_ray``) ``ray_s`` batched on a local cluster of ``workers`` one-thread workers, plus
    :data:`RAY_START_S`. A step's cost is measured on the real models and rows; the count of steps is
    the epochs times the batches of the largest training set.
    """
    from models.reference_pool import torch_threads

    recipe = TrainConfig.from_dict(specs[0].recipe)
    steps = recipe.epochs * -(-max(len(r) for r in rows) // recipe.batch_size)

    def chunk_seconds(chunks: list[list[int]]) -> dict[int, float]:   # each size probed once
        return {size: steps * step_seconds(specs, images, labels, rows, size, device)
                for size in sorted({len(chunk) for chunk in chunks})}

    here_chunks = plan_chunks(len(specs), 1, max_chunk)
    here = chunk_seconds(here_chunks)
    estimate = {"here_s": sum(here[len(chunk)] for chunk in here_chunks),
                "one_per_step_s": len(specs) * steps * single_step_seconds(specs[0], images, labels, rows[0], device)}
    if with_ray:
        ray_chunks = plan_chunks(len(specs), workers, max_chunk)
        with torch_threads(1):
            per_chunk = chunk_seconds(ray_chunks)
        waves = -(-len(ray_chunks) // workers)                # chunks run ``workers`` at a time
        estimate["ray_s"] = RAY_START_S + waves * max(per_chunk.values())
    return {**{key: round(value, 2) for key, value in estimate.items()}, "steps": steps, "workers": workers}


def single_step_seconds(spec: ReferenceModelSpec, images: torch.Tensor, labels: torch.Tensor, rows: np.ndarray,
                        device: str = "cpu") -> float:
    """Seconds of one training step of one model alone (the package's recipe: Adam, cross-entropy):
    the median of :data:`PROBE_STEPS` timed steps after an untimed first one."""
    from models.training import make_loss, make_optimizer

    recipe = TrainConfig.from_dict(spec.recipe)
    model = spec.build().to(device).train()
    optimizer, loss_fn = make_optimizer(model, recipe), make_loss(recipe)
    batch = torch.as_tensor(np.asarray(rows)[:recipe.batch_size], dtype=torch.long)
    x, y = images[batch].to(device), labels[batch].to(device)
    durations = []
    for _ in range(PROBE_STEPS + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        durations.append(time.perf_counter() - start)
    return float(np.median(durations[1:]))


def step_seconds(specs, images, labels, rows, size: int, device: str = "cpu") -> float:
    """Seconds of one batched training step of a chunk of ``size`` models like ``specs[0]``: the
    median of :data:`PROBE_STEPS` timed steps after an untimed first one."""
    recipe = TrainConfig.from_dict(specs[0].recipe)
    chosen = [specs[i % len(specs)] for i in range(size)]
    short = [np.asarray(rows[i % len(rows)])[:(PROBE_STEPS + 1) * recipe.batch_size] for i in range(size)]
    stamps = [time.perf_counter()]
    train_stacked([spec.build() for spec in chosen], [replace(recipe, epochs=1)] * size, images, labels, short,
                  device, on_step=lambda: stamps.append(time.perf_counter()))
    durations = np.diff(stamps)
    return float(np.median(durations[1:] if len(durations) > 1 else durations))


def _train_here(specs, images, labels, rows, on_done, bar, chunks, device, trainer, batch) -> dict:
    """Every chunk in this process, one after another (torch uses this process's threads)."""
    failures, batched = [], []
    by_index = {spec.index: spec for spec in specs}
    for chunk in chunks:
        chunk_specs = [specs[i] for i in chunk]
        done_before = bar.n
        outcome = train_chunk(chunk_specs, images, labels, [rows[i] for i in chunk], device=device,
                              trainer=trainer, on_progress=_bounded_update(bar), batch=batch,
                              on_result=lambda result: on_done(by_index[result["index"]], result))
        if outcome["failed"]:
            failures.append((outcome["failed"]["models"], outcome["failed"]["reason"]))
        settle = done_before + len(outcome["results"]) - bar.n   # whole models (epochs report fractions)
        if abs(settle) > 1e-9:
            bar.update(settle)
        batched.append(outcome["batched"])
    _raise_failures(failures)
    return {"mode": "local", "workers": 1, "chunks": [len(c) for c in chunks], "batched": all(batched)}


def _train_with_ray(specs, images, labels, rows, on_done, bar, *, max_chunk, address, num_cpus, use_cuda,
                    trainer, verbose, batch) -> dict:
    import ray
    from ray.exceptions import RayError, RayTaskError

    from models.ray_cleanup import descendants

    with ray_cluster(address, num_cpus, verbose) as resources:
        cpus, gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0.0))
        use_gpu = gpus > 0 and use_cuda is not False
        workers = max(1, int(gpus)) if use_gpu else max(1, cpus)
        chunks = plan_chunks(len(specs), workers, max_chunk)
        task = ray.remote(_train_chunk_task).options(num_cpus=1, num_gpus=1 if use_gpu else 0,
                                                     max_retries=1, retry_exceptions=False)
        images_ref, labels_ref = ray.put(images), ray.put(labels)
        pending = {task.remote([specs[i] for i in chunk], images_ref, labels_ref, [rows[i] for i in chunk],
                               use_gpu, trainer, batch): chunk for chunk in chunks}
        failures, batched = [], []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            if not done:
                if _guard is not None:
                    _guard.add(descendants(os.getpid()))   # workers started since: they end with the run too
                continue
            chunk = pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except RayTaskError as error:   # the task raised (not retried: it would raise again)
                cause = error.cause if getattr(error, "cause", None) is not None else error
                failures.append(([specs[i].index for i in chunk], f"its task raised {error_summary(cause)}"))
                continue
            except RayError as error:       # the worker died (Ray retried the task once)
                failures.append(([specs[i].index for i in chunk],
                                 f"its Ray worker failed twice ({type(error).__name__})"))
                continue
            _deliver(outcome, specs, on_done, failures)
            bar.update(len(outcome["results"]))
            batched.append(outcome["batched"])
        _raise_failures(failures)
        return {"mode": "ray", "cpus": cpus, "gpus": gpus, "workers": workers, "chunks": [len(c) for c in chunks],
                "batched": all(batched), "address": address or "local"}


def _deliver(outcome: dict, specs, on_done, failures: list) -> None:
    by_index = {spec.index: spec for spec in specs}
    for result in outcome["results"]:
        on_done(by_index[result["index"]], result)
    if outcome["failed"]:
        failures.append((outcome["failed"]["models"], outcome["failed"]["reason"]))


def _raise_failures(failures: list) -> None:
    if failures:
        raise PoolTrainingError(failures)


def _train_chunk_task(specs, images, labels, rows, use_gpu, trainer, batch):
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    return train_chunk(specs, images, labels, rows, device=device, threads=1, trainer=trainer, batch=batch)


def train_pool_per_model_with_ray(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                                  rows: Sequence[np.ndarray], on_done: Callable[[ReferenceModelSpec, dict], None],
                                  num_cpus: int | None = None) -> None:
    """The previous pool (one model per Ray task, one thread each): the benchmark's baseline (b)."""
    import ray

    with ray_cluster(None, num_cpus):
        task = ray.remote(train_reference_model).options(num_cpus=1)
        images_ref, labels_ref = ray.put(images), ray.put(labels)
        pending = {task.remote(spec, images_ref, labels_ref, rows[i], 1): spec for i, spec in enumerate(specs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            on_done(pending.pop(done[0]), ray.get(done[0]))


def train_pool_sequentially(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                            rows: Sequence[np.ndarray], on_done: Callable[[ReferenceModelSpec, dict], None],
                            device: str = "cpu") -> None:
    """The same models one after another, each alone, in this process (the benchmark's baseline (a))."""
    for spec, spec_rows in zip(specs, rows):
        on_done(spec, train_reference_model(spec, images, labels, spec_rows, device=device))
