"""One chunk of the reference pool trained in a spawned process while this one goes on.

The reference models train only on the training population (the target's and the shadow's splits),
so they need nothing of the non-member sets. A run starts part of the pool in a second process as
soon as the target and shadow exist (:func:`pipeline.stages.reference.start_pool_ahead`) and builds
the non-member sets meanwhile (the Fake set's GAN trains on one thread). On two or more cores two
one-thread processes also beat one process on two threads for these small batched steps.

The child is a plain ``multiprocessing`` spawn process with one torch thread: it trains its chunk
(:func:`models.reference_pool.train_chunk`) and sends the outcome (state dicts, or the failure) back
through a pipe (as ``torch.save`` bytes, read back with ``weights_only=True``). It ends itself
within a second when the run that started it dies (even by SIGKILL), and
:meth:`BackgroundChunk.close` kills it when the run stops early.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
import time
from typing import Sequence

import numpy as np
import torch

from models.reference_pool import ReferenceModelSpec, error_summary, train_chunk


class BackgroundChunk:
    """``specs`` trained on ``images[rows[i]]`` in a spawned one-thread process, started at once; as one
    batched chunk, or (``batch`` False) one model per step."""

    def __init__(self, specs: Sequence[ReferenceModelSpec], images: torch.Tensor, labels: torch.Tensor,
                 rows: Sequence[np.ndarray], batch: bool = True):
        self.specs, self.batch = list(specs), batch
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_train_in_child, daemon=True, name="reference-pool-chunk",
                                        args=(send, os.getpid(), self.specs, images, labels, list(rows), batch))
        self.started = time.perf_counter()
        self._process.start()
        send.close()
        self._outcome: dict | None = None

    def ready(self) -> bool:
        """Whether the answer is there (:meth:`outcome` then returns at once)."""
        return self._outcome is not None or self._receive.poll()

    def outcome(self) -> dict:
        """Wait for the chunk: :func:`train_chunk`'s outcome, plus ``"seconds"`` since the start.
        A child that died without an answer is a failure naming every model of the chunk."""
        if self._outcome is None:
            try:
                outcome = torch.load(io.BytesIO(self._receive.recv_bytes()), weights_only=True)
            except (EOFError, OSError):
                code = self._process.exitcode if not self._process.is_alive() else None
                outcome = _failure(self.specs, self.batch,
                                   f"the background training process ended without an answer (exit code {code})")
            outcome["seconds"] = round(time.perf_counter() - self.started, 2)
            self._outcome = outcome
            self.close()
        return self._outcome

    def close(self) -> None:
        """End the child (a no-op once it has answered and exited)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)
        self._receive.close()


def _train_in_child(send, parent: int, specs, images, labels, rows, batch: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the run's to handle: it closes this process
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    try:
        outcome = train_chunk(specs, images, labels, rows, threads=1, batch=batch)
    except Exception as error:   # anything else: one reason naming the chunk, the run goes on
        outcome = _failure(specs, batch, error_summary(error))
    buffer = io.BytesIO()        # bytes, not torch's shared-memory pickling: this process exits after sending
    torch.save(outcome, buffer)
    send.send_bytes(buffer.getvalue())
    send.close()


def _failure(specs, batch: bool, reason: str) -> dict:
    """:func:`train_chunk`'s outcome for a chunk none of whose models came back."""
    return {"results": [], "batched": batch, "failed": {"models": [spec.index for spec in specs], "reason": reason}}


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
