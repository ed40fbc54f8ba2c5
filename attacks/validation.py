"""Input checks at the edge of the attack API: arrays in, float32 / float64 / int64 NumPy out.

Probabilities given as float32 stay float32 (the paper's networks return float32 softmax outputs
and its attacks compute on them as they are); any other numeric type becomes float64.

Every error is a one-line ``ValueError`` that names the argument and what is wrong with it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

SUM_ATOL = 1e-4  # tolerance on row sums of float32/float64 probability vectors
ULPS_PER_SUM = 2  # low precision: rounding moves a row sum by at most ~eps/2 (measured), so 2 eps
_NOT_LOGITS = "(pass probabilities, not logits)"


def to_numpy(x: Any, name: str = "array") -> np.ndarray:
    """Convert a NumPy array, torch tensor or nested sequence to a NumPy array (no copy if possible)."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu()
        if x.is_floating_point() and str(x.dtype) not in ("torch.float32", "torch.float64"):
            x = x.double()  # bfloat16 has no NumPy equivalent
        return x.numpy()
    try:
        return np.asarray(x)
    except ValueError as error:  # e.g. ragged nested lists
        raise ValueError(f"{name}: cannot be read as an array ({error})") from None


def sum_tolerance(probs: Any) -> float:
    """Tolerance on row sums for ``probs``' own dtype: :data:`SUM_ATOL`, or :data:`ULPS_PER_SUM`
    machine epsilons of a coarser float (float16: 0.002, bfloat16: 0.016)."""
    dtype = getattr(probs, "dtype", None)
    if dtype is None:
        return SUM_ATOL
    if hasattr(probs, "detach"):  # torch dtype, without importing torch here
        eps = __import__("torch").finfo(dtype).eps if probs.is_floating_point() else 0.0
    else:
        eps = np.finfo(dtype).eps if np.dtype(dtype).kind == "f" else 0.0
    return max(SUM_ATOL, ULPS_PER_SUM * float(eps))


def stored_precision_tolerance(arr: np.ndarray) -> float:
    """:data:`ULPS_PER_SUM` epsilons of float16 or bfloat16 when every value of the float64
    ``arr`` is exactly one of that format (probabilities converted up from it), else :data:`SUM_ATOL`."""
    if np.array_equal(arr.astype(np.float16).astype(np.float64), arr):
        return max(SUM_ATOL, ULPS_PER_SUM * float(np.finfo(np.float16).eps))
    as32 = arr.astype(np.float32)
    if np.array_equal(as32.astype(np.float64), arr) and not (as32.view(np.uint32) & 0xFFFF).any():
        return max(SUM_ATOL, ULPS_PER_SUM * 2.0**-7)  # bfloat16: 8 significant bits
    return SUM_ATOL


def as_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """Check and convert prediction scores.

    Parameters
    ----------
    probs : array-like or torch.Tensor, shape (N, C)
        Probabilities; every row sums to 1 within :func:`sum_tolerance` (``SUM_ATOL`` for float32
        and float64; a few units of precision for float16 and bfloat16).
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of float32 (when given float32) or float64, shape (N, C)
    """
    tolerance = sum_tolerance(probs)
    arr = to_numpy(probs, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a numeric array of probabilities, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float32 if arr.dtype == np.float32 else np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (N, C), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty (shape {arr.shape}); need at least one sample and one class")
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(f"{name}: non-finite value {arr[row, col]} at row {row}, column {col}")
    negative = arr < 0
    if negative.any():
        row, col = np.argwhere(negative)[0]
        raise ValueError(
            f"{name}: negative value {arr[row, col]:.6g} at row {row}, column {col} {_NOT_LOGITS}"
        )
    sums = arr.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero(np.abs(sums - 1.0) > tolerance)
    if bad.size:  # values converted from float16/bfloat16 earlier keep their precision's tolerance
        tolerance = max(tolerance, stored_precision_tolerance(arr))
        bad = np.flatnonzero(np.abs(sums - 1.0) > tolerance)
    if bad.size:
        row = bad[0]
        more = f" (and {bad.size - 1} other rows)" if bad.size > 1 else ""
        raise ValueError(f"{name}: row {row} sums to {sums[row]:.6g}, expected 1{more} {_NOT_LOGITS}")
    return arr


def as_labels(labels: Any, n: int, name: str = "labels", probs_name: str = "probs") -> np.ndarray | None:
    """Check and convert class labels; ``None`` passes through.

    Parameters
    ----------
    labels : array-like or torch.Tensor, shape (N,), or None
        Integer class indices. Values outside ``[0, C)`` (e.g. -1) are allowed and mean
        "not in the model's label space"; attacks that use labels fall back to the predicted class.
    n : int
        Number of rows of the matching probabilities.

    Returns
    -------
    numpy.ndarray of int64, shape (N,), or None
    """
    if labels is None:
        return None
    arr = to_numpy(labels, name)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class indices, got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"{name}: has {len(arr)} entries but {probs_name} has {n} rows")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise ValueError(f"{name}: expected integer class indices, got dtype {arr.dtype}")


def check_same_classes(n_classes: int, probs: np.ndarray, name: str, expected_from: str) -> None:
    """Raise if ``probs`` does not have ``n_classes`` columns."""
    if probs.shape[1] != n_classes:
        raise ValueError(f"{name}: has {probs.shape[1]} classes but {expected_from} has {n_classes}")
