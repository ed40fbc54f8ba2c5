"""RMIA (Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024) as one
attack: online / offline is an option (``rmia`` is offline, ``rmia_online`` the named online
variant); ``a``, ``gamma`` and the signal ``Pr(x|theta)`` (softmax or the RMIA authors' Taylor
soft-margin, its temperature fixed or chosen on the shadow model) are flags.

Scores are those of :func:`attacks.reference.rmia_scores` (every x and z from the same number of IN
and OUT models) on :func:`attacks.rmia_signal.rmia_signal` of the logits: by default the float64
softmax (a float32 softmax saturates at 1.0 on most samples of an overconfident network, leaving
RMIA nothing to compare); the threshold is fitted on the shadow model.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from attacks.base import MODELS_PER_ROW, AttackSpec, NotFittedError, ReferenceAttack
from attacks.reference import ReferenceSignals, _check_rmia_options, _rmia
from attacks.rmia_signal import SIGNALS, rmia_signal
from utils.options import Option

AUTO = "auto"


def temperature(text: Any) -> float | str:
    """``--rmia_temperature``'s value: ``"auto"`` or a finite positive number."""
    if isinstance(text, str) and text.strip().lower() == AUTO:
        return AUTO
    value = float(text)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"--rmia_temperature must be a finite positive number or auto, got {text}")
    return value


class RmiaAttack(ReferenceAttack):
    """RMIA on reference signals.

    Parameters
    ----------
    online : bool
    a : offline correction, in [0, 1]; gamma : likelihood-ratio threshold, finite and > 0
    signal : ``"softmax"`` (default) or ``"taylor_soft_margin"`` (:mod:`attacks.rmia_signal`; the RMIA
        authors' CIFAR-10 setting: temperature 2, gamma 2, ``taylor_m=0.6, taylor_n=4``)
    temperature : float or ``"auto"``
        The signal's temperature (default ``"auto"``: at T = 1 the float64 softmax of this package's
        overconfident networks ranks rows by difficulty; docs/attack_api.md has the measurements).
        ``"auto"``: chosen in :meth:`fit` among
        :data:`TEMPERATURES`, the one whose scores best separate the *shadow* model's members from its
        non-members (AUROC); the target's membership is never used.
    taylor_m, taylor_n : the Taylor soft-margin's margin and number of terms
    trim : fraction cut from each end of a row's reference signals before averaging them
        (``scipy.stats.trim_mean``; the RMIA authors' code: 0.2; 0: the plain mean)
    models_per_row : int or None
        A fixed number of reference models per sample (see :func:`attacks.reference.lira_scores`).
    seed : seeds the model subsets of rows with more models than the others
    """

    name = "RMIA"
    TEMPERATURES = (1.0, 2.0, 4.0, 8.0)

    def __init__(self, online: bool = False, a: float = 0.3, gamma: float = 1.0, signal: str = "softmax",
                 temperature: float | str = AUTO, taylor_m: float = 0.6, taylor_n: int = 4,
                 models_per_row: int | None = None, seed: int = 0, trim: float = 0.0):
        if temperature != AUTO:
            rmia_signal(np.zeros((1, 2)), np.zeros(1, dtype=int), signal, temperature, taylor_m, taylor_n)
        _check_rmia_options(a, gamma, trim)
        self.online, self.a, self.gamma, self.trim = online, a, gamma, trim
        self.signal, self.temperature, self.taylor_m, self.taylor_n = signal, temperature, taylor_m, taylor_n
        self.models_per_row, self.seed = models_per_row, seed

    def score(self, signals: ReferenceSignals) -> np.ndarray:
        if self.temperature != AUTO:
            return self._scores(signals, self.temperature)
        if not hasattr(self, "temperature_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: temperature='auto' is chosen in "
                                 f"{self.fit_call}; call it first")
        return self._scores(signals, self.temperature_)

    def fit(self, signals: ReferenceSignals, member_rows: Any, non_member_rows: Any) -> "RmiaAttack":
        """The threshold (and an ``"auto"`` temperature) from the shadow model's signals."""
        self.__dict__.pop("temperature_", None)
        if self.temperature == AUTO:
            from attacks.roc import roc_curve_points

            members, non_members = np.asarray(member_rows), np.asarray(non_member_rows)
            is_member = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
            aurocs = {}
            for candidate in self.TEMPERATURES:
                scores = self._scores(signals, candidate)
                aurocs[candidate] = roc_curve_points(is_member, np.r_[scores[members], scores[non_members]]).auroc
            self.shadow_auroc_by_temperature_ = aurocs
            self.temperature_ = max(aurocs, key=aurocs.get)
        return super().fit(signals, member_rows, non_member_rows)

    def _scores(self, signals: ReferenceSignals, temperature: float) -> np.ndarray:
        def signal(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
            return rmia_signal(logits, labels, self.signal, temperature, self.taylor_m, self.taylor_n)

        z_in = signals.population_in
        z_member = np.zeros(signals.population_reference_logits.shape[:2], dtype=bool) if z_in is None else z_in
        key = ("rmia", self.signal, temperature, self.taylor_m, self.taylor_n)
        p_x, p_refs, p_z, p_z_refs = signals.derived(key, signal)
        return _rmia(p_x, p_refs, signals.reference_in, p_z, p_z_refs, z_member, self.a, self.gamma, self.online,
                     signals.outside_population, z_in is None, self.models_per_row, self.seed, self.trim)


RMIA = AttackSpec(
    "rmia", RmiaAttack, paper=False, uses_labels=True, needs_reference_models=True, needs_population=True,
    seeded=True,
    fixed=(("online", False),),
    params=(Option("rmia_a", "RMIA's offline correction Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2 (default "
                             "{default})", default=0.3, type=float, keyword="a", minimum=0.0, maximum=1.0),
            Option("rmia_gamma", "RMIA's likelihood-ratio threshold gamma (default {default})", default=1.0,
                   type=float, keyword="gamma", above=0.0),
            Option("rmia_signal", "RMIA's Pr(x|theta): softmax (float64) or taylor_soft_margin (the RMIA "
                                  "authors' signal; default {default})", default="softmax", type=str,
                   choices=SIGNALS, keyword="signal"),
            Option("rmia_temperature", "RMIA's signal temperature, a positive number or auto (chosen among 1, 2, "
                                       "4, 8 on the shadow model's members and non-members; default {default})",
                   default=AUTO, type=temperature, keyword="temperature"),
            Option("rmia_taylor_m", "the Taylor soft-margin's margin m (default {default})", default=0.6,
                   type=float, keyword="taylor_m"),
            Option("rmia_taylor_n", "the Taylor soft-margin's number of terms n (default {default}; an odd n keeps "
                                    "the signal positive)", default=4, type=int, minimum=2, keyword="taylor_n"),
            Option("rmia_trim", "fraction of RMIA's reference signals cut from each end before averaging them per "
                                "sample (scipy.stats.trim_mean; the RMIA authors' code uses 0.2; default {default})",
                   default=0.0, type=float, keyword="trim", minimum=0.0, maximum=0.49),
            MODELS_PER_ROW))
RMIA_ONLINE = RMIA.variant("rmia_online", "RMIA Online", online=True)
