"""The same number of IN and OUT reference models for every row: what makes LiRA and RMIA count-invariant.

A per-row mean over OUT models is a different estimator when one row averages 4 models and another
8 (with saturated, heavy-tailed probabilities the mean over more models is typically lower), so a
membership matrix in which members and non-members have different counts biases the attack by
itself. :func:`select_models` keeps, for every row, a seeded random subset of exactly ``n_in`` of
its IN models and ``n_out`` of its OUT models, the smallest counts any row has (or a fixed number
asked for); rows declared outside the population (no model was meant to train on them: OOD or
generated data) have no IN models, and online attacks estimate their IN statistics as documented
in :mod:`attacks.reference`. Any other row without IN models is refused by online attacks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelSelection:
    """Which reference models each row's statistics use (both ``(K, N)`` bool), and the counts."""

    inside: np.ndarray      # IN models used (exactly n_in per row; none for unseen rows)
    outside: np.ndarray     # OUT models used (exactly n_out per row)
    n_in: int
    n_out: int
    unseen: np.ndarray      # (N,) rows outside the population (no IN models)

    def part(self, start: int, stop: int) -> "ModelSelection":
        return ModelSelection(self.inside[:, start:stop], self.outside[:, start:stop], self.n_in, self.n_out,
                              self.unseen[start:stop])


def select_models(member: np.ndarray, *, online: bool, outside_population: np.ndarray, need_in: int,
                  need_out: int, models_per_row: int | None, seed: int, attack: str,
                  rows_named=None) -> ModelSelection:
    """Seeded subsets of ``member`` (K, N) with the same IN and OUT counts in every row.

    Parameters
    ----------
    member : bool (K, N), ``member[k, i]``: row i is in model k's training set
    online : whether IN models are used (offline attacks use OUT models only)
    outside_population : bool (N,), rows no reference model trains on by design
    need_in, need_out : the fewest IN / OUT models per row the attack can use
    models_per_row : None (the smallest counts any row has) or the number of models per row
        (offline: OUT models; online: ``models_per_row // 2`` IN and the rest OUT)
    seed : seeds the subsets (they depend on the membership matrix only, never on a target)
    attack : name for error messages; rows_named : function row index -> words (default "sample i")
    """
    name = rows_named or (lambda i: f"sample {i}")
    k, n = member.shape
    counts_in, counts_out = member.sum(axis=0), k - member.sum(axis=0)
    declared = np.asarray(outside_population, dtype=bool)
    if (declared & (counts_in > 0)).any():
        first = int(np.flatnonzero(declared & (counts_in > 0))[0])
        raise ValueError(f"outside_population: {name(first)} is declared outside the reference population "
                         f"but is IN for {int(counts_in[first])} reference model(s)")
    want_in, want_out = _wanted(models_per_row, online, attack)
    n_out = int(counts_out.min()) if n else 0
    if want_out is not None:
        _enough(counts_out, want_out, "OUT", f"models_per_row={models_per_row}", name)
        n_out = want_out
    _enough(counts_out, need_out, "OUT", attack, name)
    n_in = 0
    if online:
        seen = ~declared
        if n and not member.any():
            raise ValueError(f"reference_in: no sample is IN for any reference model; online {attack} needs IN "
                             "models (use online=False)")
        lacking = seen & (counts_in == 0)
        if lacking.any():
            rows = np.flatnonzero(lacking)
            listed = ", ".join(name(int(i)) for i in rows[:3]) + (f" ({len(rows)} in all)" if len(rows) > 3 else "")
            raise ValueError(f"reference_in: {listed} {'is' if len(rows) == 1 else 'are'} IN for no reference model; online {attack} scores every "
                             "row of the reference population from the same number of IN models (pass rows no "
                             "model trains on as outside_population, or use online=False)")
        n_in = int(counts_in[seen].min()) if seen.any() else 0
        if want_in is not None:
            _enough(np.where(seen, counts_in, want_in), want_in, "IN", f"models_per_row={models_per_row}", name)
            n_in = want_in
        if seen.any():
            _enough(np.where(seen, counts_in, need_in), need_in, "IN", attack, name)
    keys = _Keys(seed, (k, n))
    return ModelSelection(_first(keys, member, n_in, counts_in, declared) if online else np.zeros_like(member),
                          _first(keys, ~member, n_out, counts_out), n_in, n_out, declared)


def _wanted(models_per_row: int | None, online: bool, attack: str) -> tuple[int | None, int | None]:
    if models_per_row is None:
        return None, None
    if int(models_per_row) != models_per_row or models_per_row < (2 if online else 1):
        raise ValueError(f"models_per_row: expected an integer >= {2 if online else 1} for "
                         f"{'online' if online else 'offline'} {attack}, got {models_per_row!r}")
    if not online:
        return None, int(models_per_row)
    return int(models_per_row) // 2, int(models_per_row) - int(models_per_row) // 2


def _enough(counts: np.ndarray, need: int, kind: str, who: str, name) -> None:
    if len(counts) and counts.min() < need:
        first = int(np.argmin(counts >= need))
        raise ValueError(f"reference_in: {name(first)} has {int(counts[first])} {kind} reference model(s); "
                         f"{who} needs {need} per sample (use more reference models"
                         + (", fixed_variance=True" if who.startswith("LiRA") and need == 2 else "")
                         + " or fewer models per row)")


class _Keys:
    """Seeded random keys, one per (row, model), drawn only for rows with more models than they use
    (which rows those are depends on the membership matrix alone)."""

    def __init__(self, seed: int, shape: tuple[int, int]):
        self.seed, self.shape, self._rng = seed, shape, None

    def values(self, columns: np.ndarray) -> np.ndarray:
        """Keys (len(columns), K) of these rows."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng.random((len(columns), self.shape[0]))


def _first(keys: _Keys, mask: np.ndarray, count: int, counts: np.ndarray,
           unseen: np.ndarray | None = None) -> np.ndarray:
    """Per column, the ``count`` entries of ``mask`` with the smallest keys (none in ``unseen`` columns)."""
    if count == 0:
        return np.zeros_like(mask)
    exact = counts == count if unseen is None else (counts == count) | unseen
    if exact.all():                       # nothing to choose (e.g. a balanced layout): the mask itself
        return mask.copy()
    chosen = mask.copy()
    columns = np.flatnonzero(~exact)
    masked = np.where(mask[:, columns].T, keys.values(columns), np.inf)         # (n, K)
    kth = np.partition(masked, count - 1, axis=1)[:, count - 1]
    chosen[:, columns] = (masked <= kth[:, None]).T & mask[:, columns]
    return chosen
