"""The embedded default: attacks on a small CNN trained on scikit-learn's digits (no download).

    python experiments/digits_experiments.py [--help]
"""
import _bootstrap  # noqa: F401  (repository root on sys.path)

from pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main("digits"))
