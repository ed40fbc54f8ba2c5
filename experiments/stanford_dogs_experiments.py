"""Attacks on a target trained on Stanford Dogs (the paper's resnet50 runs; add --pretrained for ImageNet initialisation).

    python experiments/stanford_dogs_experiments.py [--train] [--help]

Data is read from --data_root (see README, "Data sets"); checkpoints from pretrained_models/.
"""
import _bootstrap  # noqa: F401  (repository root on sys.path)

from pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main("stanford_dogs"))
