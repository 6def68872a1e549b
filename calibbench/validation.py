"""Checks and conversions of user-supplied arrays; every failure raises `InputError`.

Answer-level inputs are arrays of shape (..., N): the last axis holds the N predictions and any
leading axes are independent batches (the bootstrap evaluates many resamples at once this way).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibbench.errors import InputError

#: Default tolerance on |sum_k p_ik - 1| for probability rows (float32 softmax over a few
#: thousand classes stays well inside it).
ROW_SUM_ATOL = 1e-4


def _as_float(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected numbers, got {type(x).__name__} ({exc})") from None
    if a.ndim == 0:
        raise InputError(f"{name}: expected an array, got a scalar")
    if a.shape[-1] == 0:
        raise InputError(f"{name}: empty input (shape {a.shape}); at least one value is needed")
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise InputError(
            f"{name}: {int(bad.sum())} NaN or infinite value(s), first at index {tuple(first)}"
        )
    return a


def as_confidence(x: Any, name: str = "confidence") -> np.ndarray:
    """Return `x` as float64 after checking it is a non-empty array of finite values in [0, 1]."""
    a = _as_float(x, name)
    outside = (a < 0.0) | (a > 1.0)
    if outside.any():
        first = np.argwhere(outside)[0]
        raise InputError(
            f"{name}: {int(outside.sum())} value(s) outside [0, 1], first {a[tuple(first)]!r} at "
            f"index {tuple(first)}; pass probabilities, not logits or percentages"
        )
    return a


def as_correct(x: Any, name: str = "correct") -> np.ndarray:
    """Return `x` as a bool array; accepts booleans or numbers that are exactly 0 or 1."""
    a = np.asarray(x)
    if a.dtype == bool:
        if a.ndim == 0 or a.shape[-1] == 0:
            raise InputError(f"{name}: expected a non-empty array, got shape {a.shape}")
        return a
    f = _as_float(a, name)
    not_binary = (f != 0.0) & (f != 1.0)
    if not_binary.any():
        first = np.argwhere(not_binary)[0]
        raise InputError(
            f"{name}: outcomes must be 0/1 or booleans; found {f[tuple(first)]!r} at index "
            f"{tuple(first)}"
        )
    return f.astype(bool)


def check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    """Raise `InputError` unless `a` and `b` have the same shape."""
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; they must match"
        )


def as_answer_pair(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate an answer-level (confidence, correct) pair of equal shape (..., N)."""
    c = as_confidence(confidence)
    y = as_correct(correct)
    check_same_shape(c, y, ("confidence", "correct"))
    return c, y


def as_probabilities(p: Any, name: str = "probs", atol: float = ROW_SUM_ATOL) -> np.ndarray:
    """Return an (N, K) probability matrix as float64, rows in [0, 1] summing to 1 ± atol."""
    a = as_confidence(p, name)
    if a.ndim != 2:
        raise InputError(f"{name}: expected a 2-D (N, K) matrix, got shape {a.shape}")
    sums = a.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        i = int(np.argmax(off))
        raise InputError(
            f"{name}: {int(off.sum())} row(s) do not sum to 1 within {atol:g}; row {i} sums to "
            f"{sums[i]!r}. Pass softmax probabilities (or raise atol if the rounding is expected)"
        )
    return a


def as_labels(y: Any, n_classes: int, name: str = "labels") -> np.ndarray:
    """Return integer class labels as int64 after checking 0 <= y < n_classes."""
    a = np.asarray(y)
    if a.ndim == 0 or a.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-D array of class indices")
    if not np.issubdtype(a.dtype, np.integer):
        whole = np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a))
        if not (whole and np.all(a == np.round(a))):
            raise InputError(f"{name}: expected integer class indices, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    outside = (a < 0) | (a >= n_classes)
    if outside.any():
        i = int(np.argmax(outside))
        raise InputError(
            f"{name}: {int(outside.sum())} label(s) outside [0, {n_classes}), first {int(a[i])} at "
            f"index {i}"
        )
    return a


def as_multiclass_pair(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (N, K) probability matrix and its (N,) integer labels in [0, K)."""
    p = as_probabilities(probs)
    y = as_labels(labels, p.shape[1])
    if y.shape != (p.shape[0],):
        raise InputError(
            f"labels: expected shape ({p.shape[0]},) to match probs {p.shape}, got {y.shape}"
        )
    return p, y


def check_level(level: Any) -> float:
    """Return a confidence-interval coverage as a float after checking 0 < level < 1."""
    if not isinstance(level, (float, int, np.floating)) or not 0.0 < level < 1.0:
        raise InputError(f"level: expected a coverage strictly between 0 and 1, got {level!r}")
    return float(level)


def scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    """A 0-d result as a Python float; batched results stay arrays."""
    return float(x) if np.ndim(x) == 0 else x
