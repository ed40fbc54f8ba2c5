"""RMIA's per-model signal ``Pr(x | theta)`` from logits, one model at a time (memory ~ one model's logits).

- ``"softmax"`` (the package's default): the float64 softmax probability of the label,
  ``exp(z_y / T) / sum_j exp(z_j / T)``; at ``T = 1`` exactly :func:`attacks.reference.softmax64`'s.
- ``"taylor_soft_margin"``: the RMIA authors' signal (Zarifzadeh et al., ICML 2024; ML Privacy
  Meter's ``TaylorSoftMargin``): with ``x = z / T`` and ``t_n(v) = sum_{i < n} v^i / i!``,
  ``t_n(x_y - m) / (t_n(x_y - m) + sum_{j != y} t_n(x_j))``. The authors' CIFAR-10 setting is
  ``T = 2, m = 0.6, n = 4``. An even ``n`` truncates after an odd power, which is negative for
  very negative logits, so the signal can be negative or above 1; RMIA then compares its signed
  ratios as the authors' code does (:func:`attacks.reference._signed_counts`); an odd ``n`` keeps
  the polynomial positive.
"""
from __future__ import annotations

from math import factorial
from typing import Any

import numpy as np

from attacks.validation import to_numpy

SIGNALS = ("softmax", "taylor_soft_margin")


def rmia_signal(logits: Any, labels: Any, signal: str = "softmax", temperature: float = 1.0,
                taylor_m: float = 0.6, taylor_n: int = 4) -> np.ndarray:
    """The signal of each row's label: logits ``(..., N, C)``, labels ``(N,)`` -> float64 ``(..., N)``."""
    if signal not in SIGNALS:
        raise ValueError(f"RMIA signal: unknown {signal!r}; valid: {', '.join(SIGNALS)}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"RMIA temperature: must be a finite positive number, got {temperature}")
    if signal == "taylor_soft_margin" and (int(taylor_n) != taylor_n or taylor_n < 2):
        raise ValueError(f"RMIA taylor_n: must be an integer >= 2, got {taylor_n}")
    z = to_numpy(logits, "logits")
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim == 2:
        return _one(z, y, signal, temperature, taylor_m, int(taylor_n))
    return np.stack([_one(z[k], y, signal, temperature, taylor_m, int(taylor_n)) for k in range(len(z))])


def label_probs(probs: Any, labels: Any) -> np.ndarray:
    """``probs[..., i, labels[i]]`` as float64 ``(..., N)`` (one gather; no copy of the whole array)."""
    p = to_numpy(probs, "probs")
    y = np.asarray(labels, dtype=np.int64)
    return np.asarray(p[..., np.arange(len(y)), y], dtype=np.float64)


def _one(logits: np.ndarray, labels: np.ndarray, signal: str, temperature: float, m: float, n: int) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if temperature != 1.0:
        z = z / temperature
    rows = np.arange(len(labels))
    if signal == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e[rows, labels] / e.sum(axis=-1)
    others = _taylor(z, n)
    true = _taylor(z[rows, labels] - m, n)
    return true / (others.sum(axis=-1) - others[rows, labels] + true)


def _taylor(x: np.ndarray, n: int) -> np.ndarray:
    """``sum_{i < n} x^i / i!`` (the Taylor polynomial of exp)."""
    total, power = 1.0 + x, x
    for i in range(2, n):
        power = power * x
        total = total + power / factorial(i)
    return total
