"""High-confidence lower bounds on the DP parameter epsilon from an attack's member / non-member scores.

An (epsilon, delta)-DP training algorithm bounds every membership test (member when ``score > t``)
by both forms of the DP inequality::

    TPR <= e^eps * FPR + delta            ("TPR/FPR")
    TNR <= e^eps * FNR + delta            ("TNR/FNR", i.e. 1 - FPR <= e^eps (1 - TPR) + delta)

so ``eps >= log((p1 - delta) / p0)`` for the pair ``(p1, p0)`` of either form. A bound that holds
with confidence ``1 - beta`` replaces ``p1`` by a lower and ``p0`` by an upper confidence limit:

- ``"clopper-pearson"`` (default): exact binomial limits, each one-sided at ``beta / 2`` (a union
  bound over the two proportions; TF Privacy's ``BoundMethod.CLOPPER_PEARSON`` with ``alpha = beta``);
- ``"katz-log"``: the normal approximation of ``log(p1 / p0)`` one-sided at ``beta`` (TF Privacy's
  ``BoundMethod.KATZ_LOG``); with ``delta > 0`` the point estimate is ``(p1 - delta) / p0`` and the
  delta method gives its standard error (equal to TF Privacy's at ``delta = 0``).

Searching the largest bound over many thresholds (and both forms) spends the confidence many times.
``correction`` says how the search is paid for:

- ``"split"`` (default): members and non-members are split in two seeded halves; the threshold and
  form are chosen on one half (largest bound) and the bound is computed on the other, one test at
  ``beta``, so the stated confidence holds exactly;
- ``"union"``: every candidate threshold and form on all rows, each at ``beta / (2 * thresholds)``
  (a Bonferroni union bound);
- ``"none"``: every candidate at ``beta`` and the largest taken, as TF Privacy reports it; its
  confidence does not hold (for comparisons only).

A bound at a threshold fixed without looking at the members or the evaluated non-members (the
package's 0.1% / 1% FPR thresholds on held-out non-members, :func:`attacks.held_out_fpr.held_out_threshold`)
is one test of the ``TPR/FPR`` form and needs no correction (:func:`epsilon_bound_at_threshold`).
Bounds below 0 are reported as 0 (every mechanism is (0, 1)-DP; epsilon >= 0 says nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from attacks.held_out_fpr import HELD_OUT_LEVELS, held_out_threshold
from utils.naming import held_out_suffix
from utils.seeding import derive_seed

METHODS = ("clopper-pearson", "katz-log")
CORRECTIONS = ("split", "union", "none")
FORMS = ("TPR/FPR", "TNR/FNR")
DEFAULT_DELTA = 1e-5
DEFAULT_CONFIDENCE = 0.95
MEMBERS, HELD_OUT, ORIGINAL = "Members", "Held-out", "Original"


@dataclass(frozen=True)
class EpsilonBound:
    """The largest epsilon lower bound found, and the test it came from.

    ``tpr`` and ``fpr`` are measured on the rows the bound was computed on (the evaluation half with
    ``correction="split"``); ``threshold`` is the cut (member when ``score > threshold``); ``form``
    one of :data:`FORMS`. With no informative test ``epsilon`` is 0 and ``threshold`` NaN.
    """

    epsilon: float
    threshold: float
    form: str
    tpr: float
    fpr: float
    n_members: int
    n_non_members: int


def check_bound_options(delta: float, confidence: float, method: str, correction: str = "none") -> None:
    """Raise ``ValueError`` naming the bad argument (``delta`` in [0, 1), ``confidence`` in (0.5, 1))."""
    if not (np.isfinite(delta) and 0 <= delta < 1):
        raise ValueError(f"delta must be in [0, 1) (e.g. --dp_delta 1e-5), got {delta}")
    if not (np.isfinite(confidence) and 0.5 < confidence < 1):
        raise ValueError(f"confidence must be in (0.5, 1) (e.g. 0.95), got {confidence}")
    if method not in METHODS:
        raise ValueError(f"unknown epsilon bound method {method!r}; choose from {', '.join(METHODS)}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown threshold-search correction {correction!r}; choose from {', '.join(CORRECTIONS)}")


def ratio_epsilon_bounds(k1: np.ndarray, n1: int, k0: np.ndarray, n0: int, beta: float, delta: float = 0.0,
                         method: str = "clopper-pearson") -> np.ndarray:
    """``log`` of a ``1 - beta`` lower confidence limit of ``(p1 - delta) / p0`` (``-inf`` where none).

    Parameters
    ----------
    k1, k0 : counts (T,) of the two binomials (e.g. true and false positives per threshold)
    n1, n0 : their sizes (e.g. members and non-members)
    beta : one-sided error of the whole bound
    """
    k1, k0 = np.asarray(k1, dtype=np.float64), np.asarray(k0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "clopper-pearson":
            p1 = np.where(k1 > 0, stats.beta.ppf(beta / 2, k1, n1 - k1 + 1), 0.0)
            p0 = np.where(k0 < n0, stats.beta.ppf(1 - beta / 2, k0 + 1, n0 - k0), 1.0)
            ratio = (p1 - delta) / p0
        elif method == "katz-log":
            both_full = (k1 == n1) & (k0 == n0)            # TF Privacy's adjustment of the all-positive cut
            k1 = np.where(both_full, n1 - 0.5, k1)
            k0 = np.where(both_full, n0 - 0.5, np.where(k0 == 0, 0.5, k0))
            p1, p0 = k1 / n1, k0 / n0
            shifted = p1 - delta
            se = np.sqrt(p1 * (1 - p1) / (n1 * shifted ** 2) + (1 - p0) / k0)
            ratio = np.where((k1 > 0) & (shifted > 0), shifted / p0 * np.exp(stats.norm.ppf(beta) * se), 0.0)
        else:
            raise ValueError(f"unknown epsilon bound method {method!r}; choose from {', '.join(METHODS)}")
        return np.where(ratio > 0, np.log(ratio), -np.inf)


def threshold_epsilon_bounds(member_scores, non_member_scores, thresholds, beta: float, delta: float = 0.0,
                             method: str = "clopper-pearson") -> np.ndarray:
    """Bounds (2, T) of both forms (rows in :data:`FORMS` order) at each threshold (member when ``score > t``)."""
    tp, fp, m, n = _counts(member_scores, non_member_scores, thresholds)
    return np.stack([ratio_epsilon_bounds(tp, m, fp, n, beta, delta, method),
                     ratio_epsilon_bounds(n - fp, n, m - tp, m, beta, delta, method)])


def epsilon_lower_bound(member_scores, non_member_scores, delta: float = DEFAULT_DELTA,
                        confidence: float = DEFAULT_CONFIDENCE, method: str = "clopper-pearson",
                        correction: str = "split", seed: int = 0) -> EpsilonBound:
    """The largest epsilon lower bound over thresholds, valid at ``confidence`` (see the module docstring).

    Parameters
    ----------
    member_scores : (M,) scores of members, higher = member
    non_member_scores : (N,) scores of non-members
    seed : the seeded split of ``correction="split"`` (unused otherwise)
    """
    check_bound_options(delta, confidence, method, correction)
    members, non_members = _scores(member_scores, "member_scores"), _scores(non_member_scores, "non_member_scores")
    beta = 1 - confidence
    if correction != "split":
        thresholds = _candidates(members, non_members)
        tests = 2 * len(thresholds) if correction == "union" else 1
        return _best(members, non_members, thresholds, beta / tests, delta, method)
    if min(len(members), len(non_members)) < 2:
        raise ValueError("correction='split' needs at least 2 members and 2 non-members (one per half); "
                         "use correction='union'")
    rng = np.random.default_rng(seed)
    pick_m, pick_n = _half(len(members), rng), _half(len(non_members), rng)
    chosen = _best(members[pick_m], non_members[pick_n], _candidates(members[pick_m], non_members[pick_n]),
                   beta, delta, method)
    rest_m, rest_n = members[~pick_m], non_members[~pick_n]
    if not np.isfinite(chosen.threshold):
        return _no_bound(len(rest_m), len(rest_n))
    return _at(rest_m, rest_n, chosen.threshold, FORMS.index(chosen.form), beta, delta, method)


def epsilon_bound_at_threshold(member_scores, non_member_scores, threshold: float, delta: float = DEFAULT_DELTA,
                               confidence: float = DEFAULT_CONFIDENCE,
                               method: str = "clopper-pearson") -> EpsilonBound:
    """The ``TPR/FPR`` bound of one fixed threshold (member when ``score > threshold``): one test at
    ``confidence``, valid when the threshold was set without these scores (e.g. on held-out rows)."""
    check_bound_options(delta, confidence, method)
    members, non_members = _scores(member_scores, "member_scores"), _scores(non_member_scores, "non_member_scores")
    return _at(members, non_members, float(threshold), 0, 1 - confidence, delta, method)


def epsilon_bound_table(attack_outputs: Mapping, held_out_scores: Mapping | None = None, seed: int = 0,
                        delta: float = DEFAULT_DELTA, confidence: float = DEFAULT_CONFIDENCE,
                        method: str = "clopper-pearson", correction: str = "split",
                        levels=HELD_OUT_LEVELS) -> pd.DataFrame:
    """One row per attack and non-member set: the searched bound and the bounds at the held-out thresholds.

    Parameters
    ----------
    attack_outputs : attack -> ``"Members"`` / set -> object with ``.scores`` (N,)
        (:class:`attacks.evaluation.AttackOutputs`)
    held_out_scores : attack -> set -> scores (N,), with ``"Held-out"``; None when the run has none
    seed : the run's ``--seed`` (each split is seeded from it, the attack and the set)

    Returns
    -------
    Columns ``set, attack, epsilon, threshold, form, TPR, FPR, members, non-members``, then per level
    ``epsilon@{p}%HeldOutFPR, threshold@..., TPR@..., FPR@...`` (NaN without held-out scores), then
    ``method, correction, confidence, delta``.
    """
    check_bound_options(delta, confidence, method, correction)
    rows = []
    for attack, per_set in attack_outputs.items():
        members = np.asarray(per_set[MEMBERS].scores)
        held_out = (held_out_scores or {}).get(attack, {}).get(HELD_OUT)
        cuts = {level: held_out_threshold(held_out, level) for level in levels} if held_out is not None else {}
        for set_name, outputs in per_set.items():
            if set_name == MEMBERS:
                continue
            found = epsilon_lower_bound(members, outputs.scores, delta, confidence, method, correction,
                                        seed=derive_seed(seed, "epsilon_bounds", attack, set_name))
            row = {"set": set_name, "attack": attack, "epsilon": found.epsilon, "threshold": found.threshold,
                   "form": found.form, "TPR": found.tpr, "FPR": found.fpr, "members": found.n_members,
                   "non-members": found.n_non_members}
            for level in levels:   # the held-out rows set the threshold: no bound of their own there
                at = (epsilon_bound_at_threshold(members, outputs.scores, cuts[level], delta, confidence, method)
                      if level in cuts and set_name != HELD_OUT else None)
                suffix = held_out_suffix(level)
                row.update({f"epsilon{suffix}": at.epsilon if at else np.nan,
                            f"threshold{suffix}": at.threshold if at else np.nan,
                            f"TPR{suffix}": at.tpr if at else np.nan, f"FPR{suffix}": at.fpr if at else np.nan})
            rows.append({**row, "method": method, "correction": correction, "confidence": confidence,
                         "delta": delta})
    return pd.DataFrame(rows)


def bound_violations(table: pd.DataFrame, accountant_epsilon: float, set_name: str = ORIGINAL) -> list[str]:
    """Sentences for every bound of ``set_name`` (true in-distribution non-members) above the DP
    accountant's epsilon: each is a bug in the attack, the accounting or the training. Empty when valid.

    Parameters
    ----------
    table : :func:`epsilon_bound_table`'s output
    accountant_epsilon : the epsilon the DP-SGD accountant reports for the target
    """
    if not (np.isfinite(accountant_epsilon) and accountant_epsilon >= 0):
        raise ValueError(f"accountant_epsilon must be a non-negative number, got {accountant_epsilon}")
    columns = ["epsilon"] + [c for c in table.columns if c.startswith("epsilon@")]
    sentences = []
    for _, row in table[table["set"] == set_name].iterrows():
        for column in columns:
            value = row[column]
            if np.isfinite(value) and value > accountant_epsilon:
                where = "over thresholds" if column == "epsilon" else "at the " + column[len("epsilon@"):]
                sentences.append(
                    f"{row['attack']}: the epsilon lower bound {where} on {set_name} non-members is {value:.3f}, "
                    f"above the accountant's epsilon {accountant_epsilon:.3f} ({row['confidence']:.0%} "
                    f"confidence): a bug in the attack, the privacy accounting or the DP training")
    return sentences


def _scores(values, name: str) -> np.ndarray:
    scores = np.asarray(values, dtype=np.float64)
    if scores.ndim != 1 or not len(scores):
        raise ValueError(f"{name} must be a non-empty 1-D array of scores, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name} has NaN or infinite scores; an epsilon bound needs finite scores")
    return scores


def _candidates(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """Every distinct decision ``score > t``: below all scores, then at each distinct score but the largest."""
    values = np.unique(np.concatenate([members, non_members]))
    return np.concatenate([[-np.inf], values[:-1]])


def _counts(member_scores, non_member_scores, thresholds) -> tuple[np.ndarray, np.ndarray, int, int]:
    members, non_members = np.sort(np.asarray(member_scores)), np.sort(np.asarray(non_member_scores))
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    tp = len(members) - np.searchsorted(members, thresholds, side="right")
    fp = len(non_members) - np.searchsorted(non_members, thresholds, side="right")
    return tp, fp, len(members), len(non_members)


def _best(members, non_members, thresholds, beta, delta, method) -> EpsilonBound:
    bounds = threshold_epsilon_bounds(members, non_members, thresholds, beta, delta, method)
    form, index = np.unravel_index(np.argmax(bounds), bounds.shape)
    if not bounds[form, index] > 0:
        return _no_bound(len(members), len(non_members))
    return _result(members, non_members, thresholds[index], form, bounds[form, index])


def _at(members, non_members, threshold, form, beta, delta, method) -> EpsilonBound:
    bound = threshold_epsilon_bounds(members, non_members, [threshold], beta, delta, method)[form, 0]
    return _result(members, non_members, threshold, form, bound)


def _result(members, non_members, threshold, form, bound) -> EpsilonBound:
    tp, fp, m, n = _counts(members, non_members, [threshold])
    return EpsilonBound(max(float(bound), 0.0), float(threshold), FORMS[form], float(tp[0] / m), float(fp[0] / n), m, n)


def _no_bound(m: int, n: int) -> EpsilonBound:
    return EpsilonBound(0.0, float("nan"), FORMS[0], float("nan"), float("nan"), m, n)


def _half(size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask choosing ``size // 2`` of ``size`` rows."""
    mask = np.zeros(size, dtype=bool)
    mask[rng.permutation(size)[:size // 2]] = True
    return mask
