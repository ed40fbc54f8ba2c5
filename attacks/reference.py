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
  (and likewise ``Pr(z)``); online, ``Pr(x)`` averages all reference models where x has IN ones.

No model or data set inside: arrays in, ``(N,)`` scores out, higher = member. The attacks the
pipeline builds from these are :mod:`attacks.lira` and :mod:`attacks.rmia`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from attacks.validation import to_numpy

def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """``log p_y - log sum_{y' != y} p_y'`` of each row, from logits, in float64.

    Equal to ``z_y - logsumexp_{y' != y} z_y'``: exact and finite even where the float32 softmax
    is exactly 1.0 (logit gaps beyond ~17) or 0.0.

    Parameters
    ----------
    logits : array (..., N, C)
    labels : int array (N,), values in ``[0, C)``

    Returns
    -------
    ndarray (..., N) float64
    """
    z = np.asarray(to_numpy(logits, "logits"), dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.shape[-1] < 2:
        raise ValueError(f"logits: need at least 2 classes for the logit-scaled confidence, got shape {z.shape}")
    picked = np.take_along_axis(z, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), -np.inf, axis=-1)
    return picked - logsumexp(others, axis=-1)


def lira_scores(target_logits: Any, labels: Any, reference_logits: Any, reference_in: Any,
                online: bool = True, fixed_variance: bool = False) -> np.ndarray:
    """LiRA membership scores.

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
        True: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out) (needs K >= 2). A sample that no
        reference model trained on (e.g. a non-member outside the reference population) gets
        ``mu_in = mu_out + d``, d the mean IN - OUT gap of the samples that have IN models (and,
        with per-sample variance, ``s_in = s_out``); samples with one IN model use ``s_out`` too.
        False: the one-sided offline test against OUT.
    fixed_variance : bool
        True: one variance for all samples (offline: the pooled within-sample variance of the OUT
        signals; online: of IN and OUT signals together, shared by both Gaussians, as in the LiRA
        authors' code, so the ratio is monotone in phi); False: each sample's own IN and OUT
        variances (needs two IN / two OUT signals per sample).

    Returns
    -------
    ndarray (N,) float64; higher = member. Offline: ``(phi - mu_out) / sigma_out``.
    """
    target, y, refs, member = _check_reference_inputs(target_logits, labels, reference_logits,
                                                      reference_in, "target_logits", "reference_logits")
    if online and refs.shape[0] < 2:
        raise ValueError(f"online LiRA needs at least 2 reference models (an IN and an OUT one per "
                         f"sample), got K={refs.shape[0]}; use online=False or more reference models")
    phi = logit_scaled_confidence(target, y)
    ref_phi = logit_scaled_confidence(refs, y)                       # (K, N)
    mu_out, sd_out = _gaussian(ref_phi, ~member, fixed_variance, "OUT")
    if not online:
        return (phi - mu_out) / sd_out
    n_in = member.sum(axis=0)
    if not n_in.any():
        raise ValueError("reference_in: no sample is IN for any reference model; online LiRA needs IN "
                         "models (use online=False)")
    mean_in = np.where(member, ref_phi, 0.0).sum(axis=0) / np.maximum(n_in, 1)
    gap = float(np.mean(mean_in[n_in > 0] - mu_out[n_in > 0]))
    mu_in = np.where(n_in > 0, mean_in, mu_out + gap)
    if fixed_variance:  # one variance for IN and OUT (as the LiRA authors' code): a ratio monotone in phi
        sd_in = sd_out = _pooled_sd(ref_phi, member)
    else:
        squares = np.where(member, (ref_phi - mean_in) ** 2, 0.0).sum(axis=0)
        sd_in = np.where(n_in >= 2, np.sqrt(squares / np.maximum(n_in - 1, 1)), sd_out)
        sd_in = np.maximum(sd_in, 1e-30)
    return _log_normal_pdf(phi, mu_in, sd_in) - _log_normal_pdf(phi, mu_out, sd_out)


def rmia_scores(target_probs: Any, labels: Any, reference_probs: Any, reference_in: Any,
                population_target_probs: Any, population_labels: Any, population_reference_probs: Any,
                a: float = 0.3, gamma: float = 1.0, online: bool = False) -> np.ndarray:
    """RMIA membership scores: the fraction of population samples z with LR(x, z) >= gamma.

    Parameters
    ----------
    target_probs : array (N, C); labels : int array (N,)
    reference_probs : array (K, N, C); reference_in : bool array (K, N)
    population_target_probs : array (Z, C); population_labels : int array (Z,)
    population_reference_probs : array (K, Z, C)
        Population samples z: in no reference model's training set.
    a : float in [0, 1]
        Offline correction ``Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2`` (ignored online).
    gamma : float > 0
    online : bool
        True: ``Pr(x)`` averages all K models where x has IN and OUT models; a sample without IN
        models (e.g. a non-member outside the reference population) and every z (OUT for all
        models) use the offline estimate of the same quantity, ``(Pr_IN + Pr_OUT) / 2`` from OUT
        with ``a``. False: the offline estimate for every sample.

    Returns
    -------
    ndarray (N,) float64 in [0, 1]; higher = member.
    """
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"RMIA: a must lie in [0, 1], got {a}")
    if not gamma > 0:
        raise ValueError(f"RMIA: gamma must be positive, got {gamma}")
    target, y, refs, member = _check_reference_inputs(target_probs, labels, reference_probs, reference_in,
                                                      "target_probs", "reference_probs")
    z_target, z_y, z_refs, _ = _check_reference_inputs(
        population_target_probs, population_labels, population_reference_probs,
        np.zeros((refs.shape[0], len(np.asarray(population_labels))), dtype=bool),
        "population_target_probs", "population_reference_probs")
    if z_refs.shape[0] != refs.shape[0]:
        raise ValueError(f"population_reference_probs: has {z_refs.shape[0]} models but reference_probs "
                         f"has {refs.shape[0]}")
    if len(z_y) == 0:
        raise ValueError("population_target_probs: RMIA needs at least one population sample z")
    p_x = _label_probs(target, y)
    p_x_refs = _label_probs(refs, y)                                   # (K, N)
    p_z = _label_probs(z_target, z_y)
    p_z_refs = _label_probs(z_refs, z_y)                               # (K, Z)
    out = ~member
    has_out, has_in = out.any(axis=0), member.any(axis=0)
    if not (has_out | online).all():
        raise ValueError(f"reference_in: sample {int(np.flatnonzero(~has_out)[0])} is IN for "
                         "every reference model; offline RMIA needs an OUT model per sample")
    out_mean = (p_x_refs * out).sum(axis=0) / np.maximum(out.sum(axis=0), 1)
    prior_x = ((1 + a) * out_mean + (1 - a)) / 2                      # (Pr_IN + Pr_OUT) / 2 from OUT
    if online:  # the average over all models where x has IN and OUT models
        prior_x = np.where(has_in & has_out, p_x_refs.mean(axis=0), prior_x)
    prior_z = ((1 + a) * p_z_refs.mean(axis=0) + (1 - a)) / 2          # z is OUT for every model
    with np.errstate(divide="ignore"):
        log_ratio_x = np.log(p_x) - np.log(prior_x)
        log_ratio_z = np.sort(np.log(p_z) - np.log(prior_z))
    # LR(x, z) >= gamma  <=>  log ratio(z) <= log ratio(x) - log gamma
    counts = np.searchsorted(log_ratio_z, log_ratio_x - np.log(gamma), side="right")
    return counts / len(log_ratio_z)


def _label_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = np.broadcast_to(labels[:, None], probs.shape[:-1] + (1,))
    return np.take_along_axis(probs, index, axis=-1)[..., 0]


def _gaussian(signals: np.ndarray, mask: np.ndarray, fixed: bool, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean of ``signals[mask]`` (K, N) and the per-sample or pooled standard deviation."""
    counts = mask.sum(axis=0)
    need = 1 if fixed else 2
    if (counts < need).any():
        first = int(np.flatnonzero(counts < need)[0])
        raise ValueError(f"reference_in: sample {first} has {counts[first]} {kind} reference model(s); "
                         f"LiRA needs {need} per sample{'' if fixed else ' with per-sample variance'} "
                         "(use more reference models" + ("" if fixed else " or fixed_variance=True") + ")")
    mean = np.where(mask, signals, 0.0).sum(axis=0) / counts
    squares = np.where(mask, (signals - mean) ** 2, 0.0)
    if fixed:
        dof = counts.sum() - len(counts)
        pooled = squares.sum() / dof if dof > 0 else 0.0
        sd = np.full(len(counts), np.sqrt(pooled))
    else:
        sd = np.sqrt(squares.sum(axis=0) / (counts - 1))
    return mean, np.maximum(sd, 1e-30)


def _pooled_sd(signals: np.ndarray, member: np.ndarray) -> np.ndarray:
    """One standard deviation (N,) from the residuals of IN and OUT signals around their own means."""
    squares, dof = 0.0, 0
    for mask in (member, ~member):
        counts = mask.sum(axis=0)
        mean = np.where(mask, signals, 0.0).sum(axis=0) / np.maximum(counts, 1)
        squares += np.where(mask, (signals - mean) ** 2, 0.0).sum()
        dof += int(counts.sum() - (counts > 0).sum())
    return np.full(signals.shape[1], max(np.sqrt(squares / dof) if dof > 0 else 0.0, 1e-30))


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def _check_reference_inputs(target: Any, labels: Any, refs: Any, reference_in: Any, target_name: str,
                            refs_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 (N, C), int64 (N,), float64 (K, N, C), bool (K, N), with one-line shape errors."""
    t = np.asarray(to_numpy(target, target_name), dtype=np.float64)
    r = np.asarray(to_numpy(refs, refs_name), dtype=np.float64)
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
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or inf")
    return t, y.astype(np.int64), r, m


class ReferenceSignals:
    """What reference attacks see about N samples: arrays only (no model, no data set).

    Parameters
    ----------
    target_logits : (N, C); labels : (N,) int in [0, C)
    reference_logits : (K, N, C); reference_in : (K, N) bool
    population_target_logits : (Z, C); population_labels : (Z,); population_reference_logits : (K, Z, C)
        RMIA's population samples z (in no reference model's training set).

    Attacks derive probabilities from the logits (RMIA: :func:`softmax64`).
    """

    def __init__(self, target_logits, labels, reference_logits, reference_in, population_target_logits,
                 population_labels, population_reference_logits):
        self.target_logits = np.asarray(target_logits)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.reference_logits = np.asarray(reference_logits)
        self.reference_in = np.asarray(reference_in, dtype=bool)
        self.population_target_logits = np.asarray(population_target_logits)
        self.population_labels = np.asarray(population_labels, dtype=np.int64)
        self.population_reference_logits = np.asarray(population_reference_logits)

    def __len__(self) -> int:
        return len(self.labels)

    def with_labels(self, labels) -> "ReferenceSignals":
        """The same signals scored against other labels (N,)."""
        return ReferenceSignals(self.target_logits, labels, self.reference_logits, self.reference_in,
                                self.population_target_logits, self.population_labels,
                                self.population_reference_logits)

    def rows(self, positions) -> "ReferenceSignals":
        """The signals of a subset of the N samples (population unchanged). Score whole sets in one
        call where online LiRA needs samples with IN models to estimate its IN-OUT gap."""
        p = np.asarray(positions)
        return ReferenceSignals(self.target_logits[p], self.labels[p], self.reference_logits[:, p],
                                self.reference_in[:, p], self.population_target_logits,
                                self.population_labels, self.population_reference_logits)


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
