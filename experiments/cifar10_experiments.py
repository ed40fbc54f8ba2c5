"""Attacks on a target trained on CIFAR-10 (the paper's Table 1 runs: resnet18, efficient_net, salem_cnn_relu).

    python experiments/cifar10_experiments.py [--train] [--help]

Data is read from --data_root (see README, "Data sets"); checkpoints from pretrained_models/.
"""
import _bootstrap  # noqa: F401  (repository root on sys.path)

from pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main("cifar10"))
