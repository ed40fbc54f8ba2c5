"""Checks before any work: every flag, folder, device, set name, attack parameter and checkpoint.

:func:`check_before_work` runs before data is loaded or a model trained, so a bad value costs
seconds, not a training run; each problem is one ``ValueError``/``FileNotFoundError`` line that
names the flag.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from attacks import ATTACKS
from configuration.config import ExperimentConfig, domain_for, validate_config
from utils.files import DISK_FULL, DiskFullError
from utils.options import check_value
from utils.devices import resolve_device


def check_before_work(config: ExperimentConfig) -> None:
    """Raise on the first problem of ``config`` that would otherwise surface mid-run."""
    from pipeline.stages.models import check_checkpoints
    from pipeline.stages.reference import check_reference_pool

    validate_config(config)
    resolve_device(config.device)
    check_set_names(config.sets)
    if Path(config.data_root).exists() and not Path(config.data_root).is_dir():
        raise ValueError(f"--data_root {config.data_root} is a file, not a folder")
    check_folder(config.results_dir, "--results_dir")
    if config.cache_scores:
        cache = Path(config.results_dir) / "cache"
        if cache.exists() and not cache.is_dir():
            raise ValueError(f"the score cache {cache} is a file, not a folder; delete it or pass --no_cache")
    if check_checkpoints(config):
        check_folder(config.pretrained_dir, "--pretrained_dir")
    elif Path(config.pretrained_dir).exists() and not Path(config.pretrained_dir).is_dir():
        raise ValueError(f"--pretrained_dir {config.pretrained_dir} is a file, not a folder")
    check_attack_parameters(config)
    check_reference_pool(config)


def check_set_names(sets: Sequence[str]) -> None:
    """Every ``--sets`` name is a derived set or a registered data set (perturbation wrappers too)."""
    from datasets.perturbations import PERTURBATIONS
    from datasets.registry import dataset_names, derived_set_names, unwrap

    known = set(derived_set_names()) | set(dataset_names())
    for name in sets:
        wrapped = unwrap(name)
        inner_ok = wrapped and wrapped[0] in PERTURBATIONS and wrapped[1] in known
        if name not in known and not inner_ok:
            raise ValueError(f"--sets: unknown data set {name!r}; choose from {', '.join(sorted(known))} "
                             f"or wrap one in {', '.join(sorted(PERTURBATIONS))}(...)")


def check_attack_parameters(config: ExperimentConfig) -> None:
    """The options of the chosen attacks, as each declares them: ``--salem_k`` at most the target's
    number of classes (read from the domain, no images)."""
    declared = [o for name in config.attacks if name in ATTACKS for o in ATTACKS[name].params]
    if not declared:
        return
    classes = domain_for(config).num_classes
    for option in declared:
        check_value(option, config.attack_params.get(option.name, option.default), classes)


def check_folder(folder: str | Path, flag: str) -> None:
    """``folder`` is (or can be created as) a writable folder; else one line naming ``flag``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder} is a file, not a folder; pass a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {folder} cannot be created: {existing} is a file")
    if not writable(existing):
        raise ValueError(f"{flag} {folder} is read-only ({existing} cannot be written); pass a writable "
                         f"folder or fix its permissions")


def writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, since permission bits do not bind root)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
    except OSError as error:
        if error.errno in DISK_FULL:  # writable, but full: say so before any work
            raise DiskFullError(folder) from None
        return False
    os.close(handle)
    os.unlink(probe)
    return True
