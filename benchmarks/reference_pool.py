"""Wall time of the reference pool: through Ray with N workers vs one after another in one process.

    python benchmarks/reference_pool.py [--models 8] [--workers 2] [--epochs 60]

Prepares the default digits run (target and shadow trained or loaded), builds the run's reference
population and membership, then trains the same K models
  * through Ray: a local cluster with ``--workers`` CPUs, one model per task, one torch thread per
    task (start and shutdown of the cluster included, as a run pays them; also shown apart);
  * sequentially: in this process, torch using 1 thread, then ``--workers`` threads;
and prints the wall times and the ratios (sequential / Ray; > 1 means Ray is faster). Finally it
scores every model once over the population and z rows and prints the forward calls per sample per
model (target: exactly 1).
"""
from __future__ import annotations

import _bootstrap  # noqa: F401  (repository root on sys.path)

import argparse
import tempfile
import time

import numpy as np
import torch

from configuration.config import config_from_preset
from models.ray_pool import ray_cluster, train_pool_sequentially, train_pool_with_ray
from pipeline.stages.reference import build_population, cached_logits, reference_specs
from pipeline.run import prepare_run, score_target_sets
from pipeline.scores import ScoreCache
from models.reference_pool import balanced_membership
from utils.seeding import derive_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="reference models K (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs / sequential torch threads (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the digits preset's)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        config = config_from_preset("digits", results_dir=scratch, pretrained_dir=f"{scratch}/models",
                                    progress=False, figures=False, reference_models=args.models,
                                    **({"epochs": args.epochs} if args.epochs else {}))
        prepared = prepare_run(config)
        cache = ScoreCache(None)
        scorer = prepared.scorers(cache)["target"]
        members = scorer(prepared.data.splits["target_train"].subset(prepared.positions["target_members"]))
        target_scores = score_target_sets(prepared, scorer, members, scorer(prepared.original))
        population = build_population(prepared, target_scores)
        membership = balanced_membership(args.models, population.size, derive_seed(config.seed, "reference", "membership"))
        specs = reference_specs(config, prepared, population, membership)
        images = population.images[:population.size]
        labels = torch.as_tensor(population.labels[:population.size])
        rows = [np.flatnonzero(m) for m in membership]
        print(f"{args.models} small_cnn models, {config.epochs} epochs, population {population.size} rows "
              f"(about {int(np.mean([len(r) for r in rows]))} training samples per model)")

        start = time.perf_counter()
        with ray_cluster(num_cpus=args.workers):
            startup = time.perf_counter() - start
        startup_and_shutdown = time.perf_counter() - start
        trained_ray: dict = {}
        start = time.perf_counter()
        train_pool_with_ray(specs, images, labels, rows, lambda s, r: trained_ray.__setitem__(s.index, r),
                            num_cpus=args.workers)
        ray_seconds = time.perf_counter() - start

        print(f"Ray, {args.workers} workers (cluster start + stop included): {ray_seconds:.1f} s "
              f"(a bare cluster start took {startup:.1f} s, start + stop {startup_and_shutdown:.1f} s)")
        previous = torch.get_num_threads()
        for threads in sorted({1, args.workers}):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            train_pool_sequentially(specs, images, labels, rows, lambda s, r: None)
            sequential_seconds = time.perf_counter() - start
            print(f"sequential, one process, {threads} torch thread(s): {sequential_seconds:.1f} s; "
                  f"ratio sequential / Ray: {sequential_seconds / ray_seconds:.2f}")
        torch.set_num_threads(previous)

        forwards = []
        for index in range(args.models):
            model = specs[index].build()
            model.load_state_dict(trained_ray[index]["state_dict"])
            _, samples = cached_logits(model, f"bench{index}", population.images, prepared.device, cache)
            forwards.append(samples / len(population.labels))
        print(f"forward calls per sample per model: {sorted(set(forwards))} "
              f"({len(population.labels)} rows: population + z)")


if __name__ == "__main__":
    main()
