"""Where an attack works: its AUROC and TPR at 1% FPR on slices of the members and non-members.

As TF Privacy's slicing (``SlicingSpec``: by class, by classification correctness) plus confidence
deciles. For every attack, members against the ``"Original"`` non-members, on:

- ``all``: every sample (the baseline a slice is compared with);
- ``class``: the samples of each true class; classes with fewer than ``min_size`` members or
  non-members are merged into one ``other classes`` slice (marked when that is still small);
- ``confidence decile``: deciles of the target's maximum probability over members and non-members
  pooled (:func:`pandas.qcut`; tied edges, e.g. many scores saturated at 1.0, merge deciles);
- ``correctness``: samples the target classifies correctly, and wrongly.

Slices other than classes are kept as they are and marked in ``note`` when either side has fewer
than ``min_size`` samples; a slice with no member or no non-member has no metrics. Every interval is
a seeded bootstrap 95% interval (:func:`attacks.bootstrap.attack_intervals`), seeded from the run's
seed, the attack and the slice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from attacks.bootstrap import RESAMPLES, attack_intervals
from attacks.evaluation import AttackOutputs
from utils.seeding import derive_seed

MEMBERS, NON_MEMBERS = "Members", "Original"
MIN_SLICE = 20
DECILES = 10
LEVEL = 0.01   # the FPR at which the slice's TPR is reported
TPR_COLUMN = "TPR@1%FPR"
COLUMNS = ("attack", "slice_kind", "slice", "n_members", "n_non_members", "AUROC", "AUROC low", "AUROC high",
           TPR_COLUMN, f"{TPR_COLUMN} low", f"{TPR_COLUMN} high", "note")
SLICE_KINDS = ("all", "class", "confidence decile", "correctness")


@dataclass(frozen=True)
class Slice:
    """One slice: its kind, its name, and which members (M,) and non-members (N,) it holds."""

    kind: str
    name: str
    members: np.ndarray       # bool (M,)
    non_members: np.ndarray   # bool (N,)
    note: str = ""


def define_slices(member_max_probs: np.ndarray, non_member_max_probs: np.ndarray,
                  member_labels: np.ndarray | None = None, non_member_labels: np.ndarray | None = None,
                  member_predicted: np.ndarray | None = None, non_member_predicted: np.ndarray | None = None,
                  min_size: int = MIN_SLICE) -> list[Slice]:
    """The slices of members and non-members.

    Parameters
    ----------
    member_max_probs, non_member_max_probs : float arrays (M,), (N,)
        The target's maximum probability of each sample (the confidence deciles).
    member_labels, non_member_labels : int arrays (M,), (N,), optional
        True classes; without them there are no class and no correctness slices.
    member_predicted, non_member_predicted : int arrays (M,), (N,), optional
        The target's predicted classes; without them there are no correctness slices.
    min_size : slices with fewer members or non-members are merged (classes) or marked
    """
    m_conf, n_conf = _vector(member_max_probs, "member_max_probs"), _vector(non_member_max_probs, "non_member_max_probs")
    m, n = len(m_conf), len(n_conf)
    slices = [Slice("all", "all samples", np.ones(m, bool), np.ones(n, bool))]
    has_labels = member_labels is not None and non_member_labels is not None
    if has_labels:
        m_labels = _vector(member_labels, "member_labels", m)
        n_labels = _vector(non_member_labels, "non_member_labels", n)
        slices += _class_slices(m_labels, n_labels, min_size)
    slices += _decile_slices(m_conf, n_conf)
    if has_labels and member_predicted is not None and non_member_predicted is not None:
        m_right = _vector(member_predicted, "member_predicted", m) == m_labels
        n_right = _vector(non_member_predicted, "non_member_predicted", n) == n_labels
        slices += [Slice("correctness", "correctly classified", m_right, n_right),
                   Slice("correctness", "misclassified", ~m_right, ~n_right)]
    return [_marked(s, min_size) for s in slices]


def slice_table(outputs: Mapping[str, Mapping[str, AttackOutputs]], member_labels: np.ndarray | None = None,
                non_member_labels: np.ndarray | None = None, member_predicted: np.ndarray | None = None,
                non_member_predicted: np.ndarray | None = None, *, seed: int, non_members: str = NON_MEMBERS,
                min_size: int = MIN_SLICE, resamples: int = RESAMPLES) -> pd.DataFrame:
    """AUROC and TPR at 1% FPR, with bootstrap 95% intervals, of every attack on every slice.

    Parameters
    ----------
    outputs : attack -> ``{"Members": AttackOutputs, "Original": AttackOutputs, ...}`` (the engine's
        :class:`attacks.evaluation.AttackOutputs`; ``.max_probs`` gives the confidence deciles);
        attacks without the ``non_members`` set are left out
    member_labels, non_member_labels, member_predicted, non_member_predicted : see :func:`define_slices`
    seed : the run's seed (each interval's resampling is seeded from it, the attack and the slice)
    non_members : the non-member set sliced against the members

    Returns
    -------
    DataFrame with columns :data:`COLUMNS`, one row per attack and slice (kinds in
    :data:`SLICE_KINDS` order); metrics are NaN where a side of the slice is empty.
    """
    rows = []
    for attack, per_set in outputs.items():
        if MEMBERS not in per_set or non_members not in per_set:
            continue
        members, others = per_set[MEMBERS], per_set[non_members]
        for piece in define_slices(members.max_probs, others.max_probs, member_labels, non_member_labels,
                                   member_predicted, non_member_predicted, min_size):
            rows.append(_row(attack, piece, members.scores, others.scores, resamples,
                             derive_seed(seed, "slices", attack, piece.kind, piece.name)))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _row(attack: str, piece: Slice, member_scores: np.ndarray, non_member_scores: np.ndarray, resamples: int,
         seed: int) -> dict:
    n_m, n_n = int(piece.members.sum()), int(piece.non_members.sum())
    row = {"attack": attack, "slice_kind": piece.kind, "slice": piece.name, "n_members": n_m,
           "n_non_members": n_n, "note": piece.note}
    if not n_m or not n_n:
        return {**row, **{c: np.nan for c in COLUMNS[5:-1]}}
    found = attack_intervals(member_scores[piece.members], non_member_scores[piece.non_members], seed=seed,
                             resamples=resamples, levels=(LEVEL,))
    for metric, column in (("AUROC", "AUROC"), (f"TPR@{LEVEL * 100:g}%FPR", TPR_COLUMN)):
        value = found[metric]
        row.update({column: value.estimate, f"{column} low": value.low, f"{column} high": value.high})
    return row


def _class_slices(m_labels: np.ndarray, n_labels: np.ndarray, min_size: int) -> list[Slice]:
    """One slice per true class; the classes too small on either side pooled into one slice."""
    slices, small = [], []
    for label in np.union1d(m_labels, n_labels):
        m_mask, n_mask = m_labels == label, n_labels == label
        if m_mask.sum() >= min_size and n_mask.sum() >= min_size:
            slices.append(Slice("class", f"class {label}", m_mask, n_mask))
        else:
            small.append(label)
    if small:
        name = f"class {small[0]}" if len(small) == 1 else f"other classes ({len(small)} with < {min_size} a side)"
        slices.append(Slice("class", name, np.isin(m_labels, small), np.isin(n_labels, small)))
    return slices


def _decile_slices(m_conf: np.ndarray, n_conf: np.ndarray) -> list[Slice]:
    """Deciles of the maximum probability over members and non-members pooled (tied edges merge)."""
    pooled = np.concatenate([m_conf, n_conf])
    if np.ptp(pooled) == 0:   # one value: one bin (qcut cannot cut it)
        codes = np.zeros(len(pooled), dtype=int)
    else:
        codes = np.asarray(pd.qcut(pooled, DECILES, labels=False, duplicates="drop"))
    slices = []
    for number, code in enumerate(np.unique(codes), start=1):
        in_bin = codes == code
        name = f"decile {number}: max prob {pooled[in_bin].min():.4g}..{pooled[in_bin].max():.4g}"
        slices.append(Slice("confidence decile", name, in_bin[:len(m_conf)], in_bin[len(m_conf):]))
    return slices


def _marked(piece: Slice, min_size: int) -> Slice:
    n_m, n_n = int(piece.members.sum()), int(piece.non_members.sum())
    if not n_m or not n_n:
        note = f"no {'members' if not n_m else 'non-members'}: no metrics"
    elif n_m < min_size or n_n < min_size:
        note = f"fewer than {min_size} members or non-members: unreliable"
    else:
        return piece
    return Slice(piece.kind, piece.name, piece.members, piece.non_members, note)


def _vector(values, what: str, length: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (length is not None and len(array) != length):
        expected = f"({length},)" if length is not None else "(N,)"
        raise ValueError(f"slices: {what} must have shape {expected}, got {array.shape}")
    return array
