"""Entropy attack: members tend to get confident, low-entropy prediction vectors.

Salem et al., "ML-Leaks", NDSS 2019 (threshold on the Shannon entropy of the score vector), as the
code of Hintersdorf et al. (IJCAI 2022) computes it: the entropy of
``torch.distributions.Categorical(probs=p)`` in the dtype of ``p`` (float32 for the paper's
networks; torch clamps probabilities to ``[eps, 1 - eps]`` inside the logarithm, so a saturated
float32 row has entropy ``-log(1 - eps) ~ 1.19e-7``, not 0), a threshold searched on a grid of
10,000 points, and members strictly below it.
"""
from __future__ import annotations

import numpy as np

from attacks.base import AttackSpec, MembershipAttack

GRID_POINTS = 10_000  # candidate thresholds between the smallest and largest shadow entropy


def shannon_entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``probs`` (N, C), with 0 * log 0 = 0; returns (N,) float64.

    Exact reference (not used by the attack, which follows the paper's torch computation).
    """
    probs = np.asarray(probs, dtype=np.float64)
    safe = np.where(probs > 0, probs, 1.0)
    return -np.sum(probs * np.log(safe), axis=1)


def categorical_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of ``torch.distributions.Categorical(probs=probs)`` per row, in the dtype of ``probs``.

    Parameters
    ----------
    probs : float32 or float64 array (N, C)

    Returns
    -------
    array (N,) of the same dtype. Rows are renormalised and probabilities clamped to
    ``[eps, 1 - eps]`` inside the logarithm (torch's rule), which puts a floor of
    ``-log(1 - eps)`` under saturated rows.
    """
    import torch
    tensor = torch.from_numpy(probs if probs.flags.writeable else probs.copy())
    with torch.no_grad():
        distribution = torch.distributions.Categorical(probs=tensor, validate_args=False)
        return distribution.entropy().numpy()


def grid_threshold(member_entropy: np.ndarray, non_member_entropy: np.ndarray,
                   n_points: int = GRID_POINTS) -> np.floating:
    """The paper's entropy threshold: the first of ``n_points`` evenly spaced candidates from the
    smallest to the largest shadow entropy that maximises (non-members with H >= theta) + (members
    with H < theta).

    Candidates are float64 (NumPy's ``linspace``); as in the paper's NumPy 1 environment they are
    compared with the entropies in the entropies' dtype, so the result is returned in that dtype.
    """
    dtype = member_entropy.dtype.type
    both = np.concatenate([non_member_entropy, member_entropy])
    grid = np.linspace(float(both.min()), float(both.max()), n_points).astype(dtype)
    members, non_members = np.sort(member_entropy), np.sort(non_member_entropy)
    members_below = np.searchsorted(members, grid, side="left")          # H < theta
    non_members_at_or_above = len(non_members) - np.searchsorted(non_members, grid, side="left")
    return grid[int(np.argmax(members_below + non_members_at_or_above))]


class EntropyAttack(MembershipAttack):
    """Member when ``entropy(probs) < threshold_`` (strictly below; before this package followed
    the paper's code, ties counted as members and entropies were exact float64 values).

    ``score`` is the negative entropy in the dtype of the probabilities (float32 stays float32), so
    members are the scores strictly above ``-threshold_``.

    Attributes
    ----------
    threshold_ : float
        Fitted entropy threshold (nats), a value of the paper's 10,000-point grid in the dtype of the
        shadow probabilities (see :func:`grid_threshold`).
    """

    name = "Entropy"
    strict = True

    def _fit(self, members, non_members, member_labels, non_member_labels) -> None:
        dtype = np.result_type(members.dtype, non_members.dtype)
        theta = grid_threshold(categorical_entropy(members.astype(dtype, copy=False)),
                               categorical_entropy(non_members.astype(dtype, copy=False)))
        self.threshold_ = float(theta)

    def _score(self, probs, labels) -> np.ndarray:
        return -categorical_entropy(probs)

    def _decision_threshold(self) -> float:
        return -self.threshold_  # score = -H: -H > -theta exactly when H < theta


ENTROPY = AttackSpec("entropy", EntropyAttack)
