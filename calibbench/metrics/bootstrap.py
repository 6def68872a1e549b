"""Percentile bootstrap confidence intervals for answer-level metrics, vectorised over resamples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from calibbench.errors import InputError
from calibbench.validation import as_answer_pair, check_level

#: Resample indices are drawn and evaluated in chunks of max(1, CHUNK_BYTES // (8 * N)) resamples,
#: so one chunk's int64 (chunk, N) index array stays under about 32 MB.
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class BootstrapCI:
    """A metric's value on the data and its percentile bootstrap interval.

    estimate: the metric on the original data. low, high: the (1 - level)/2 and (1 + level)/2
    quantiles (numpy's linear interpolation) of the metric over the resamples where it is defined;
    NaN if it is defined on none. n_undefined: resamples where the metric was NaN (e.g. AUROC on
    a resample holding only correct answers).
    """

    estimate: float
    low: float
    high: float
    level: float
    n_resamples: int
    n_undefined: int


def bootstrap_ci(
    metric: Callable[..., Any],
    confidence: ArrayLike,
    correct: ArrayLike,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    **metric_kwargs: Any,
) -> BootstrapCI:
    """Percentile bootstrap interval for `metric(confidence, correct, **metric_kwargs)`.

    confidence, correct: 1-D (N,). `metric` must accept (R, N) arrays and return shape (R,) (every
    answer-level metric in `calibbench.metrics` does); all resamples of a chunk are evaluated in
    one call. Resample indices are `np.random.default_rng(seed).integers(0, N, size=(rows, N))`,
    drawn chunk after chunk (see CHUNK_BYTES), so the result is deterministic for a given seed.
    Raises InputError for invalid arrays, batched input, `level` outside (0, 1), `n_resamples`
    < 1, or a metric that does not return one value per resample.
    """
    c, y = as_answer_pair(confidence, correct)
    if c.ndim != 1:
        raise InputError(f"bootstrap_ci: expected 1-D confidence and correct, got shape {c.shape}")
    level = check_level(level)
    if (
        isinstance(n_resamples, bool)
        or not isinstance(n_resamples, (int, np.integer))
        or n_resamples < 1
    ):
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    name = getattr(metric, "__name__", repr(metric))
    estimate = np.asarray(metric(c, y, **metric_kwargs), dtype=np.float64)
    if estimate.shape != ():
        raise InputError(f"{name}: expected one value for 1-D input, got shape {estimate.shape}")
    n = c.shape[0]
    rows = max(1, CHUNK_BYTES // (8 * n))
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for first in range(0, n_resamples, rows):
        m = min(rows, n_resamples - first)
        idx = rng.integers(0, n, size=(m, n))
        chunk = np.asarray(metric(c[idx], y[idx], **metric_kwargs), dtype=np.float64)
        if chunk.shape != (m,):
            raise InputError(
                f"{name}: returned shape {chunk.shape} for a batch of {m} resamples of shape "
                f"({m}, {n}); the metric must support leading batch axes, (..., N) -> (...)"
            )
        values[first : first + m] = chunk
    defined = values[~np.isnan(values)]
    if defined.size:
        low, high = np.quantile(defined, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    else:
        low = high = np.nan
    return BootstrapCI(
        estimate=float(estimate),
        low=float(low),
        high=float(high),
        level=float(level),
        n_resamples=int(n_resamples),
        n_undefined=int(n_resamples - defined.size),
    )
