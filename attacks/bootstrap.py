"""Seeded bootstrap 95% intervals of the headline attack metrics.

Members and non-members are resampled with replacement, each side on its own (their sizes are
fixed by the protocol); every metric is recomputed on each resample, vectorised over resamples:

- AUROC (Mann-Whitney, ties count one half; equals the trapezoidal ROC area),
- TPR at 1% and 0.1% FPR (the highest TPR of a ROC point whose FPR is at most the level, as
  :func:`attacks.evaluation.tpr_at_fpr`),
- FPR of the attack's own decisions (its threshold was fitted on the shadow model and stays fixed),
- FPR on a set at the threshold that calls a fraction ``level`` of held-out rows members
  (:func:`attacks.held_out_fpr.held_out_threshold`; the held-out rows are resampled too).

The interval is the 2.5 and 97.5 percentiles of the resampled values, widened where needed to
include the estimate itself (low-FPR TPRs are biased under resampling, which can push the whole
distribution to one side of the estimate); ``se`` is the standard deviation of the resampled values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 500
CONFIDENCE = 0.95
FPR_LEVELS = (0.01, 0.001)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval and standard error."""

    estimate: float
    low: float
    high: float
    se: float

    def within_two_se_of(self, value: float) -> bool:
        """Whether the estimate is within two standard errors of ``value`` (e.g. AUROC 0.5)."""
        return abs(self.estimate - value) <= 2 * self.se

    def text(self, digits: int = 3, percent: bool = False) -> str:
        """``0.640 [0.586, 0.693]`` (or ``12.0% [8.5, 16.0]`` with ``percent``)."""
        if percent:
            return f"{100 * self.estimate:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def resample_indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, n)`` row indices drawn with replacement."""
    if n < 1:
        raise ValueError("cannot bootstrap an empty set of scores")
    return rng.integers(0, n, size=(resamples, n))


def auroc(members: np.ndarray, non_members: np.ndarray) -> float:
    """AUROC of ``members`` (M,) against ``non_members`` (N,); ties count one half."""
    return float(_pair_wins(members, non_members).mean())


def resampled_auroc(members: np.ndarray, non_members: np.ndarray, index_m: np.ndarray,
                    index_n: np.ndarray) -> np.ndarray:
    """AUROC of each resample (rows of ``index_m`` (B, M) and ``index_n`` (B, N)) -> (B,).

    With counts ``c_m``, ``c_n`` of each original sample in a resample, the AUROC is
    ``c_m @ wins @ c_n / (M N)``: one matrix product for all resamples.
    """
    counts_m = _counts(index_m, len(members))
    counts_n = _counts(index_n, len(non_members))
    return ((counts_m @ _pair_wins(members, non_members)) * counts_n).sum(1) / (len(members) * len(non_members))


def _pair_wins(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """(M, N): 1 where the member scores above the non-member, 0.5 on a tie, else 0."""
    return (members[:, None] > non_members[None, :]) + 0.5 * (members[:, None] == non_members[None, :])


def _counts(index: np.ndarray, n: int) -> np.ndarray:
    """(B, n): how often each of ``n`` samples appears in each row of ``index``."""
    rows = len(index)
    flat = (index + (np.arange(rows) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def tpr_at_fpr_rows(members: np.ndarray, non_members: np.ndarray, level: float) -> np.ndarray:
    """TPR at FPR ``level`` of each row pair (B, M), (B, N) -> (B,): the fraction of members
    above the (k+1)-th highest non-member score, k = floor(level * N) false positives allowed."""
    members, non_members = np.atleast_2d(members), np.atleast_2d(non_members)
    n = non_members.shape[1]
    allowed = int(np.floor(level * n + 1e-9))
    if allowed >= n:
        return np.ones(len(members))
    cut = -np.partition(-non_members, allowed, axis=1)[:, allowed]
    return (members > cut[:, None]).mean(1)


def held_out_fpr_rows(set_scores: np.ndarray, held_out: np.ndarray, level: float) -> np.ndarray:
    """Fraction of each row of ``set_scores`` (B, S) above the cut that calls at most
    ``floor(level * H)`` of the matching row of ``held_out`` (B, H) members -> (B,)."""
    set_scores, held_out = np.atleast_2d(set_scores), np.atleast_2d(held_out)
    h = held_out.shape[1]
    allowed = int(np.floor(level * h + 1e-9))
    cut = np.sort(held_out, axis=1)[:, h - allowed - 1]
    return (set_scores > cut[:, None]).mean(1)


def interval(estimate: float, resampled: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Percentile interval of ``resampled`` around ``estimate`` (widened to contain it)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(float(estimate), float(min(low, estimate)), float(max(high, estimate)),
                    float(np.std(resampled, ddof=1)) if len(resampled) > 1 else 0.0)


def attack_intervals(member_scores, non_member_scores, non_member_decisions=None, *,
                     seed: int, resamples: int = RESAMPLES,
                     levels: tuple[float, ...] = FPR_LEVELS) -> dict[str, Interval]:
    """Intervals of AUROC, ``TPR@{level}%FPR`` and (with decisions) FPR of one attack on one set.

    Parameters
    ----------
    member_scores : array (M,), higher = member
    non_member_scores : array (N,)
    non_member_decisions : bool array (N,) or None; the attack's "member" calls on the non-members
    seed : seeds the resampling (the same seed gives the same intervals)
    resamples : number of bootstrap resamples
    """
    members = np.asarray(member_scores, dtype=np.float64).ravel()
    non_members = np.asarray(non_member_scores, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    index_m = resample_indices(len(members), resamples, rng)
    index_n = resample_indices(len(non_members), resamples, rng)
    out = {"AUROC": interval(auroc(members, non_members),
                             resampled_auroc(members, non_members, index_m, index_n))}
    for level in levels:
        out[f"TPR@{level * 100:g}%FPR"] = interval(
            tpr_at_fpr_rows(members, non_members, level)[0],
            tpr_at_fpr_rows(members[index_m], non_members[index_n], level))
    if non_member_decisions is not None:
        decided = np.asarray(non_member_decisions, dtype=bool).ravel()
        out["FPR"] = interval(decided.mean(), decided[index_n].mean(1))
    return out


def held_out_intervals(set_scores, held_out_scores, *, seed: int, resamples: int = RESAMPLES,
                       levels: tuple[float, ...] = FPR_LEVELS) -> dict[float, Interval]:
    """Per level, the interval of the FPR on a set at the held-out ``level`` threshold."""
    values = np.asarray(set_scores, dtype=np.float64).ravel()
    held_out = np.asarray(held_out_scores, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    index_s = resample_indices(len(values), resamples, rng)
    index_h = resample_indices(len(held_out), resamples, rng)
    return {level: interval(held_out_fpr_rows(values, held_out, level)[0],
                            held_out_fpr_rows(values[index_s], held_out[index_h], level))
            for level in levels}
