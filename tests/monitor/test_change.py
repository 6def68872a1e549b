"""The change of a metric between two sets of answers: against a brute-force bootstrap loop."""

from __future__ import annotations

import numpy as np
import pytest

from calibbench.errors import InputError
from calibbench.metrics import accuracy, auroc, brier, ece
from calibbench.monitor import change
from calibbench.monitor.change import metric_change


def pair(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidences of one set of items answered twice (the second a little more confident, and
    correlated with the first) and each answer's outcome."""
    rng = np.random.default_rng(seed)
    base = rng.beta(4, 2, n)
    new = np.clip(base + shift + rng.normal(0, 0.05, n), 0, 1)
    correct = rng.uniform(size=n) < base
    return base, new, correct


def loop(metric, base, new, idx_base, idx_new, level=0.95):
    """Percentile interval of metric(new*) - metric(base*), one resample at a time."""
    diffs = []
    for ib, inew in zip(idx_base, idx_new, strict=True):
        d = metric(new[0][inew], new[1][inew]) - metric(base[0][ib], base[1][ib])
        if not np.isnan(d):
            diffs.append(d)
    return tuple(np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2]))


@pytest.mark.parametrize("metric", [ece, brier, accuracy, auroc])
def test_paired_interval_equals_a_loop_over_the_documented_draws(metric, monkeypatch):
    monkeypatch.setattr(change, "CHUNK_BYTES", 8 * 60 * 7)  # chunks of 7 resamples
    b, n, y = pair(60, seed=1, shift=0.05)
    got = metric_change(metric, (b, y), (n, y), paired=True, n_resamples=50, seed=3)
    rng = np.random.default_rng(3)
    idx = np.concatenate([rng.integers(0, 60, size=(m, 60)) for m in [7] * 7 + [1]])
    assert (got.low, got.high) == pytest.approx(loop(metric, (b, y), (n, y), idx, idx), abs=1e-12)
    assert got.change == pytest.approx(metric(n, y) - metric(b, y), abs=1e-12)


@pytest.mark.parametrize("metric", [ece, brier])
def test_unpaired_interval_equals_a_loop_over_the_documented_draws(metric):
    b, _, yb = pair(40, seed=2)
    _, n, yn = pair(30, seed=3)
    got = metric_change(metric, (b, yb), (n, yn), paired=False, n_resamples=40, seed=5)
    rng = np.random.default_rng(5)
    ib, inew = rng.integers(0, 40, size=(40, 40)), rng.integers(0, 30, size=(40, 30))
    assert (got.low, got.high) == pytest.approx(loop(metric, (b, yb), (n, yn), ib, inew))


def test_pairing_narrows_the_interval_of_correlated_runs():
    b, n, y = pair(400, seed=4, shift=0.15)
    paired = metric_change(brier, (b, y), (n, y), paired=True, n_resamples=400)
    unpaired = metric_change(brier, (b, y), (n, y), paired=False, n_resamples=400)
    assert paired.change == unpaired.change
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)
    assert paired.significant and not unpaired.significant


def test_identical_runs_change_by_exactly_zero():
    b, _, y = pair(100, seed=6)
    same = metric_change(ece, (b, y), (b, y), paired=True, n_resamples=100)
    assert (same.change, same.low, same.high, same.significant) == (0.0, 0.0, 0.0, False)


def test_undefined_metric_and_unequal_pairs_are_refused():
    b, n, y = pair(20, seed=7)
    with pytest.raises(InputError, match="new run: auroc: undefined because all 20 answers"):
        metric_change(auroc, (b, y), (n, np.ones(20, bool)), paired=True)
    with pytest.raises(InputError, match="paired answers need the same items"):
        metric_change(brier, (b, y), (n[:10], y[:10]), paired=True)
