"""Binned calibration metrics: reliability-diagram data, ECE (l1 / l2 / max) and MCE, the
top-label and class-wise ECE of probability matrices, and the equal-mass variants of other
benchmarks (adaptive and RMS calibration error, HELM's 10-bin ECE), each with its own binning.

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


def _sums_in_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (count, confidence sum, hit count), each (..., B), of predictions (..., N) whose
    bin indices in [0, B) are `bins`; counts int64.

    All batch rows are binned with one `np.bincount` over the flat index row * B + bin.
    """
    lead = confidence.shape[:-1]
    rows = math.prod(lead)
    flat = (np.arange(rows, dtype=np.int64)[:, None] * n_bins + bins.reshape(rows, -1)).ravel()
    size = rows * n_bins
    count = np.bincount(flat, minlength=size).astype(np.int64, copy=False)
    conf_sum = np.bincount(flat, weights=confidence.ravel(), minlength=size)
    hits = np.bincount(flat[correct.ravel()], minlength=size).astype(np.int64, copy=False)
    shape = (*lead, n_bins)
    return count.reshape(shape), conf_sum.reshape(shape), hits.reshape(shape)


def _bin_sums(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int, binning: Binning
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edges and per-bin (count, confidence sum, hit count), each (..., B); counts int64."""
    edges = bin_edges(confidence, n_bins, binning)
    bins = assign_bins(confidence, edges)
    return edges, *_sums_in_bins(confidence, correct, bins, n_bins)


def _norm_of_gaps(
    count: np.ndarray, conf_sum: np.ndarray, hits: np.ndarray, n: int, norm: Norm
) -> np.ndarray:
    """Count-weighted l1 / l2 norm, or the max, of the per-bin gaps |acc_b - conf_b|: (...)."""
    gap_mass = np.abs(hits - conf_sum)  # n_b * |acc_b - conf_b|
    if norm == "l1":
        return gap_mass.sum(axis=-1) / n
    gap = gap_mass / np.maximum(count, 1)  # |acc_b - conf_b|; 0 for empty bins
    if norm == "l2":
        return np.sqrt((count * gap**2).sum(axis=-1) / n)
    return gap.max(axis=-1)


def _ece(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int, binning: Binning, norm: Norm
) -> np.ndarray:
    """ECE of validated (..., N) arrays, shape (...)."""
    _check_norm(norm)
    n_bins = check_n_bins(n_bins)
    _, count, conf_sum, hits = _bin_sums(confidence, correct, n_bins, binning)
    return _norm_of_gaps(count, conf_sum, hits, confidence.shape[-1], norm)


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


def _adaptive_bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin indices (..., N) in [0, B) of the adaptive binning of Nixon et al. (2019).

    As in uncertainty-metrics' `get_adaptive_bins` (the reference implementation of ACE): with the
    confidences sorted, s, the lower edge of bin b is s[round(b·N/B)] (numpy's round, capped at
    N - 1), and bin b holds p with s[round(b·N/B)] <= p < s[round((b+1)·N/B)]. Bins hold N/B
    predictions each, give or take one, except that ties never straddle an edge (they all go into
    the higher bin), which can leave bins empty.
    """
    n = confidence.shape[-1]
    at = np.minimum(np.round(np.linspace(0, n, n_bins, endpoint=False)).astype(np.int64), n - 1)
    lower = np.sort(confidence, axis=-1)[..., at[1:]]  # (..., B - 1) inner edges
    return (confidence[..., :, None] >= lower[..., None, :]).sum(axis=-1, dtype=np.int64)


def _adaptive_ce(c: np.ndarray, y: np.ndarray, n_bins: int, norm: Norm) -> np.ndarray:
    """Adaptive calibration error of validated (..., N) arrays, shape (...)."""
    count, conf_sum, hits = _sums_in_bins(c, y, _adaptive_bins(c, n_bins), n_bins)
    return _norm_of_gaps(count, conf_sum, hits, c.shape[-1], norm)


def adaptive_calibration_error(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15, norm: Norm = "l1"
) -> float | np.ndarray:
    """Adaptive (equal-mass) calibration error of (..., N) inputs (Nixon et al. 2019, ACE).

    Σ_b (n_b/N)·|acc_b - conf_b| over the adaptive bins of `_adaptive_bins` (equal counts, so the
    weights are ≈ 1/B, the paper's average over ranges). This is uncertainty-metrics'
    `gce(binning_scheme="adaptive", max_prob=True, class_conditional=False)` applied to the answer
    confidences, i.e. ACE restricted to the top label. "l2" gives the root-mean-square version,
    "max" the largest gap over non-empty bins. It differs from `ece(binning="mass")` only in the
    edges: sorted values here, interpolated quantiles there.
    Raises InputError for invalid arrays or a bad `n_bins` or `norm`.
    """
    c, y = as_answer_pair(confidence, correct)
    _check_norm(norm)
    return scalar_or_array(_adaptive_ce(c, y, check_n_bins(n_bins), norm))


def rms_calibration_error(
    confidence: ArrayLike, correct: ArrayLike, bin_size: int = 100
) -> float | np.ndarray:
    """Root-mean-square calibration error (Nguyen & O'Connor 2015; Hendrycks et al. 2019, used
    for MMLU): sqrt(Σ_b (n_b/N)·(acc_b - conf_b)²) over adaptive bins of about `bin_size`
    predictions, B = max(1, N // bin_size).

    As uncertainty-metrics' RMSCE (`gce(..., norm="l2", datapoints_per_bin=100)`), which keeps every
    bin; Hendrycks' `calib_err` loop leaves out the last bin. Fewer than `bin_size` predictions give
    one bin, |mean confidence - accuracy|. Raises InputError for invalid arrays or a `bin_size`
    that is not a positive integer.
    """
    c, y = as_answer_pair(confidence, correct)
    try:
        bin_size = check_n_bins(bin_size)
    except InputError:
        raise InputError(f"bin_size: expected a positive integer, got {bin_size!r}") from None
    return scalar_or_array(_adaptive_ce(c, y, max(1, c.shape[-1] // bin_size), "l2"))


def helm_ece(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float | np.ndarray:
    """HELM's equal-mass ECE (`ece_10_bin` with the default 10 bins) of (..., N) inputs.

    HELM calls `calibration.get_ece_em(max_probs, correct, num_bins=10)` from
    uncertainty-calibration (Kumar et al. 2019). Its binning: B' = min(B, N); the sorted
    confidences are split into B' consecutive runs by `np.array_split` (the first N mod B' runs one
    longer); the boundary between runs is the midpoint of the last value of one and the first of the
    next; a value equal to a boundary goes into the lower bin (`np.searchsorted`, side "left"), so
    ties straddling a split all go into the lower bin. Then Σ_b (n_b/N)·|acc_b - conf_b|.
    Raises InputError for invalid arrays or a bad `n_bins`.
    """
    c, y = as_answer_pair(confidence, correct)
    n = c.shape[-1]
    runs = min(check_n_bins(n_bins), n)
    size, extra = divmod(n, runs)
    starts = np.arange(1, runs) * size + np.minimum(np.arange(1, runs), extra)
    s = np.sort(c, axis=-1)
    bounds = (s[..., starts - 1] + s[..., starts]) / 2.0  # (..., B' - 1)
    bins = (c[..., :, None] > bounds[..., None, :]).sum(axis=-1, dtype=np.int64)
    count, conf_sum, hits = _sums_in_bins(c, y, bins, runs)
    return scalar_or_array(_norm_of_gaps(count, conf_sum, hits, n, "l1"))
