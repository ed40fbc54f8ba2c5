"""Cost of the evaluation stage relative to one plain forward pass over the evaluated samples.

    python benchmarks/attack_stage.py [--model small_cnn resnet18 ...] [--repeats 5]

For each model: prepare a default digits run (train or load target and shadow), then time
  * forward: one plain ``model(x)`` pass over every evaluated sample (members once, each
    non-member set once), no softmax, no bookkeeping;
  * evaluation: computing scores (no cache), applying every fitted attack and all metrics, for all
    sets, i.e. what a run does after fitting;
and print their ratio (median over alternating repeats; target: <= 1.2), the attack-fitting time on its own, and how many samples
passed through the model per evaluated sample (target: exactly 1).
"""
from __future__ import annotations

import _bootstrap  # noqa: F401  (repository root on sys.path)

import argparse
import tempfile
import time

import torch

from models import model_names
from configuration.config import config_from_preset
from engine.fitting import evaluate_sets, fit_attacks
from pipeline.run import prepare_run, score_target_sets
from models.inference import ForwardCounter, ScoreCache
from utils.seeding import derive_seed


def wall_time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_time(fn, repeats: int) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    return min(wall_time(fn) for _ in range(repeats))


def paired_times(first, second, repeats: int) -> tuple[float, float, float]:
    """Best times of ``first`` and ``second`` and the median ratio second/first, timed in
    alternation so both see the same machine load (after one warm-up call each)."""
    first(), second()
    pairs = [(wall_time(first), wall_time(second)) for _ in range(repeats)]
    ratios = sorted(b / a for a, b in pairs)
    return min(a for a, _ in pairs), min(b for _, b in pairs), ratios[len(ratios) // 2]


def benchmark(arch: str, repeats: int, workdir: str, epochs: int, batch_size: int) -> dict:
    config = config_from_preset("digits", model_arch=arch, epochs=epochs, results_dir=f"{workdir}/results",
                                pretrained_dir=f"{workdir}/checkpoints", progress=False, figures=False,
                                sets=("original", "permuted", "scaled", "no_normalization", "noise",
                                      "sample_photos"))
    prepared = prepare_run(config)
    target = prepared.models["target"].model
    members = prepared.data.splits["target_train"].subset(prepared.positions["target_members"])
    batches = [members.images] + [tensors.images for tensors in prepared.sets.values()]
    batches = [b.to(prepared.device) for b in batches]
    n_evaluated = sum(len(b) for b in batches)

    @torch.no_grad()
    def plain_forward():
        for images in batches:
            for start in range(0, len(images), batch_size):
                target(images[start:start + batch_size])

    def shadow_scores():
        scorer = prepared.scorers(ScoreCache(None))["shadow"]
        shadow = prepared.data.splits
        return (scorer(shadow["shadow_train"].subset(prepared.positions["shadow_members"])),
                scorer(shadow["shadow_test"].subset(prepared.positions["shadow_non_members"])))

    shadow_members, shadow_non_members = shadow_scores()
    fit = lambda: fit_attacks(config.attacks, shadow_members, shadow_non_members,  # noqa: E731
                              params=config.attack_params, seed=derive_seed(config.seed, "attacks"))
    attacks = fit()

    def evaluation():
        scorer = prepared.scorers(ScoreCache(None))["target"]
        member_scores = scorer(members)
        original_scores = scorer(prepared.original)
        scores = score_target_sets(prepared, scorer, member_scores, original_scores)
        return evaluate_sets(attacks, scores.pop("Members"), scores).results

    forward_s, evaluation_s, ratio = paired_times(plain_forward, evaluation, repeats)
    fit_s = best_time(fit, max(1, repeats // 2))
    counter = ForwardCounter(target)
    evaluation()
    counter.remove()
    return {"model": arch, "samples": n_evaluated, "forward_s": forward_s, "evaluation_s": evaluation_s,
            "ratio": ratio, "fit_s": fit_s,
            "forwards_per_sample": counter.samples / n_evaluated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["small_cnn"],
                        help=f"architectures to benchmark ({', '.join(model_names())}; 'all' for every one)")
    parser.add_argument("--repeats", type=int, default=21, help="alternating timed repeats per stage")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the benchmarked models")
    parser.add_argument("--batch_size", type=int, default=512, help="inference batch size (as the pipeline)")
    args = parser.parse_args()
    archs = model_names() if args.model == ["all"] else args.model
    print(f"{'model':<16}{'samples':>8}{'forward s':>11}{'eval s':>9}{'ratio':>7}{'fit s':>8}{'fwd/sample':>11}")
    with tempfile.TemporaryDirectory() as workdir:
        for arch in archs:
            row = benchmark(arch, args.repeats, workdir, args.epochs, args.batch_size)
            print(f"{row['model']:<16}{row['samples']:>8}{row['forward_s']:>11.4f}{row['evaluation_s']:>9.4f}"
                  f"{row['ratio']:>7.2f}{row['fit_s']:>8.3f}{row['forwards_per_sample']:>11.2f}")


if __name__ == "__main__":
    main()
