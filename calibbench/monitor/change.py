"""The change of an answer-level metric between two sets of answers, with a bootstrap interval.

Change = metric(new) - metric(baseline). Two designs:

- **paired**: the two sets hold the same items in the same order (row i is one item answered
  twice, e.g. the same question a month later or under a new prompt). Each resample draws one
  set of item indices and evaluates both runs on it, so what the items share cancels out of the
  difference.
- **unpaired**: different items (other sizes, other data). Each resample draws the baseline's
  and the new run's items independently.

The interval is the percentile interval of the resampled differences (numpy's linear
interpolation of the (1 - level)/2 and (1 + level)/2 quantiles) over the resamples on which the
metric is defined in both runs. Draws: `rng = np.random.default_rng(seed)`, then chunk after
chunk of m resamples (m = max(1, CHUNK_BYTES // (8 · items per resample))): paired
`rng.integers(0, n, size=(m, n))`; unpaired `rng.integers(0, n_b, size=(m, n_b))` and then
`rng.integers(0, n_new, size=(m, n_new))`. The result is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from calibbench.errors import InputError
from calibbench.metrics.binned import ece
from calibbench.metrics.bootstrap import CHUNK_BYTES
from calibbench.metrics.scores import accuracy, auroc, brier
from calibbench.validation import as_answer_pair, check_level

#: The direction in which each compared metric gets worse: +1 higher is worse, -1 lower is worse.
WORSE = {"ece": 1, "brier": 1, "accuracy": -1, "auroc": -1}


def change_metrics(n_bins: int = 15) -> dict[str, Callable[..., Any]]:
    """The compared metrics by name (ECE: top-label, `n_bins` equal-width bins, l1)."""
    return {
        "ece": partial(ece, n_bins=n_bins, binning="width", norm="l1"),
        "brier": brier,
        "accuracy": accuracy,
        "auroc": auroc,
    }


@dataclass(frozen=True)
class Change:
    """baseline, new: the metric on each run's answers; change = new - baseline; low, high: its
    percentile bootstrap interval at `level` (NaN when no resample defines it); n_undefined:
    resamples where the metric was undefined in either run (AUROC on a one-sided resample)."""

    baseline: float
    new: float
    change: float
    low: float
    high: float
    level: float
    n_resamples: int
    n_undefined: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return bool(self.low > 0.0 or self.high < 0.0)


def _check_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    return int(n_resamples)


def _one(metric: Callable[..., Any], c: np.ndarray, y: np.ndarray, which: str) -> float:
    try:
        return float(metric(c, y))
    except InputError as exc:
        raise InputError(f"{which} run: {exc}") from None


def metric_change(
    metric: Callable[..., Any],
    baseline: tuple[ArrayLike, ArrayLike],
    new: tuple[ArrayLike, ArrayLike],
    paired: bool,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Change:
    """The change of `metric` from `baseline` to `new`, each a (confidence, correct) pair of 1-D
    arrays, with its bootstrap interval (see the module docstring for the draws).

    `metric(confidence, correct)` must accept (R, N) arrays and return (R,) values (NaN where
    undefined), as every answer-level metric of `calibbench.metrics` does. Raises InputError for
    invalid arrays, paired sets of unequal length, a bad `level` or `n_resamples`, or a metric
    that is undefined on either run's answers (the message names the run).
    """
    cb, yb = as_answer_pair(*baseline)
    cn, yn = as_answer_pair(*new)
    if cb.ndim != 1 or cn.ndim != 1:
        raise InputError("metric_change: expected 1-D confidence and correct arrays")
    if paired and cb.shape != cn.shape:
        raise InputError(
            f"metric_change: paired answers need the same items, got {cb.size} baseline and "
            f"{cn.size} new answers; compare them unpaired"
        )
    level = check_level(level)
    n_resamples = _check_resamples(n_resamples)
    base_value = _one(metric, cb, yb, "baseline")
    new_value = _one(metric, cn, yn, "new")
    nb, nn = cb.size, cn.size
    rows = max(1, CHUNK_BYTES // (8 * (nb if paired else nb + nn)))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for first in range(0, n_resamples, rows):
        m = min(rows, n_resamples - first)
        ib = rng.integers(0, nb, size=(m, nb))
        inew = ib if paired else rng.integers(0, nn, size=(m, nn))
        resampled = np.asarray(metric(cn[inew], yn[inew]), dtype=np.float64)
        diffs[first : first + m] = resampled - np.asarray(metric(cb[ib], yb[ib]), np.float64)
    defined = diffs[~np.isnan(diffs)]
    low, high = (
        np.quantile(defined, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
        if defined.size
        else (np.nan, np.nan)
    )
    return Change(
        baseline=base_value,
        new=new_value,
        change=new_value - base_value,
        low=float(low),
        high=float(high),
        level=level,
        n_resamples=n_resamples,
        n_undefined=int(n_resamples - defined.size),
    )
