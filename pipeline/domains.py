"""The input domain of each experiment's target model."""
from __future__ import annotations

from datasets.domain import CIFAR10, DIGITS, Domain
from configuration.config import ExperimentConfig


def domain_for(config: ExperimentConfig) -> Domain:
    """Domain of the target trained on ``config.dataset`` (Stanford Dogs reads its breed list)."""
    if config.dataset == "digits":
        return DIGITS
    if config.dataset == "cifar10":
        return CIFAR10
    if config.dataset == "stanford_dogs":
        from datasets.stanford_dogs import stanford_dogs_domain_from_root

        image_size = config.model_input_image_size or 224
        return stanford_dogs_domain_from_root(config.data_root, image_size)
    raise ValueError(f"no domain known for data set {config.dataset!r}")
