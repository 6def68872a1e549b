"""Binned calibration metrics: reliability-diagram data, ECE (l1 / l2 / max) and MCE, and the
top-label and class-wise ECE of probability matrices.

Answer-level inputs are `confidence` (the probability that the answer is correct, in [0, 1]) and
`correct` (bool), both of shape (..., N): the last axis holds N predictions and leading axes are
independent batches, evaluated together without a Python loop. 1-D input gives a Python float,
batched input an ndarray of shape (...).

Bins follow `calibbench.metrics.binning`: bin b holds p with e_b <= p < e_{b+1}, p == 1.0 in the
last bin and p == 0.0 in the first. "width" edges are b / B; "mass" edges are the quantiles of each
row's confidences (one set of edges per batch row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm as normal

from calibbench.errors import InputError
from calibbench.metrics.binning import Binning, assign_bins, bin_edges, check_n_bins
from calibbench.validation import (
    as_answer_pair,
    as_multiclass_pair,
    check_level,
    scalar_or_array,
)

Norm = Literal["l1", "l2", "max"]
NORMS = ("l1", "l2", "max")


@dataclass(frozen=True, eq=False)
class Reliability:
    """Reliability-diagram data for B bins, as plain arrays (drawing is done elsewhere).

    edges: (B + 1,) bin edges. count: (B,) int64 predictions per bin. mean_confidence and
    accuracy: (B,) per-bin means, NaN for empty bins. ci_low, ci_high: (B,) Wilson score interval
    for the accuracy at coverage `level`, NaN for empty bins.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    level: float

    def to_frame(self) -> pd.DataFrame:
        """One row per bin: bin_low, bin_high, count, mean_confidence, accuracy, ci_low, ci_high."""
        return pd.DataFrame(
            {
                "bin_low": self.edges[:-1],
                "bin_high": self.edges[1:],
                "count": self.count,
                "mean_confidence": self.mean_confidence,
                "accuracy": self.accuracy,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise InputError(f"norm: expected one of {NORMS}, got {norm!r}")


def _bin_sums(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int, binning: Binning
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edges and per-bin (count, confidence sum, hit count), each (..., B); counts int64.

    All batch rows are binned with one `np.bincount` over the flat index row * B + bin.
    """
    edges = bin_edges(confidence, n_bins, binning)
    lead = confidence.shape[:-1]
    rows = math.prod(lead)
    bins = assign_bins(confidence, edges).reshape(rows, -1)
    flat = (np.arange(rows, dtype=np.int64)[:, None] * n_bins + bins).ravel()
    size = rows * n_bins
    count = np.bincount(flat, minlength=size).astype(np.int64, copy=False)
    conf_sum = np.bincount(flat, weights=confidence.ravel(), minlength=size)
    hits = np.bincount(flat[correct.ravel()], minlength=size).astype(np.int64, copy=False)
    shape = (*lead, n_bins)
    return edges, count.reshape(shape), conf_sum.reshape(shape), hits.reshape(shape)


def _ece(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int, binning: Binning, norm: Norm
) -> np.ndarray:
    """ECE of validated (..., N) arrays, shape (...)."""
    _check_norm(norm)
    n_bins = check_n_bins(n_bins)
    _, count, conf_sum, hits = _bin_sums(confidence, correct, n_bins, binning)
    n = confidence.shape[-1]
    gap_mass = np.abs(hits - conf_sum)  # n_b * |acc_b - conf_b|
    if norm == "l1":
        return gap_mass.sum(axis=-1) / n
    gap = gap_mass / np.maximum(count, 1)  # |acc_b - conf_b|; 0 for empty bins
    if norm == "l2":
        return np.sqrt((count * gap**2).sum(axis=-1) / n)
    return gap.max(axis=-1)


def reliability(
    confidence: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 15,
    binning: Binning = "width",
    level: float = 0.95,
) -> Reliability:
    """Per-bin counts, mean confidence, accuracy and Wilson interval for 1-D (N,) inputs.

    Raises InputError for batched input, invalid arrays, bad `n_bins` / `binning`, or `level`
    outside (0, 1).
    """
    c, y = as_answer_pair(confidence, correct)
    if c.ndim != 1:
        raise InputError(
            f"reliability: expected 1-D confidence and correct, got shape {c.shape}; "
            "compute one diagram per row"
        )
    level = check_level(level)
    n_bins = check_n_bins(n_bins)
    edges, count, conf_sum, hits = _bin_sums(c, y, n_bins, binning)
    empty = count == 0
    safe = np.maximum(count, 1)
    acc = np.where(empty, np.nan, hits / safe)
    z = normal.ppf(0.5 + level / 2.0)
    # Wilson score interval: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    denom = 1.0 + z**2 / safe
    centre = (acc + z**2 / (2.0 * safe)) / denom
    half = z / denom * np.sqrt(acc * (1.0 - acc) / safe + z**2 / (4.0 * safe**2))
    return Reliability(
        edges=edges,
        count=count,
        mean_confidence=np.where(empty, np.nan, conf_sum / safe),
        accuracy=acc,
        ci_low=np.clip(centre - half, 0.0, 1.0),
        ci_high=np.clip(centre + half, 0.0, 1.0),
        level=level,
    )


def ece(
    confidence: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 15,
    binning: Binning = "width",
    norm: Norm = "l1",
) -> float | np.ndarray:
    """Top-label expected calibration error of (..., N) inputs; float for 1-D, else shape (...).

    With n_b predictions, accuracy acc_b and mean confidence conf_b in bin b:
    "l1" = Σ_b (n_b/N)·|acc_b - conf_b|; "l2" = sqrt(Σ_b (n_b/N)·(acc_b - conf_b)²) (as in
    torchmetrics); "max" = max over non-empty bins of |acc_b - conf_b| (MCE).
    Raises InputError for invalid arrays or a bad `n_bins`, `binning` or `norm`.
    """
    c, y = as_answer_pair(confidence, correct)
    return scalar_or_array(_ece(c, y, n_bins, binning, norm))


def mce(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15, binning: Binning = "width"
) -> float | np.ndarray:
    """Maximum calibration error: `ece(..., norm="max")`."""
    return ece(confidence, correct, n_bins=n_bins, binning=binning, norm="max")


def top_label_ece(
    probs: ArrayLike,
    labels: ArrayLike,
    n_bins: int = 15,
    binning: Binning = "width",
    norm: Norm = "l1",
) -> float:
    """ECE of the top label of an (N, K) probability matrix against integer labels (N,).

    Confidence is max_k p_ik; the answer is correct when argmax_k p_ik (first index on ties)
    equals the label. Norms as in `ece`. Raises InputError for rows not summing to 1, labels
    outside [0, K), mismatched lengths, or a bad `n_bins`, `binning` or `norm`.
    """
    p, y = as_multiclass_pair(probs, labels)
    return float(_ece(p.max(axis=1), p.argmax(axis=1) == y, n_bins, binning, norm))


def classwise_ece(
    probs: ArrayLike,
    labels: ArrayLike,
    n_bins: int = 15,
    binning: Binning = "width",
    norm: Norm = "l1",
) -> float:
    """Class-wise ECE (Kull et al. 2019): (1/K) Σ_k ECE of p_ik against outcomes 1[y_i = k].

    probs (N, K), labels (N,). Each class is binned on its own (value, outcome) pairs with the
    same binning ("mass" edges are per class). Norms and errors as in `top_label_ece`.
    """
    p, y = as_multiclass_pair(probs, labels)
    k = p.shape[1]
    outcomes = y[None, :] == np.arange(k)[:, None]
    return float(_ece(np.ascontiguousarray(p.T), outcomes, n_bins, binning, norm).mean())
