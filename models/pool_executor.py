"""Training the reference pool: one executor interface, three backends, one plan.

An executor trains chunks of models (:func:`models.reference_pool.train_chunk`): :meth:`submit`
hands it a chunk (it may start at once), :meth:`collect` calls ``on_model`` in this process for each
model as soon as it is back (so an interrupted or failing pool keeps every finished model) and
returns the failures, :meth:`close` ends what is still running. Backends:

- :class:`InProcessExecutor`: the chunks one after another in this process, at :meth:`collect`;
- :class:`ProcessExecutor`: worker processes of this machine (:mod:`models.pool_worker`, one torch
  thread each, or one GPU each), started at once and fed their chunks (chunk ``i`` to worker
  ``i % workers``, so the assignment never depends on timing); a worker that dies fails only its
  own models; no worker outlives the run, even one killed with SIGKILL;
- :class:`RayExecutor`: one Ray task per chunk on ``--ray_address`` or a local cluster
  (:mod:`models.ray_pool`); a task whose worker dies is retried once.

:class:`PoolTraining` runs a :class:`models.pool_plan.PoolPlan` on its executor; training ahead of
the reference stage is the same object with its chunks submitted early
(:func:`pipeline.stages.reference.start_pool_ahead`). :func:`train_pool` plans and trains in one call.
"""
from __future__ import annotations

import io
import os
import pickle
import queue
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from models.pool_plan import PoolPlan, local_backend, machine, plan_pool
from models.reference_pool import ModelTrainer, ReferenceModelSpec, chunk_mode, error_summary, train_chunk

WORKER = str(Path(__file__).with_name("pool_worker.py"))
ModelCallback = Callable[[dict], None]
Failure = tuple[list[int], str]


class PoolTrainingError(ValueError):
    """Models of the pool could not be trained (one line naming them); finished models are saved.
    A ValueError, so the scripts print it as one line (exit 2) like other errors of a run.
    ``failures``: ``(model indices, reason)`` pairs, so that failures of several parts combine."""

    def __init__(self, failures: list[Failure]):
        self.failures = sorted(failures, key=lambda failure: min(failure[0], default=-1))   # in model order, not the order noticed
        parts = [f"reference model(s) {', '.join(map(str, models))}: {reason}" for models, reason in self.failures]
        super().__init__("; ".join(parts) + " (the other models are saved; rerun to train the missing ones)")


class InProcessExecutor:
    """Chunks trained in this process (its torch threads), one after another, at :meth:`collect`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: str = "cpu",
                 trainer: ModelTrainer | None = None):
        self.images, self.labels, self.device, self.trainer = images, labels, device, trainer
        self.workers, self._chunks = 1, []

    def submit(self, specs: Sequence[ReferenceModelSpec], rows: Sequence[np.ndarray], batch: bool) -> None:
        self._chunks.append((list(specs), list(rows), batch))

    def collect(self, on_model: ModelCallback, on_progress: Callable[[float], None] | None = None
                ) -> tuple[list[Failure], list[bool]]:
        failures, batched = [], []
        while self._chunks:
            specs, rows, batch = self._chunks.pop(0)
            outcome = train_chunk(specs, self.images, self.labels, rows, device=self.device, trainer=self.trainer,
                                  on_progress=on_progress, batch=batch, on_result=on_model)
            _record_chunk(outcome, failures, batched)
        return failures, batched

    def close(self) -> None:
        self._chunks.clear()


@dataclass
class _Worker:
    process: subprocess.Popen
    results: Connection
    outbox: queue.Queue
    models: list[int] = field(default_factory=list)    # submitted, not yet back
    chunks: int = 0                                     # submitted, not yet done


class ProcessExecutor:
    """``workers`` local worker processes (:mod:`models.pool_worker`), started at once; on CPU each
    trains on one torch thread, with CUDA worker ``i`` on GPU ``i``. The population is sent to each
    once; chunk ``i`` goes to worker ``i % workers``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, workers: int, device: str = "cpu",
                 trainer: ModelTrainer | None = None):
        self.workers, self._next = workers, 0
        cuda = torch.device(device).type == "cuda"
        paths = [p for p in dict.fromkeys(sys.path) if p and Path(p).is_dir()]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
        self._workers = []
        for slot in range(workers):
            setup = {"images": images, "labels": labels, "device": f"cuda:{slot}" if cuda else "cpu",
                     "threads": None if cuda else 1, "trainer": trainer}
            self._workers.append(self._start(setup, env))

    @staticmethod
    def _start(setup: dict, env: dict) -> _Worker:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        process = subprocess.Popen([sys.executable, WORKER, str(task_read), str(result_write), str(os.getpid())],
                                   pass_fds=(task_read, result_write), env=env, stdin=subprocess.DEVNULL)
        os.close(task_read), os.close(result_write)
        tasks, outbox = Connection(task_write, readable=False), queue.Queue()

        def send() -> None:              # a thread: the run goes on while a worker starts and reads
            while (item := outbox.get()) is not None:
                try:
                    tasks.send_bytes(item)
                except OSError:          # the worker is gone: collect() names its models
                    break
            tasks.close()

        threading.Thread(target=send, daemon=True, name="pool-worker-feed").start()
        outbox.put(pickle.dumps(setup))
        return _Worker(process, Connection(result_read, writable=False), outbox)

    def submit(self, specs: Sequence[ReferenceModelSpec], rows: Sequence[np.ndarray], batch: bool) -> None:
        worker = self._workers[self._next % self.workers]
        self._next += 1
        worker.models += [spec.index for spec in specs]
        worker.chunks += 1
        worker.outbox.put(pickle.dumps({"specs": list(specs), "rows": list(rows), "batch": batch}))

    def collect(self, on_model: ModelCallback, on_progress: Callable[[float], None] | None = None
                ) -> tuple[list[Failure], list[bool]]:
        failures, batched = [], []
        while busy := {w.results: w for w in self._workers if w.chunks}:
            for connection in wait(list(busy)):
                worker = busy[connection]
                try:
                    message = torch.load(io.BytesIO(connection.recv_bytes()), weights_only=True)
                except (EOFError, OSError):
                    code = _exit_code(worker.process)
                    failures.append((worker.models, f"its worker process ended without an answer (exit code {code})"))
                    worker.models, worker.chunks = [], 0
                    continue
                if "model" in message:
                    worker.models.remove(message["model"]["index"])
                    on_model(message["model"])
                    if on_progress:
                        on_progress(1.0)
                else:
                    worker.chunks -= 1
                    _record_chunk(message, failures, batched)
                    if message["failed"]:
                        worker.models = [m for m in worker.models if m not in message["failed"]["models"]]
        return failures, batched

    def close(self) -> None:
        """End every worker now (each has delivered its chunks, or the run stops early)."""
        for worker in self._workers:
            worker.outbox.put(None)
            worker.process.kill()
            worker.process.wait()
            worker.results.close()
        self._workers = []


def _record_chunk(outcome: dict, failures: list[Failure], batched: list[bool]) -> None:
    """A finished chunk's outcome (``failed``: None or its models and reason; ``batched``) into what
    :meth:`collect` returns."""
    if outcome["failed"]:
        failures.append((outcome["failed"]["models"], outcome["failed"]["reason"]))
    batched.append(outcome["batched"])


def _exit_code(process: subprocess.Popen) -> int | None:
    try:
        return process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


def serve(task_fd: int, result_fd: int) -> None:
    """A worker's loop (:mod:`models.pool_worker`): read the setup, then train each chunk it is sent,
    sending each model back as it finishes and then the chunk's end (failure, batched)."""
    tasks, results = Connection(task_fd, writable=False), Connection(result_fd, readable=False)
    setup = pickle.loads(tasks.recv_bytes())
    if setup["threads"]:
        torch.set_num_threads(setup["threads"])

    def send(message: dict) -> None:
        buffer = io.BytesIO()
        torch.save(message, buffer)
        results.send_bytes(buffer.getvalue())

    while True:
        try:
            task = pickle.loads(tasks.recv_bytes())
        except EOFError:
            return
        back = []
        try:
            outcome = train_chunk(task["specs"], setup["images"], setup["labels"], task["rows"],
                                  device=setup["device"], threads=setup["threads"], trainer=setup["trainer"],
                                  batch=task["batch"], on_result=lambda r: (back.append(r["index"]), send({"model": r})))
        except Exception as error:   # anything else: one reason naming the chunk's other models, the run goes on
            outcome = {"batched": task["batch"], "failed": {
                "models": [s.index for s in task["specs"] if s.index not in back], "reason": error_summary(error)}}
        send({"failed": outcome["failed"], "batched": outcome["batched"]})


class RayExecutor:
    """One Ray task per chunk (one CPU, or one GPU, each) on ``address`` or a local cluster of
    ``num_cpus`` CPUs; the cluster is connected (or started) here and shut down by :meth:`close`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, address: str | None = None,
                 num_cpus: int | None = None, device: str = "cpu", trainer: ModelTrainer | None = None,
                 verbose: bool = False):
        import ray

        from models.ray_pool import ray_cluster, train_chunk_task

        self._stack = ExitStack()
        resources = self._stack.enter_context(ray_cluster(address, num_cpus, verbose))
        self.cpus, self.gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0.0))
        self.use_gpu = self.gpus > 0 and torch.device(device).type == "cuda"
        self.workers = max(1, int(self.gpus)) if self.use_gpu else max(1, self.cpus)
        self._task = ray.remote(train_chunk_task).options(num_cpus=1, num_gpus=1 if self.use_gpu else 0,
                                                          max_retries=1, retry_exceptions=False)
        self._images, self._labels = ray.put(images), ray.put(labels)
        self.trainer, self._pending = trainer, {}

    def submit(self, specs: Sequence[ReferenceModelSpec], rows: Sequence[np.ndarray], batch: bool) -> None:
        reference = self._task.remote(list(specs), self._images, self._labels, list(rows), self.use_gpu,
                                      self.trainer, batch)
        self._pending[reference] = [spec.index for spec in specs]

    def collect(self, on_model: ModelCallback, on_progress: Callable[[float], None] | None = None
                ) -> tuple[list[Failure], list[bool]]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        from models.ray_pool import watch_new_processes

        failures, batched = [], []
        while self._pending:
            done, _ = ray.wait(list(self._pending), num_returns=1, timeout=2.0)
            if not done:
                watch_new_processes()     # workers started since end with the run too
                continue
            models = self._pending.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except RayTaskError as error:   # the task raised (not retried: it would raise again)
                cause = error.cause if getattr(error, "cause", None) is not None else error
                failures.append((models, f"its task raised {error_summary(cause)}"))
                continue
            except RayError as error:       # the worker died (Ray retried the task once)
                failures.append((models, f"its Ray worker failed twice ({type(error).__name__})"))
                continue
            for result in outcome["results"]:
                on_model(result)
                if on_progress:
                    on_progress(1.0)
            _record_chunk(outcome, failures, batched)
        return failures, batched

    def close(self) -> None:
        self._pending.clear()
        self._stack.close()


class PoolTraining:
    """A plan running on its executor: :meth:`submit` the models to train (in the plan's chunks; the
    executor may start them at once), :meth:`collect` them (``on_done(spec, result)`` per model as it
    is back), :meth:`close`. Also usable as a context manager (closes on exit)."""

    def __init__(self, plan: PoolPlan, images: torch.Tensor, labels: torch.Tensor,
                 trainer: ModelTrainer | None = None, address: str | None = None, verbose: bool = False):
        self.plan, self.specs = plan, []
        if plan.backend == "here":
            self.executor = InProcessExecutor(images, labels, plan.device, trainer)
        elif plan.backend == "processes":
            self.executor = ProcessExecutor(images, labels, plan.workers or 1, plan.device, trainer)
        else:
            self.executor = RayExecutor(images, labels, address, None if address else plan.workers, plan.device,
                                        trainer, verbose)
        self.chunks: list[int] = []

    def submit(self, specs: Sequence[ReferenceModelSpec], rows: Sequence[np.ndarray]) -> None:
        for chunk in self.plan.chunks(len(specs), self.executor.workers):
            self.executor.submit([specs[i] for i in chunk], [rows[i] for i in chunk], self.plan.batched)
            self.chunks.append(len(chunk))
        self.specs += list(specs)

    def collect(self, on_done: Callable[[ReferenceModelSpec, dict], None], progress: bool = False) -> dict:
        """Wait for every submitted model; how it ran (the plan, workers, chunk sizes, batched).

        Raises
        ------
        PoolTrainingError
            Some models failed (NaN loss, out of memory, a worker that died); the others were delivered.
        """
        by_index = {spec.index: spec for spec in self.specs}
        bar = pool_progress(len(self.specs), progress)
        try:
            failures, batched = self.executor.collect(lambda result: on_done(by_index[result["index"]], result),
                                                      _bounded_update(bar))
        finally:
            bar.close()
        if failures:
            raise PoolTrainingError(failures)
        return {**self.plan.describe(), "mode": self.plan.backend, "workers": self.executor.workers,
                "chunks": list(self.chunks), "batched": bool(batched) and all(batched)}

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> PoolTraining:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def train_pool(specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
               rows: Sequence[np.ndarray], on_done: Callable[[ReferenceModelSpec, dict], None], *,
               max_chunk: int = 64, address: str | None = None, workers: int | None = None, device: str = "cpu",
               progress: bool = False, trainer: ModelTrainer | None = None, backend: str = "auto",
               use_ray: bool | None = None, verbose: bool = False, batch: bool = True) -> dict:
    """Plan (:func:`models.pool_plan.plan_pool` on this machine) and train ``specs`` (``rows[i]``: the
    population rows of ``specs[i]``); ``on_done(spec, result)`` runs in this process for each model
    as it is back. ``use_ray`` True/False is ``backend`` ``ray``/``here``; ``workers`` is
    ``--pool_workers``; ``batch`` False trains one model per step. Returns how it ran
    (:meth:`PoolTraining.collect`); raises :class:`PoolTrainingError` naming failed models."""
    if not specs:
        return {"mode": "here", "workers": 1, "chunks": [], "batched": batch}
    if use_ray is not None:
        backend = "ray" if use_ray else "here"
    reason = chunk_mode(specs[0], trainer, device) or (None if batch else "--pool_chunk_size 1")
    plan = plan_pool(len(specs), machine(device), max_chunk=max_chunk, one_per_step=reason,
                     backend=local_backend(backend, trainer),
                     pool_workers=workers or 0, ray_address=address, device=device)
    with PoolTraining(plan, images, labels, trainer, address, verbose) as training:
        training.submit(specs, rows)
        return training.collect(on_done, progress)


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
