"""Every name a run writes: result-file stems, the paper's modifiers, file suffixes, CSV columns.

>>> result_stem("resnet18", "cifar10", training_modifier(label_smoothing_factor=0.0083))
'resnet18_cifar10_LS_0.0083_'
>>> training_modifier(weight_decay=3e-4) + temperature_modifier(10)
'L2_0.0003_temp_10.0_calib_'
>>> temperature_modifier(None)
'temp_calib_'
>>> column_name("Salem", "AUROC")
'Salem Attack AUROC'
"""
from __future__ import annotations

import math
import re

ATTACK_SUFFIX = "attack_results.csv"
PERFORMANCE_SUFFIX = "performance_results.csv"
SPLITS_SUFFIX = "splits.npz"
MANIFEST_SUFFIX = "manifest.json"
HELD_OUT_SUFFIX = "held_out_fpr_results.csv"
INTERVALS_SUFFIX = "intervals.csv"
SEEDS_SUFFIX = "seeds_aggregate.csv"
ATTACK_SEPARATOR = " Attack "  # CSV columns are "{attack}{ATTACK_SEPARATOR}{metric}"

# Calibration modifiers of LLLA per implementation (laplace-torch's never overwrites the paper's files)
LLLA_MODIFIERS = {"paper": "LLLA_", "laplace": "LLLA_laplace_"}
# How the training modifiers begin; the calibration methods declare theirs (CalibrationMethod.modifier_prefix).
TRAINING_PREFIXES = ("LS_", "L2_", "DP_")


def format_number(value: float) -> str:
    """How a number appears in result-file names: ``10 -> "10.0"``, ``3e-4 -> "0.0003"``.

    Python's ``str`` of the float, exactly as the paper's scripts format their command-line floats
    (``f"{args.weight_decay}"``): ``LS_0.0083_``, ``temp_10.0_calib_``, ``L2_1e-05_``.
    """
    return str(float(value))


def result_stem(arch: str, dataset: str, modifiers: str) -> str:
    """The paper's file-name stem, e.g. ``resnet18_cifar10_LS_0.0083_``."""
    return f"{arch}_{dataset}_{modifiers}"


def attack_csv_name(stem: str) -> str:
    """``{stem}attack_results.csv``."""
    return f"{stem}{ATTACK_SUFFIX}"


def performance_csv_name(stem: str) -> str:
    """``{stem}performance_results.csv``."""
    return f"{stem}{PERFORMANCE_SUFFIX}"


def splits_name(stem: str) -> str:
    """``{stem}splits.npz``."""
    return f"{stem}{SPLITS_SUFFIX}"


def manifest_name(stem: str) -> str:
    """``{stem}manifest.json``."""
    return f"{stem}{MANIFEST_SUFFIX}"


def held_out_csv_name(stem: str) -> str:
    """``{stem}held_out_fpr_results.csv``."""
    return f"{stem}{HELD_OUT_SUFFIX}"


def intervals_csv_name(stem: str) -> str:
    """``{stem}intervals.csv``: bootstrap 95% intervals of the headline metrics."""
    return f"{stem}{INTERVALS_SUFFIX}"


def seeds_csv_name(stem: str) -> str:
    """``{stem}seeds_aggregate.csv``: mean and standard deviation of each cell across ``--seeds``."""
    return f"{stem}{SEEDS_SUFFIX}"


def training_modifier(label_smoothing_factor: float | None = None, weight_decay: float = 0.0,
                      dp_epsilon: float | None = None) -> str:
    """Modifier of the training variant (names checkpoints): ``LS_{f}_``, ``L2_{wd}_``, ``DP_{eps}_``, or ``""``.

    A run's file modifier is this, then its calibration's (``LLLA_``, ``temp_{T}_calib_``; see
    :class:`calibration.spec.CalibrationMethod`). A single part is named exactly as the paper's
    scripts name it (numbers as ``str`` of the float); the paper keeps only the first part of an
    ``if/elif`` chain (so its LS + temperature run overwrites its LS run's files), here every set
    part is kept, in the order LS, L2, DP-SGD (``--dp_epsilon``), calibration: ``LS_0.1_L2_0.001_temp_calib_``.
    """
    parts = []
    if label_smoothing_factor:
        parts.append(f"LS_{format_number(_non_negative('label_smoothing_factor', label_smoothing_factor))}_")
    if weight_decay:
        parts.append(f"L2_{format_number(_non_negative('weight_decay', weight_decay))}_")
    if dp_epsilon is not None:
        parts.append(f"DP_{format_number(_non_negative('dp_epsilon', dp_epsilon))}_")
    return "".join(parts)


def temperature_modifier(temperature: float | str | None) -> str:
    """The paper's result-file modifier of a temperature run: ``temp_{T}_calib_`` for a given
    ``T`` (``--temp_value``; a string verbatim), ``temp_calib_`` when ``T`` is fitted (``None``)."""
    if temperature is None:
        return "temp_calib_"
    if not isinstance(temperature, str):
        temperature = _non_negative("temperature", temperature)
        if temperature == 0:
            raise ValueError("temperature must be positive, got 0")
    value = temperature if isinstance(temperature, str) else format_number(temperature)
    return f"temp_{value}_calib_"


def llla_modifier(implementation: str = "paper") -> str:
    """``LLLA_`` (the paper's implementation) or ``LLLA_laplace_`` (laplace-torch's)."""
    if implementation not in LLLA_MODIFIERS:
        raise ValueError(f"unknown llla_impl {implementation!r}; valid: {', '.join(LLLA_MODIFIERS)}")
    return LLLA_MODIFIERS[implementation]



def split_stem(stem: str, calibration_prefixes: tuple[str, ...] = ()) -> tuple[str, str]:
    """``"resnet18_cifar10_LS_0.0083_"`` -> ``("resnet18_cifar10", "LS_0.0083")``; no modifier: ``"baseline"``.

    A modifier part begins with one of :data:`TRAINING_PREFIXES` or ``calibration_prefixes`` (the
    calibration methods' own, :func:`calibration.factory.modifier_prefixes`); whatever precedes the
    first one is ``{arch}_{dataset}``.
    """
    stem = stem.rstrip("_")
    prefixes = TRAINING_PREFIXES + tuple(calibration_prefixes)
    parts = re.compile(r"_(?=(?:%s))" % "|".join(map(re.escape, prefixes))).split(stem, maxsplit=1)
    if len(parts) == 2 and parts[0]:
        return parts[0], parts[1]
    return stem, "baseline"


def column_name(attack_name: str, metric: str) -> str:
    """CSV column of one metric, e.g. ``column_name("Salem", "AUROC") == "Salem Attack AUROC"``."""
    return f"{attack_name}{ATTACK_SEPARATOR}{metric}"


def held_out_suffix(level: float) -> str:
    """How a held-out FPR level ends a column name: ``"@1%HeldOutFPR"``, ``"@0.1%HeldOutFPR"``."""
    return f"@{level * 100:g}%HeldOutFPR"


def held_out_column(attack_name: str, level: float) -> str:
    """Held-out FPR table column: ``"LiRA FPR@1%HeldOutFPR"``."""
    return f"{attack_name} FPR{held_out_suffix(level)}"


def held_out_top_column(attack_name: str) -> str:
    """``"LiRA AtOrAboveHeldOutMax"``: the fraction scoring at least the top held-out score (ties count)."""
    return f"{attack_name} AtOrAboveHeldOutMax"


def split_column(column: str) -> tuple[str, str] | None:
    """``"Salem Attack AUROC"`` -> ``("Salem", "AUROC")``; ``None`` for a column of no attack."""
    attack, separator, metric = str(column).partition(ATTACK_SEPARATOR)
    return (attack, metric) if separator else None


def attack_names_of(columns) -> list[str]:
    """Attack names of ``{attack} Attack {metric}`` columns, in first-seen order."""
    return list(dict.fromkeys(parts[0] for parts in map(split_column, columns) if parts))


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {value}")
    return value
