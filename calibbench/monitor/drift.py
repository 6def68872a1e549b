"""Drift of calibration: has a window's reliability curve moved away from a reference window's?

The test (`calibration_shift`): per confidence bin b (the cells' equal-width bins), the residual
r = y - c of each prediction (y = 1 correct). Under the null hypothesis, the mean residual in
every bin, E[y - c | bin b] (accuracy minus confidence in that bin), is the same in the window as
in the reference, and predictions are independent. With n, mean and sample variance s² of the
residuals in the bin in each window,

    t_b = (mean_window - mean_reference) / sqrt(s²_window / n_window + s²_reference / n_reference)

is Welch's statistic, with its two-sided p-value p_b from Student's t with the
Welch-Satterthwaite degrees of freedom; z_b = Φ⁻¹(1 - p_b / 2) is the normal deviate of the same
p-value, and X = Σ_b z_b² over the bins with at least `min_count` predictions in both windows (and
a positive variance) is referred to a chi-square with as many degrees of freedom as bins used
(asymptotically exact as counts grow; the t step keeps small bins from firing too often). It
fires on inflated confidence (items move to bins where they are right less often), on an
accuracy drop at the same confidence, and on any change of the curve's shape; a change in how
many predictions fall into each bin, with the curve unchanged, is not calibration drift and does
not fire it.

False alarms (`alarms`): with m tests in one report (windows x segments compared with the
reference), a test fires when p < alpha / m (Bonferroni), so the probability of any false alarm
in the report is at most alpha (asymptotically, under the null hypothesis for every test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2, norm, t

from calibbench.errors import InputError
from calibbench.monitor.windows import Cells, residual_moments

#: Fewest predictions a bin needs in both windows to enter the test.
MIN_COUNT = 20


@dataclass(frozen=True)
class Shift:
    """statistic: X (see the module docstring); df: bins used; p_value: P(chi2_df >= X), NaN
    when no bin has enough predictions in both windows (the test is then not done)."""

    statistic: float
    df: int
    p_value: float


def calibration_shift(reference: Cells, window: Cells, min_count: int = MIN_COUNT) -> Shift:
    """The test of the module docstring; raises InputError when the two have different bins
    or `min_count` < 2."""
    if reference.count.shape != window.count.shape:
        raise InputError(
            f"calibration_shift: bins differ ({reference.count.shape[1]} and "
            f"{window.count.shape[1]})"
        )
    if min_count < 2:
        raise InputError(f"min_count: expected at least 2, got {min_count}")
    stats = []
    for cells in (reference, window):
        n, first, second = residual_moments(cells)
        mean = first / np.maximum(n, 1)
        var = np.maximum(second - n * mean**2, 0.0) / np.maximum(n - 1, 1)
        stats.append((n, mean, var / np.maximum(n, 1)))
    (n_r, m_r, v_r), (n_w, m_w, v_w) = stats
    spread = v_r + v_w
    used = (n_r >= min_count) & (n_w >= min_count) & (spread > 0)
    df = int(used.sum())
    if df == 0:
        return Shift(np.nan, 0, np.nan)
    v_r, v_w, spread = v_r[used], v_w[used], spread[used]
    welch_df = spread**2 / (v_r**2 / (n_r[used] - 1) + v_w**2 / (n_w[used] - 1))
    p = 2.0 * t.sf(np.abs(m_w[used] - m_r[used]) / np.sqrt(spread), welch_df)
    statistic = float(np.sum(norm.isf(p / 2.0) ** 2))
    return Shift(statistic, df, float(chi2.sf(statistic, df)))


def alarms(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """Which tests fire: p < alpha / m over the m tests done (NaN p-values: not done, never
    fire). Raises InputError for alpha outside (0, 1)."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha: expected a false-alarm rate in (0, 1), got {alpha!r}")
    p = np.asarray(p_values, dtype=np.float64)
    done = ~np.isnan(p)
    m = max(int(done.sum()), 1)
    return done & (np.nan_to_num(p, nan=1.0) < alpha / m)
