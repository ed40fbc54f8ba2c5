"""Reference-model attacks on arrays: LiRA and RMIA.

- LiRA: Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022.
  Signal: the logit-scaled confidence ``log p_y - log sum_{y' != y} p_y'``; per sample a Gaussian
  fitted to the reference models that trained on it (IN) and to those that did not (OUT).
  Online: log-likelihood ratio IN vs OUT. Offline: the one-sided test against OUT,
  ``Phi((phi - mu_out) / sigma_out)`` (returned as the z-statistic, which ranks identically).
- RMIA: Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024.
  ``LR(x, z) = (Pr(x|theta) / Pr(x)) / (Pr(z|theta) / Pr(z))``; the score of ``x`` is the fraction
  of population samples ``z`` with ``LR(x, z) >= gamma``. Offline, ``Pr(x)`` comes from the OUT
  models with the paper's linear correction ``Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2``
  (and likewise ``Pr(z)``); online, ``Pr(x) = (Pr_IN(x) + Pr_OUT(x)) / 2``.

Count-invariant: every row (and every z) is scored from the same number of IN and OUT models, a
seeded subset where a row has more (:mod:`attacks.equal_counts`); no formula depends on a row's
membership. Rows declared ``outside_population`` (OOD or generated data no model trains on) have
no IN models: online LiRA gives them ``mu_in = mu_out + d`` (d the mean IN - OUT gap of the other
rows; per-sample variance: ``s_in = s_out``), online RMIA ``Pr_IN = a Pr_OUT + (1 - a)`` (the offline
estimate); online attacks refuse any other row without IN models. Memory: one model's arrays at a time.

No model or data set inside: arrays in, ``(N,)`` scores out, higher = member. The attacks the
pipeline builds from these are :mod:`attacks.lira` and :mod:`attacks.rmia`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from attacks.equal_counts import ModelSelection, select_models
from attacks.rmia_signal import label_probs
from attacks.validation import SUM_ATOL, sum_tolerance, to_numpy

def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """``log p_y - log sum_{y' != y} p_y'`` of each row, from logits, in float64.

    Equal to ``z_y - logsumexp_{y' != y} z_y'``: exact and finite even where the float32 softmax
    is exactly 1.0 (logit gaps beyond ~17) or 0.0. A stack ``(K, N, C)`` is computed one model at
    a time (memory of one model's logits in float64).

    Parameters
    ----------
    logits : array (..., N, C)
    labels : int array (N,), values in ``[0, C)``

    Returns
    -------
    ndarray (..., N) float64
    """
    z = to_numpy(logits, "logits")
    y = np.asarray(labels, dtype=np.int64)
    if z.shape[-1] < 2:
        raise ValueError(f"logits: need at least 2 classes for the logit-scaled confidence, got shape {z.shape}")
    if z.ndim == 3:
        return np.stack([_confidence(z[k], y) for k in range(len(z))]) if len(z) else np.zeros((0, len(y)))
    return _confidence(z, y)


def _confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    index = np.broadcast_to(labels[:, None], z.shape[:-1] + (1,))
    picked = np.take_along_axis(z, index, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, index, -np.inf, axis=-1)
    top = others.max(axis=-1)
    return picked - (top + np.log(np.exp(others - top[..., None]).sum(axis=-1)))


def lira_scores(target_logits: Any, labels: Any, reference_logits: Any, reference_in: Any,
                online: bool = True, fixed_variance: bool = False, *, outside_population: Any = None,
                models_per_row: int | None = None, seed: int = 0) -> np.ndarray:
    """LiRA membership scores, from the same number of IN and OUT models for every row.

    Parameters
    ----------
    target_logits : array (N, C)
        Target-model logits of the audited samples.
    labels : int array (N,)
        Class of each sample (for samples without one, the target's predicted class).
    reference_logits : array (K, N, C)
        Logits of K reference models on the same samples.
    reference_in : bool array (K, N)
        ``reference_in[k, i]``: sample i was in reference model k's training set.
    online : bool
        True: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out) (needs K >= 2). False: the
        one-sided offline test against OUT.
    fixed_variance : bool
        True: one variance for all samples (offline: the pooled within-sample variance of the OUT
        signals; online: of IN and OUT signals together, shared by both Gaussians, as in the LiRA
        authors' code, so the ratio is monotone in phi); False: each sample's own IN and OUT
        variances (needs two IN / two OUT models per sample).
    outside_population : bool array (N,) or None
        Rows no reference model trains on by design (OOD, generated). Online: their IN Gaussian is
        ``N(mu_out + d, s)``, d the mean IN - OUT gap of the other rows, s their OUT sd (per-sample
        variance) or the pooled one. Any other row without IN models is refused online.
    models_per_row : int or None
        None: every row uses as many IN (OUT) models as the row with the fewest has. An integer:
        that many models per row (offline: OUT; online: half IN, half OUT).
    seed : int
        Seeds which models a row with more than that count uses.

    Returns
    -------
    ndarray (N,) float64; higher = member. Offline: ``(phi - mu_out) / sigma_out``.
    """
    target, y, refs, member = check_lira_inputs(target_logits, labels, reference_logits, reference_in, online)
    return _lira(logit_scaled_confidence(target, y), logit_scaled_confidence(refs, y), member, online,
                 fixed_variance, _outside(outside_population, len(y)), models_per_row, seed)


def check_lira_inputs(target_logits: Any, labels: Any, reference_logits: Any, reference_in: Any,
                      online: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LiRA's inputs as arrays (one-line errors); online LiRA needs K >= 2."""
    target, y, refs, member = _check_reference_inputs(target_logits, labels, reference_logits,
                                                      reference_in, "target_logits", "reference_logits")
    if online and refs.shape[0] < 2:
        raise ValueError(f"online LiRA needs at least 2 reference models (an IN and an OUT one per "
                         f"sample), got K={refs.shape[0]}; use online=False or more reference models")
    return target, y, refs, member


def _lira(phi: np.ndarray, ref_phi: np.ndarray, member: np.ndarray, online: bool, fixed_variance: bool,
          outside: np.ndarray, models_per_row: int | None, seed: int) -> np.ndarray:
    """LiRA on logit-scaled confidences: target ``(N,)``, reference models ``(K, N)``."""
    need = 1 if fixed_variance else 2
    chosen = select_models(member, online=online, outside_population=outside,
                           need_in=need, need_out=need, models_per_row=models_per_row, seed=seed,
                           attack="LiRA" + ("" if fixed_variance else " with per-sample variance"))
    mu_out, squares_out = _moments(ref_phi, chosen.outside, chosen.n_out)
    if not online:
        sd_out = _pooled(squares_out, chosen.n_out) if fixed_variance else _per_row(squares_out, chosen.n_out)
        return (phi - mu_out) / sd_out
    seen = ~chosen.unseen
    mean_in, squares_in = _moments(ref_phi, chosen.inside, chosen.n_in)
    twin = nearest_seen_row(mu_out, seen)
    mu_in = mu_out + (mean_in - mu_out)[twin]
    if fixed_variance:  # one variance for IN and OUT (as the LiRA authors' code): a ratio monotone in phi
        dof = (chosen.n_in - 1) * int(seen.sum()) + (chosen.n_out - 1) * len(phi)
        total = float(squares_in[seen].sum() + squares_out.sum())
        sd_in = sd_out = np.full(len(phi), max(np.sqrt(total / dof) if dof > 0 else 0.0, 1e-30))
    else:
        sd_out = _per_row(squares_out, chosen.n_out)
        sd_in = _per_row(np.where(seen, squares_in, 0.0), max(chosen.n_in, 2))[twin]
    return _log_normal_pdf(phi, mu_in, sd_in) - _log_normal_pdf(phi, mu_out, sd_out)


def nearest_seen_row(statistic: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """For every row, itself if ``seen``, else the seen row whose ``statistic`` (an OUT-model
    statistic) is nearest (ties: the lower one); how online attacks borrow IN statistics for rows
    outside the population, so that such a row is scored like an inside row with the same OUT view.

    Parameters
    ----------
    statistic : float (N,); seen : bool (N,), at least one True where any is False

    Returns
    -------
    int array (N,) of row positions
    """
    rows = np.arange(len(statistic))
    if seen.all():
        return rows
    pool = np.flatnonzero(seen)
    order = pool[np.argsort(statistic[pool], kind="stable")]
    values = statistic[order]
    unseen = np.flatnonzero(~seen)
    right = np.clip(np.searchsorted(values, statistic[unseen]), 1, len(values) - 1) if len(values) > 1 else \
        np.zeros(len(unseen), dtype=int)
    left = np.maximum(right - 1, 0)
    pick = np.where(np.abs(statistic[unseen] - values[left]) <= np.abs(values[right] - statistic[unseen]), left, right)
    rows = rows.copy()
    rows[unseen] = order[pick]
    return rows


def rmia_scores(target_probs: Any, labels: Any, reference_probs: Any, reference_in: Any,
                population_target_probs: Any, population_labels: Any, population_reference_probs: Any,
                a: float = 0.3, gamma: float = 1.0, online: bool = False, *, population_in: Any = None,
                outside_population: Any = None, models_per_row: int | None = None,
                seed: int = 0, trim: float = 0.0) -> np.ndarray:
    """RMIA membership scores: the fraction of population samples z with LR(x, z) >= gamma.

    Parameters
    ----------
    target_probs : array (N, C) of probabilities (non-negative, no all-zero row); labels : int (N,)
    reference_probs : array (K, N, C); reference_in : bool array (K, N)
    population_target_probs : array (Z, C); population_labels : int array (Z,)
    population_reference_probs : array (K, Z, C)
    a : float in [0, 1]
        Offline correction ``Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2``; online, the estimate
        ``Pr_IN = a Pr_OUT + (1 - a)`` for rows without IN models.
    gamma : finite float > 0
    online : bool
        True: ``Pr(x) = (Pr_IN(x) + Pr_OUT(x)) / 2`` (the average over all models when x is IN for
        half of them, RMIA's setting). False: the offline estimate for every sample.
    population_in : bool array (K, Z) or None
        Membership of the z in the reference models; None: in no model's training set (they are
        then outside the population, and online RMIA estimates their ``Pr_IN`` as above).
    outside_population, models_per_row, seed
        As in :func:`lira_scores`; the x and the z are scored from the same numbers of models.
    trim : float in [0, 0.5)
        ``Pr_OUT`` (offline) or ``Pr(x)`` (online: over the IN and OUT models together) as the mean
        of each row's model signals with this fraction cut from each end (``scipy.stats.trim_mean``;
        the RMIA authors' code uses 0.2); 0: the plain mean.

    Returns
    -------
    ndarray (N,) float64 in [0, 1]; higher = member.
    """
    _check_rmia_options(a, gamma, trim)
    target, y, refs, member = _check_reference_inputs(target_probs, labels, reference_probs, reference_in,
                                                      "target_probs", "reference_probs")
    z_target, z_y, z_refs, z_member = _check_population(population_target_probs, population_labels,
                                                        population_reference_probs, population_in, refs.shape[0])
    for name, values in (("target_probs", target), ("reference_probs", refs),
                         ("population_target_probs", z_target), ("population_reference_probs", z_refs)):
        _check_probabilities(values, name)
    picked = {name: label_probs(values, labels_of) for name, values, labels_of in (
        ("target_probs", target, y), ("reference_probs", refs, y),
        ("population_target_probs", z_target, z_y), ("population_reference_probs", z_refs, z_y))}
    return _rmia(picked["target_probs"], picked["reference_probs"], member, picked["population_target_probs"],
                 picked["population_reference_probs"], z_member, a, gamma, online,
                 _outside(outside_population, len(y)), population_in is None, models_per_row, seed, trim)


def _rmia(p_x: np.ndarray, p_x_refs: np.ndarray, member: np.ndarray, p_z: np.ndarray, p_z_refs: np.ndarray,
          z_member: np.ndarray, a: float, gamma: float, online: bool, outside: np.ndarray, z_outside: bool,
          models_per_row: int | None, seed: int, trim: float = 0.0) -> np.ndarray:
    """RMIA on per-model signals of the labels: x ``(N,)``, ``(K, N)``; z ``(Z,)``, ``(K, Z)``."""
    n = len(p_x)
    if not len(p_z):
        raise ValueError("population_target_probs: RMIA needs at least one population sample z")
    chosen = select_models(np.concatenate([member, z_member], axis=1), online=online,
                           outside_population=np.r_[outside, np.full(len(p_z), z_outside)], need_in=1,
                           need_out=1, models_per_row=models_per_row, seed=seed, attack="RMIA",
                           rows_named=lambda i: f"sample {i}" if i < n else f"population sample {i - n}")
    prior = _rmia_prior(np.concatenate([p_x_refs, p_z_refs], axis=1), chosen, a, online, trim)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_x, ratio_z = p_x / prior[:n], p_z / prior[n:]
    for name, values in (("sample", ratio_x), ("population sample", ratio_z)):
        if np.isnan(values).any():
            raise ValueError(f"RMIA: {name} {int(np.flatnonzero(np.isnan(values))[0])} has Pr(x|theta) = 0 "
                             "and Pr(x) = 0 from its reference models (a = 1); use a < 1")
    if (ratio_z > 0).all() and (ratio_x >= 0).all():
        # LR(x, z) >= gamma  <=>  log ratio(z) <= log ratio(x) - log gamma
        with np.errstate(divide="ignore"):
            counts = np.searchsorted(np.sort(np.log(ratio_z)), np.log(ratio_x) - np.log(gamma), side="right")
        return counts / len(ratio_z)
    return _signed_counts(ratio_x, ratio_z, gamma) / len(ratio_z)


def _signed_counts(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """Per x, the number of z with ``ratio_x / ratio_z >= gamma`` when ratios may be negative or 0
    (the Taylor soft-margin with an even number of terms): as the RMIA authors' code, the signed
    ratios are compared as they are. ``ratio_z > 0``: ``ratio_z <= ratio_x / gamma``; ``ratio_z < 0``:
    ``ratio_z >= ratio_x / gamma``; ``ratio_z = 0`` (``LR = +-inf``): counted where ``ratio_x > 0``."""
    bound = ratio_x / gamma
    positive, negative = np.sort(ratio_z[ratio_z > 0]), np.sort(ratio_z[ratio_z < 0])
    counts = np.searchsorted(positive, bound, side="right")
    counts += len(negative) - np.searchsorted(negative, bound, side="left")
    return counts + (ratio_x > 0) * int((ratio_z == 0).sum())


def _rmia_prior(signals: np.ndarray, chosen: ModelSelection, a: float, online: bool, trim: float) -> np.ndarray:
    """``Pr(x)`` of each row (x and z together) from its chosen models: offline the linear correction
    of the (trimmed) OUT mean; online the (trimmed) mean over IN and OUT models, a row outside the
    population borrowing ``Pr(x) - Pr_OUT(x)`` of the inside row nearest in ``Pr_OUT``
    (:func:`nearest_seen_row`)."""
    mean_out = _center(signals, chosen.outside, chosen.n_out, trim)
    if not online:
        return ((1 + a) * mean_out + (1 - a)) / 2
    if trim == 0:   # (Pr_IN + Pr_OUT) / 2: the mean over all models when x is IN for half of them
        both = (_moments(signals, chosen.inside, chosen.n_in, squares=False)[0] + mean_out) / 2
    else:           # the RMIA authors' code: one trimmed mean over the IN and OUT models together
        both = _center(signals, chosen.inside | chosen.outside, chosen.n_in + chosen.n_out, trim, ~chosen.unseen)
    twin = nearest_seen_row(mean_out, ~chosen.unseen)
    return mean_out + (both - mean_out)[twin]


def _center(signals: np.ndarray, mask: np.ndarray, count: int, trim: float, rows: np.ndarray | None = None):
    """Per row, the mean of its ``count`` masked signals, ``trim`` cut from each end (scipy's
    ``trim_mean``); only ``rows`` (default all) are computed, the others are 0."""
    if trim == 0:
        return _moments(signals, mask, count, squares=False)[0]
    from scipy.stats import trim_mean

    rows = np.ones(signals.shape[1], dtype=bool) if rows is None else rows
    out = np.zeros(signals.shape[1])
    if rows.any():
        picked = signals[:, rows].T[mask[:, rows].T].reshape(int(rows.sum()), count)
        out[rows] = trim_mean(picked, trim, axis=1)
    return out


def _moments(signals: np.ndarray, mask: np.ndarray, count: int, squares: bool = True):
    """Per-row mean of ``signals[mask]`` (``count`` entries per row; 0 where a row has none) and the
    sum of squared deviations."""
    if count == 0:
        return np.zeros(signals.shape[1]), np.zeros(signals.shape[1])
    kept = np.where(mask, signals, 0.0)
    mean = kept.sum(axis=0) / count
    if not squares:
        return mean, None
    return mean, np.where(mask, (signals - mean) ** 2, 0.0).sum(axis=0)


def _per_row(squares: np.ndarray, count: int) -> np.ndarray:
    return np.maximum(np.sqrt(squares / (count - 1)), 1e-30)


def _pooled(squares: np.ndarray, count: int) -> np.ndarray:
    dof = (count - 1) * len(squares)
    return np.full(len(squares), max(np.sqrt(squares.sum() / dof) if dof > 0 else 0.0, 1e-30))


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def _outside(outside_population: Any, n: int) -> np.ndarray:
    if outside_population is None:
        return np.zeros(n, dtype=bool)
    values = to_numpy(outside_population, "outside_population")
    if values.shape != (n,) or values.dtype != bool:
        raise ValueError(f"outside_population: expected a bool array of shape ({n},), got {values.dtype} "
                         f"{values.shape}")
    return values


def _check_rmia_options(a: float, gamma: float, trim: float = 0.0) -> None:
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"RMIA: a must lie in [0, 1], got {a}")
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"RMIA: gamma must be a finite positive number, got {gamma}")
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"RMIA: trim (the fraction cut from each end of the reference signals) must lie in "
                         f"[0, 0.5), got {trim}")


def _check_population(z_probs: Any, z_labels: Any, z_refs: Any, z_in: Any,
                      k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """RMIA's population arrays; the number of models is checked first, so an error names the right one."""
    refs = to_numpy(z_refs, "population_reference_probs")
    if refs.ndim == 3 and refs.shape[0] != k:
        raise ValueError(f"population_reference_probs: has {refs.shape[0]} models but reference_probs has {k}; "
                         "score the population samples with the same reference models")
    z = len(to_numpy(z_labels, "population_labels"))
    membership = np.zeros((k, z), dtype=bool) if z_in is None else z_in
    try:
        return _check_reference_inputs(z_probs, z_labels, refs, membership, "population_target_probs",
                                       "population_reference_probs")
    except ValueError as error:  # name the population's arguments, not reference_in or labels
        text = str(error).replace("reference_in:", "population_in:")
        raise ValueError("population_" + text if text.startswith("labels:") else text) from None


def _check_probabilities(values: np.ndarray, name: str) -> None:
    """Probabilities: non-negative, at most 1, every row summing to 1 (within
    :func:`attacks.validation.sum_tolerance`), as the score attacks' inputs."""
    for problem, bad in (("has negative values", values < 0), ("has values above 1", values > 1 + SUM_ATOL)):
        if bad.any():
            where = np.argwhere(bad)[0]
            model = f" (model {where[0]})" if values.ndim == 3 else ""
            raise ValueError(f"{name}: row {where[-2]}{model} {problem}; RMIA needs probabilities "
                             "(apply a softmax to logits)")
    sums = values.sum(axis=-1, dtype=np.float64)
    off = np.abs(sums - 1.0) > sum_tolerance(values)
    if off.any():
        where = np.argwhere(off)[0]
        model = f" (model {where[0]})" if values.ndim == 3 else ""
        total = sums[tuple(where)]
        problem = "is all zero" if total == 0 else f"sums to {total:.6g}, expected 1"
        raise ValueError(f"{name}: row {where[-1]}{model} {problem}; RMIA needs probabilities (apply a softmax "
                         "to logits)")


def _check_reference_inputs(target: Any, labels: Any, refs: Any, reference_in: Any, target_name: str,
                            refs_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, C), int64 (N,), (K, N, C) in their own float dtype, bool (K, N), with one-line errors."""
    t = to_numpy(target, target_name)
    r = to_numpy(refs, refs_name)
    y = to_numpy(labels, "labels")
    m = to_numpy(reference_in, "reference_in")
    if t.ndim != 2:
        raise ValueError(f"{target_name}: expected shape (N, C), got {t.shape}")
    n, c = t.shape
    if r.ndim != 3 or r.shape[1:] != (n, c):
        raise ValueError(f"{refs_name}: expected shape (K, {n}, {c}) to match {target_name}, got {r.shape}")
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"labels: expected integer class indices of shape ({n},), got {y.dtype} {y.shape}")
    if n and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"labels: values must lie in [0, {c}); use the target's predicted class for "
                         "samples without a label")
    if m.shape != (r.shape[0], n):
        raise ValueError(f"reference_in: membership matrix has shape {m.shape}, expected (K, N) = "
                         f"({r.shape[0]}, {n}) to match {refs_name}")
    if m.dtype != bool:
        raise ValueError(f"reference_in: expected a bool matrix, got dtype {m.dtype}")
    for name, arr in ((target_name, t), (refs_name, r)):
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{name}: expected a float array, got dtype {arr.dtype}")
        if not all(np.isfinite(part).all() for part in (arr if arr.ndim == 3 else [arr])):
            raise ValueError(f"{name}: contains NaN or inf")
    return t, y.astype(np.int64), r, m


class ReferenceSignals:
    """What reference attacks see about N samples: arrays only (no model, no data set).

    Parameters
    ----------
    target_logits : (N, C); labels : (N,) int in [0, C)
    reference_logits : (K, N, C); reference_in : (K, N) bool
    population_target_logits : (Z, C); population_labels : (Z,); population_reference_logits : (K, Z, C)
        RMIA's population samples z.
    population_in : (K, Z) bool or None
        Membership of the z in the reference models (None: in no model's training set).
    outside_population : (N,) bool or None
        Rows no reference model trains on by design (OOD, generated); see :func:`lira_scores`.

    Attacks derive probabilities from the logits (RMIA: :mod:`attacks.rmia_signal`).
    """

    def __init__(self, target_logits, labels, reference_logits, reference_in, population_target_logits,
                 population_labels, population_reference_logits, population_in=None, outside_population=None):
        self.target_logits = np.asarray(target_logits)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.reference_logits = np.asarray(reference_logits)
        self.reference_in = np.asarray(reference_in, dtype=bool)
        self.population_target_logits = np.asarray(population_target_logits)
        self.population_labels = np.asarray(population_labels, dtype=np.int64)
        self.population_reference_logits = np.asarray(population_reference_logits)
        self.population_in = None if population_in is None else np.asarray(population_in, dtype=bool)
        self.outside_population = (np.zeros(len(self.labels), dtype=bool) if outside_population is None
                                   else np.asarray(outside_population, dtype=bool))
        self._derived: dict = {}     # signal key -> (target (N,), references (K, N), z target (Z,), z refs (K, Z))

    def derived(self, key, signal) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``signal(logits, labels)`` of the target, the reference models and the z, computed once per
        ``key`` and carried over by :meth:`rows` and :meth:`without_model` (which only select from it)."""
        if key not in self._derived:
            self._derived[key] = (signal(self.target_logits, self.labels), signal(self.reference_logits, self.labels),
                                  signal(self.population_target_logits, self.population_labels),
                                  signal(self.population_reference_logits, self.population_labels))
        return self._derived[key]

    def __len__(self) -> int:
        return len(self.labels)

    def _replace(self, **changes) -> "ReferenceSignals":
        fields = dict(target_logits=self.target_logits, labels=self.labels, reference_logits=self.reference_logits,
                      reference_in=self.reference_in, population_target_logits=self.population_target_logits,
                      population_labels=self.population_labels,
                      population_reference_logits=self.population_reference_logits,
                      population_in=self.population_in, outside_population=self.outside_population)
        return ReferenceSignals(**{**fields, **changes})

    def _carry(self, other: "ReferenceSignals", select) -> "ReferenceSignals":
        other._derived = {key: select(*values) for key, values in self._derived.items()}
        return other

    def with_labels(self, labels) -> "ReferenceSignals":
        """The same signals scored against other labels (N,)."""
        return self._replace(labels=labels)

    def with_target(self, target_logits, population_target_logits) -> "ReferenceSignals":
        """The same rows and reference models, another target model's logits (e.g. the null test's)."""
        return self._replace(target_logits=target_logits, population_target_logits=population_target_logits)

    def without_model(self, k: int) -> "ReferenceSignals":
        """Reference model ``k`` as the target, the other K - 1 as reference models."""
        keep = np.arange(self.reference_logits.shape[0]) != k
        return self._carry(self._replace(target_logits=self.reference_logits[k],
                             population_target_logits=self.population_reference_logits[k],
                             reference_logits=self.reference_logits[keep], reference_in=self.reference_in[keep],
                             population_reference_logits=self.population_reference_logits[keep],
                             population_in=None if self.population_in is None else self.population_in[keep]),
            lambda target, refs, z_target, z_refs: (refs[k], refs[keep], z_refs[k], z_refs[keep]))

    def rows(self, positions) -> "ReferenceSignals":
        """The signals of a subset of the N samples (population unchanged). Score whole sets in one
        call where online LiRA needs samples with IN models to estimate its IN-OUT gap."""
        p = np.asarray(positions)
        return self._carry(self._replace(
            target_logits=self.target_logits[p], labels=self.labels[p], reference_logits=self.reference_logits[:, p],
            reference_in=self.reference_in[:, p], outside_population=self.outside_population[p]),
            lambda target, refs, z_target, z_refs: (target[p], refs[:, p], z_target, z_refs))


def softmax32(logits: np.ndarray) -> np.ndarray:
    """The float32 softmax of ``logits`` (saturating like the network's output), as float64."""
    z = np.asarray(logits, dtype=np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float64)


def softmax64(logits: np.ndarray) -> np.ndarray:
    """The float64 softmax of ``logits``: unlike the network's float32 output it does not round
    probabilities near 1 to exactly 1.0, so RMIA's ratios keep their information."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
