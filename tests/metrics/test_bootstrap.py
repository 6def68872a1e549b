"""Percentile bootstrap against a plain loop over the same resample indices."""

import numpy as np
import pytest

from calibbench.errors import InputError
from calibbench.metrics import bootstrap
from calibbench.metrics.binned import ece
from calibbench.metrics.bootstrap import BootstrapCI, bootstrap_ci
from calibbench.metrics.scores import accuracy, aurc, auroc, brier, nll


def answers(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.beta(5, 2, size=n)
    return c, rng.random(n) < c**1.3


def loop_bootstrap(metric, c, y, idx, level, **kwargs) -> tuple[float, float, int]:
    """(low, high, n_undefined) by evaluating the metric one resample at a time."""
    values = np.array([metric(c[i], y[i], **kwargs) for i in idx])
    defined = values[~np.isnan(values)]
    low, high = np.quantile(defined, [(1 - level) / 2, (1 + level) / 2])
    return low, high, len(values) - len(defined)


def auroc_or_nan(c, y) -> float:
    """AUROC of one resample, NaN when it holds a single class (as in batched `auroc`)."""
    return auroc(c, y) if 0 < y.sum() < len(y) else np.nan


@pytest.mark.parametrize(
    ("metric", "kwargs"),
    [
        (ece, {}),
        (ece, {"n_bins": 10, "binning": "mass", "norm": "l2"}),
        (brier, {}),
        (nll, {}),
        (auroc, {}),
        (aurc, {}),
    ],
)
def test_matches_loop_over_same_draws(metric, kwargs):
    c, y = answers(150)
    got = bootstrap_ci(metric, c, y, n_resamples=300, level=0.9, seed=11, **kwargs)
    idx = np.random.default_rng(11).integers(0, 150, size=(300, 150))
    low, high, n_undefined = loop_bootstrap(metric, c, y, idx, 0.9, **kwargs)
    assert got == BootstrapCI(
        estimate=metric(c, y, **kwargs),
        low=low,
        high=high,
        level=0.9,
        n_resamples=300,
        n_undefined=n_undefined,
    )


def test_chunks_follow_documented_draws(monkeypatch):
    n, n_resamples, rows = 40, 50, 7
    monkeypatch.setattr(bootstrap, "CHUNK_BYTES", 8 * n * rows)
    c, y = answers(n, seed=1)
    got = bootstrap_ci(brier, c, y, n_resamples=n_resamples, seed=5)
    rng = np.random.default_rng(5)
    sizes = [rows] * (n_resamples // rows) + [n_resamples % rows]
    idx = np.concatenate([rng.integers(0, n, size=(m, n)) for m in sizes])
    low, high, _ = loop_bootstrap(brier, c, y, idx, 0.95)
    assert (got.low, got.high) == (low, high)


def test_deterministic_for_a_seed():
    c, y = answers(200)
    first = bootstrap_ci(aurc, c, y, n_resamples=200, seed=3)
    assert bootstrap_ci(aurc, c, y, n_resamples=200, seed=3) == first
    assert bootstrap_ci(aurc, c, y, n_resamples=200, seed=4) != first


@pytest.mark.parametrize("metric", [accuracy, brier, auroc, ece])
def test_interval_contains_estimate(metric):
    c, y = answers(500, seed=2)
    ci = bootstrap_ci(metric, c, y, n_resamples=500)
    assert ci.low < ci.estimate < ci.high
    assert ci.n_undefined == 0


def test_width_shrinks_as_one_over_sqrt_n():
    small = bootstrap_ci(accuracy, *answers(400, seed=3), n_resamples=1000)
    large = bootstrap_ci(accuracy, *answers(6400, seed=3), n_resamples=1000)
    ratio = (small.high - small.low) / (large.high - large.low)
    assert 3.3 < ratio < 4.8  # sqrt(6400 / 400) = 4


def test_level_orders_intervals():
    c, y = answers(300)
    narrow = bootstrap_ci(brier, c, y, level=0.5)
    wide = bootstrap_ci(brier, c, y, level=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_undefined_resamples_are_counted_and_skipped():
    n = 20
    c = np.linspace(0.05, 0.95, n)
    y = np.ones(n, dtype=bool)
    y[3] = False  # a resample misses this one wrong answer with probability (19/20)^20 ≈ 0.36
    ci = bootstrap_ci(auroc, c, y, n_resamples=500, seed=8)
    idx = np.random.default_rng(8).integers(0, n, size=(500, n))
    expected_undefined = int(np.sum(y[idx].all(axis=1)))
    assert 100 < expected_undefined < 260
    low, high, n_undefined = loop_bootstrap(auroc_or_nan, c, y, idx, 0.95)
    assert ci.n_undefined == n_undefined == expected_undefined
    assert (ci.low, ci.high) == (low, high)


def test_all_resamples_undefined_gives_nan_interval():
    def always_nan(c, y):
        return np.full(np.shape(c)[:-1], np.nan) if np.ndim(c) > 1 else 0.0

    ci = bootstrap_ci(always_nan, [0.2, 0.8], [False, True], n_resamples=10)
    assert ci.n_undefined == 10
    assert np.isnan(ci.low)
    assert np.isnan(ci.high)


def test_metric_without_batch_support_raises():
    def pooled_mean(c, y):
        return float(np.mean(np.asarray(c) == np.asarray(y)))

    with pytest.raises(InputError, match="batch"):
        bootstrap_ci(pooled_mean, [0.2, 0.8, 0.6], [False, True, True], n_resamples=5)


def test_metric_returning_an_array_for_1d_raises():
    with pytest.raises(InputError, match="one value"):
        bootstrap_ci(lambda c, y: np.asarray(c), [0.2, 0.8], [False, True], n_resamples=5)


def test_metric_errors_on_the_data_propagate():
    with pytest.raises(InputError, match="undefined"):
        bootstrap_ci(auroc, [0.2, 0.8], [True, True])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"level": 0.0},
        {"level": 1.0},
        {"level": 95},
        {"level": "0.95"},
        {"n_resamples": 0},
        {"n_resamples": 10.5},
        {"n_resamples": True},
    ],
)
def test_bad_options_raise(kwargs):
    (name,) = kwargs
    with pytest.raises(InputError, match=name):
        bootstrap_ci(brier, [0.2, 0.8], [False, True], **kwargs)


@pytest.mark.parametrize(
    ("confidence", "correct"),
    [
        ([0.2, np.nan], [False, True]),
        ([0.2, 1.5], [False, True]),
        ([0.2, 0.8], [False]),
        ([], []),
        ([0.2, 0.8], [0, 2]),
        ([[0.2, 0.8]], [[False, True]]),
    ],
)
def test_bad_inputs_raise(confidence, correct):
    with pytest.raises(InputError):
        bootstrap_ci(brier, confidence, correct)
