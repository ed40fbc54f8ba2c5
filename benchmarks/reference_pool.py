"""Wall time, models per second and peak memory of the reference pool per backend, for the same models.

    python benchmarks/reference_pool.py                       # the suite below
    python benchmarks/reference_pool.py --case digits --models 8 [--epochs 60] [--workers 2] [--no_ray]

Cases: ``digits`` (the default run's small_cnn on its real population, target and shadow trained
or loaded first) and ``salem`` (salem_cnn_relu on a seeded random 3x32x32 population of the same
size). The suite: digits K = 8 and K = 64, salem K = 8. Backends (:mod:`models.pool_executor`), each
on the same specs and rows: one model per step in this process; batched in this process at 1 and at
``--workers`` threads; batched in ``--workers`` worker processes (the default plan on that many
CPUs); batched on a local Ray cluster of ``--workers`` CPUs (start and stop included). Then the
batched step alone at one thread, in the pool's formulation and under vmap: milliseconds per
model-step, GFLOP/s (torch's flop counter) and their share of the core's fp32 matmul peak.
Printed: seconds, models per second and the peak resident memory of this process and all its
descendants during each, sampled every 0.2 s.
"""
from __future__ import annotations

import _bootstrap  # noqa: F401  (repository root on sys.path)

import argparse
import os
import tempfile
import threading
import time
from dataclasses import replace

import numpy as np
import torch

from models.batched_training import chunk_size, formulation, step_flops, train_stacked
from models.pool_executor import train_pool
from models.reference_pool import ReferenceModelSpec, digest_rows, population_membership
from models.training import DEFAULT_LR, TrainConfig
from models.ray_cleanup import descendants


class PeakMemory:
    """Peak RSS (bytes) of this process plus its descendants while the block runs."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            total = 0
            for pid in [os.getpid(), *descendants(os.getpid())]:
                try:
                    with open(f"/proc/{pid}/statm") as handle:
                        total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                except OSError:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def digits_case(models: int, epochs: int | None, scratch: str):
    from configuration.config import config_from_preset
    from pipeline.stages.reference import build_population, reference_specs
    from pipeline.run import prepare_run, score_target_sets
    from models.inference import ScoreCache
    from utils.seeding import derive_seed

    config = config_from_preset("digits", results_dir=scratch, pretrained_dir=f"{scratch}/models", progress=False,
                                figures=False, reference_models=models, **({"epochs": epochs} if epochs else {}))
    prepared = prepare_run(config)
    scorer = prepared.scorers(ScoreCache(None))["target"]
    members = scorer(prepared.data.splits["target_train"].subset(prepared.positions["target_members"]))
    population = build_population(prepared, score_target_sets(prepared, scorer, members, scorer(prepared.original)))
    membership = population_membership(models, population.size, population.train_rows,
                                       derive_seed(config.seed, "reference", "membership"))
    specs = reference_specs(config, prepared.data.domain, population, membership)
    return (specs, population.images[:population.size], torch.as_tensor(population.labels[:population.size]),
            [np.flatnonzero(m) for m in membership])


def salem_case(models: int, epochs: int | None, rows: int = 800):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(rows, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (rows,), generator=generator)
    membership = population_membership(models, rows, rows // 2, seed=1)   # the papers' layout, as every pool
    recipe = TrainConfig(epochs=epochs or 5, batch_size=32, lr=DEFAULT_LR["salem_cnn_relu"], seed=3)
    specs = [ReferenceModelSpec(k, "salem_cnn_relu", 10, 3, 32, {**recipe.to_dict(), "seed": 10 + k}, 100 + k,
                                digest_rows(images), digest_rows(np.flatnonzero(membership[k])))
             for k in range(models)]
    return specs, images, labels, [np.flatnonzero(m) for m in membership]


def batched_step_rate(specs, images, labels, rows, steps: int = 20, grouped: bool = True) -> tuple[float, float]:
    """Seconds per model-step and GFLOP/s of the batched step at this process's threads (median step;
    ``grouped`` False: under vmap)."""
    recipe = TrainConfig.from_dict(specs[0].recipe)
    short = [np.asarray(r)[:steps * recipe.batch_size] for r in rows]
    stamps = [time.perf_counter()]
    train_stacked([spec.build() for spec in specs], [replace(TrainConfig.from_dict(s.recipe), epochs=1) for s in specs],
                  images, labels, short, on_step=lambda: stamps.append(time.perf_counter()), grouped=grouped)
    per_step = float(np.median(np.diff(stamps)[1:])) / len(specs)
    return per_step, step_flops(specs[0].build(), images[0], recipe.batch_size) / per_step / 1e9


def core_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    """This core's fp32 GFLOP/s on a large matrix product at one thread (best of ``repeats``): the
    ceiling a training step's arithmetic can approach."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def measure(case: str, models: int, epochs: int | None, workers: int, scratch: str, ray: bool) -> None:
    specs, images, labels, rows = (digits_case(models, epochs, scratch) if case == "digits"
                                   else salem_case(models, epochs))
    recipe = TrainConfig.from_dict(specs[0].recipe)
    max_chunk = chunk_size(specs[0].build(), images[0], recipe.batch_size)
    print(f"\n{case}: K={models} {specs[0].arch} models, {recipe.epochs} epochs, batch {recipe.batch_size}, "
          f"about {int(np.mean([len(r) for r in rows]))} training rows each; batched chunks of at most {max_chunk}")
    ignore = lambda spec, result: None  # noqa: E731

    def pool(backend: str, pool_workers: int | None = None, batch: bool = True):
        return lambda: train_pool(specs, images, labels, rows, ignore, max_chunk=max_chunk, backend=backend,
                                  workers=pool_workers, batch=batch)

    modes = {"one model per step, this process": (1, pool("here", batch=False)),
             "here (batched), 1 thread": (1, pool("here")),
             f"here (batched), {workers} threads": (workers, pool("here")),
             f"processes (batched), {workers} workers": (1, pool("processes", workers))}
    if ray:
        modes[f"ray (batched), local cluster of {workers}"] = (1, pool("ray", workers))
    previous = torch.get_num_threads()
    try:
        for name, (threads, run) in modes.items():
            torch.set_num_threads(threads)
            with PeakMemory() as memory:
                start = time.perf_counter()
                run()
                seconds = time.perf_counter() - start
            print(f"  {name:<40} {seconds:7.1f} s  {models / seconds:6.2f} models/s   "
                  f"peak {memory.peak / 2**20:6.0f} MiB", flush=True)
        torch.set_num_threads(1)
        peak = core_peak_gflops()
        for grouped, name in ((True, formulation(specs[0].build())), (False, "vmap")):
            per_step, gflops = batched_step_rate(specs[:max_chunk], images, labels, rows[:max_chunk], grouped=grouped)
            print(f"  batched step at 1 thread ({name}): {per_step * 1e3:.2f} ms per model-step, {gflops:.1f} GFLOP/s, "
                  f"{gflops / peak:.0%} of this core's fp32 matmul peak ({peak:.0f} GFLOP/s)", flush=True)
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("digits", "salem"), help="one case (default: the suite)")
    parser.add_argument("--models", type=int, default=8, help="K for --case (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes and Ray CPUs (default 2)")
    parser.add_argument("--no_ray", action="store_true", help="skip the local Ray cluster")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: digits preset's 60; salem 5)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        suite = [(args.case, args.models)] if args.case else [("digits", 8), ("digits", 64), ("salem", 8)]
        for case, models in suite:
            measure(case, models, args.epochs, args.workers, scratch, not args.no_ray)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
