"""Wall time and peak memory of the reference pool, four ways, for the same models.

    python benchmarks/reference_pool.py                       # the suite below
    python benchmarks/reference_pool.py --case digits --models 8 [--epochs 60] [--workers 2]

Cases: ``digits`` (the default run's small_cnn on its real population, target and shadow trained
or loaded first) and ``salem`` (salem_cnn_relu on a seeded random 3x32x32 population of the same
size). The suite: digits K = 8 and K = 64, salem K = 8. Modes, each on the same specs and rows:
  (a) one model after another in this process (``train_model`` per model, 1 torch thread);
  (b) the previous pool: one Ray task per model, ``--workers`` CPUs (cluster start + stop included);
  (c) the batched pool in this process (chunks as big as memory allows), at 1 torch thread and at
      ``--workers`` threads (the ratios use the faster of the two);
  (d) the batched pool through Ray: one task per chunk on ``--workers`` CPUs (start + stop included);
  (e) what the package does by default: ``train_pool``'s own choice among (c), (d) and one model
      per step in this process, from a few timed steps (the probe included), at ``--workers`` threads.
Printed: seconds, ratios against (a) and (b) (> 1: faster), and the peak resident memory of this
process and all its descendants (Ray's processes included) during each mode, sampled every 0.2 s.
"""
from __future__ import annotations

import _bootstrap  # noqa: F401  (repository root on sys.path)

import argparse
import os
import tempfile
import threading
import time

import numpy as np
import torch

from models.batched_training import chunk_size
from models.reference_pool import ReferenceModelSpec, balanced_membership, digest_rows
from models.training import DEFAULT_LR, TrainConfig
from models.ray_cleanup import descendants
from models.ray_pool import train_pool, train_pool_per_model_with_ray, train_pool_sequentially


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
    from pipeline.stages.reference import build_population, population_membership, reference_specs
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
    membership = balanced_membership(models, rows, seed=1)
    recipe = TrainConfig(epochs=epochs or 5, batch_size=32, lr=DEFAULT_LR["salem_cnn_relu"], seed=3)
    specs = [ReferenceModelSpec(k, "salem_cnn_relu", 10, 3, 32, {**recipe.to_dict(), "seed": 10 + k}, 100 + k,
                                digest_rows(images), digest_rows(np.flatnonzero(membership[k])))
             for k in range(models)]
    return specs, images, labels, [np.flatnonzero(m) for m in membership]


def measure(case: str, models: int, epochs: int | None, workers: int, scratch: str) -> None:
    specs, images, labels, rows = (digits_case(models, epochs, scratch) if case == "digits"
                                   else salem_case(models, epochs))
    recipe = TrainConfig.from_dict(specs[0].recipe)
    max_chunk = chunk_size(specs[0].build(), images[0], recipe.batch_size)
    print(f"\n{case}: K={models} {specs[0].arch} models, {recipe.epochs} epochs, batch {recipe.batch_size}, "
          f"about {int(np.mean([len(r) for r in rows]))} training rows each; batched chunks of at most {max_chunk}")
    ignore = lambda spec, result: None  # noqa: E731
    batched_here = lambda: train_pool(specs, images, labels, rows, ignore, max_chunk=max_chunk,  # noqa: E731
                                      workers=1, use_ray=False)
    chosen = {}
    modes = {
        "(a) one after another, 1 process": (1, lambda: train_pool_sequentially(specs, images, labels, rows, ignore)),
        f"(b) Ray, one model per task, {workers} workers": (1, lambda: train_pool_per_model_with_ray(
            specs, images, labels, rows, ignore, num_cpus=workers)),
        "(c) batched, 1 process, 1 thread": (1, batched_here),
        f"(c) batched, 1 process, {workers} threads": (workers, batched_here),
        f"(d) batched through Ray, {workers} workers": (1, lambda: train_pool(
            specs, images, labels, rows, ignore, max_chunk=max_chunk, workers=workers, use_ray=True)),
        "(e) default: the package's choice": (workers, lambda: chosen.update(train_pool(
            specs, images, labels, rows, ignore, max_chunk=max_chunk, workers=workers))),
    }
    seconds = {}
    previous = torch.get_num_threads()
    try:
        for name, (threads, run) in modes.items():
            torch.set_num_threads(threads)
            with PeakMemory() as memory:
                start = time.perf_counter()
                run()
                seconds[name] = time.perf_counter() - start
            print(f"  {name:<42} {seconds[name]:7.1f} s   peak {memory.peak / 2**20:6.0f} MiB", flush=True)
    finally:
        torch.set_num_threads(previous)
    a, b, c1, c2, d, e = seconds.values()
    c = min(c1, c2)
    estimate = chosen.get("estimate") or {}
    how = f"{chosen.get('mode')}, {'batched' if chosen.get('batched') else 'one model per step'}"
    guesses = ", ".join(f"{key[:-2].replace('_', ' ')} {value:.0f} s" for key, value in estimate.items() if key.endswith("_s"))
    print(f"  (e) chose {how}" + (f" (estimated: {guesses})" if estimate else ""))
    print(f"  ratios: a/c {a / c:.2f} (batching, one process)   b/d {b / d:.2f} (chunked vs per-model Ray)   "
          f"c/d {c / d:.2f} (Ray vs one process, batched)   a/d {a / d:.2f}   min(c,d)/e {min(c, d) / e:.2f} (default vs best)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("digits", "salem"), help="one case (default: the suite)")
    parser.add_argument("--models", type=int, default=8, help="K for --case (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: digits preset's 60; salem 5)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        suite = [(args.case, args.models)] if args.case else [("digits", 8), ("digits", 64), ("salem", 8)]
        for case, models in suite:
            measure(case, models, args.epochs, args.workers, scratch)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
