"""What a calibration method declares, what a run asks for, and what a method is fitted on.

A method (:class:`CalibrationMethod`) declares its switch (``--llla``), its options (``--llla_impl``),
its result-file modifier and how it builds a predictor; :data:`calibration.factory.CALIBRATIONS`
lists the methods. A run asks for one :class:`CalibrationSpec` (method + option values) and fits it,
per model, on a :class:`CalibrationData`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from utils.options import Option


@dataclass(frozen=True)
class CalibrationSpec:
    """One run's calibration: a method of :data:`calibration.factory.CALIBRATIONS` and the values
    of its declared options (every one, defaults filled in)."""

    method: str = "softmax"
    params: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


@dataclass
class CalibrationData:
    """What one model's calibration may be fitted on: never the attack's member rows.

    Attributes
    ----------
    role : ``"target"`` or ``"shadow"``
    train_images, train_labels : the model's training split ``(N, C, H, W)``, ``(N,)``
    train_set : that split as the model was trained on it (the random training transform where
        the preset trains with one)
    attack_non_members : images and labels of the model's attack non-members (rows of its test split)
    held_out : images and labels of the test rows that are not attack rows (all test rows if none)
    batch_size : the run's batch size
    shape, normalize : input shape ``(C, H, W)`` and the domain's normalisation (for noise images)
    seed : the run's seed (methods derive their own from it)
    device : where to fit
    """

    role: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    train_set: Dataset
    attack_non_members: tuple[torch.Tensor, torch.Tensor]
    held_out: tuple[torch.Tensor, torch.Tensor]
    batch_size: int
    shape: tuple[int, ...]
    normalize: Callable[[torch.Tensor], torch.Tensor]
    seed: int
    device: torch.device


@dataclass(frozen=True)
class CalibrationMethod:
    """A calibration method as runs and the command line see it.

    Attributes
    ----------
    name : key of the method (``CalibrationSpec.method``)
    switch : the flag that chooses it (``--llla``); None for the default (plain softmax)
    params : its options (flags); their values reach :attr:`fit` and :attr:`modifier`
    modifier : option values -> the paper's result-file modifier (``"LLLA_"``)
    modifier_prefix : how every modifier of the method begins (``"LLLA"``), so a result-file stem
        splits into ``{arch}_{dataset}`` and its modifiers (:func:`utils.naming.split_stem`)
    predictor : keyword form, ``predictor(model, **kwargs)`` (:func:`calibration.build_predictor`)
    fit : ``fit(model, data, values)`` -> predictor, for one model of a run
    selected_by : options whose value alone chooses the method (``--temp_value``)
    check : option values -> raises ValueError naming the flag (optional)
    """

    name: str
    switch: Option | None
    params: tuple[Option, ...]
    modifier: Callable[[Mapping[str, Any]], str]
    predictor: Callable[..., nn.Module]
    fit: Callable[[nn.Module, CalibrationData, Mapping[str, Any]], nn.Module]
    selected_by: tuple[str, ...] = ()
    check: Callable[[Mapping[str, Any]], None] | None = None
    modifier_prefix: str = ""
