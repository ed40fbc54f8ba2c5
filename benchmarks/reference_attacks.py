"""Peak memory and time of LiRA and RMIA on arrays at LiRA's scale.

    python benchmarks/reference_attacks.py [--samples 60000] [--models 64] [--classes 10]
                                           [--population 10000] [--before REV]

For ``lira_scores`` (online, offline) on float32 logits ``(K, N, C)`` and ``rmia_scores`` (offline,
online) on float32 probabilities of the same shape (plus ``Z`` population samples), prints the
wall time and the peak of memory allocated during the call (``tracemalloc``, which sees NumPy's
buffers), as a multiple of the reference array's size (target: at most ~4x). ``--before REV``
also loads ``attacks/reference.py`` as it was at git revision ``REV`` and prints the ratios
new / before (time: lower is better). Timings on a shared machine are noisy; the memory figures
are exact.
"""
from __future__ import annotations

import _bootstrap  # noqa: F401  (repository root on sys.path)

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

import attacks.reference as current


def load_revision(revision: str):
    """``attacks/reference.py`` at git ``revision`` as a module (its imports come from this tree)."""
    source = subprocess.run(["git", "show", f"{revision}:attacks/reference.py"], cwd=_bootstrap.ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "reference_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("reference_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arrays(n: int, k: int, c: int, z: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(k, n, c)) * 4).astype(np.float32)
    target = (rng.normal(size=(n, c)) * 4).astype(np.float32)
    z_logits = (rng.normal(size=(k, z, c)) * 4).astype(np.float32)
    keys = rng.random((k, n))
    member = keys < np.median(keys, axis=0, keepdims=True)          # K/2 IN per sample

    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)

    return {"target_logits": target, "labels": rng.integers(0, c, n), "reference_logits": logits,
            "reference_in": member, "target_probs": softmax(target), "reference_probs": softmax(logits),
            "z_probs": softmax(z_logits[0]), "z_labels": rng.integers(0, c, z), "z_reference_probs": softmax(z_logits)}


def measure(fn) -> tuple[float, int]:
    """Wall seconds and peak bytes allocated by ``fn()``."""
    tracemalloc.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak


def cases(module, a: dict) -> dict:
    lira = lambda online: lambda: module.lira_scores(a["target_logits"], a["labels"], a["reference_logits"],
                                                      a["reference_in"], online=online, fixed_variance=False)
    rmia = lambda online: lambda: module.rmia_scores(a["target_probs"], a["labels"], a["reference_probs"],
                                                      a["reference_in"], a["z_probs"], a["z_labels"],
                                                      a["z_reference_probs"], online=online)
    return {"lira online": lira(True), "lira offline": lira(False), "rmia offline": rmia(False),
            "rmia online": rmia(True)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--population", type=int, default=10_000, help="RMIA's population samples z")
    parser.add_argument("--before", default=None, help="git revision to compare with (e.g. 960e01e)")
    args = parser.parse_args(argv)
    a = arrays(args.samples, args.models, args.classes, args.population)
    size = a["reference_logits"].nbytes
    print(f"N={args.samples} K={args.models} C={args.classes} Z={args.population}; reference logits "
          f"{size / 1e6:.0f} MB (float32); peak = tracemalloc peak during the call")
    modules = {"after": current}
    if args.before:
        modules = {"before": load_revision(args.before), **modules}
    results = {}
    for label, module in modules.items():
        for name, fn in cases(module, a).items():
            seconds, peak = measure(fn)
            results[label, name] = (seconds, peak)
            print(f"{label:>6} {name:<13} {seconds:7.2f} s  peak {peak / 1e6:7.0f} MB = {peak / size:5.2f}x logits",
                  flush=True)
    if args.before:
        for name in cases(current, a):
            (t0, m0), (t1, m1) = results["before", name], results["after", name]
            print(f"ratio after/before {name:<13} time {t1 / t0:5.2f}  peak memory {m1 / m0:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
