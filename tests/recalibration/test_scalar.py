"""Scalar calibrators (Platt, isotonic, histogram binning, beta) against scikit-learn, scipy and
brute-force loops; JSON round trips, no refitting in transform, the degenerate-data fallback."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import isotonic_regression
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from calibbench.errors import InputError
from calibbench.metrics.binned import ece
from calibbench.recalibration import (
    BetaCalibrator,
    HistogramBinningCalibrator,
    IsotonicCalibrator,
    PlattScaler,
    Recalibrator,
    ScalarCalibrator,
)
from calibbench.recalibration.methods.isotonic import pool_adjacent_violators

FACTORIES: dict[str, Callable[[], ScalarCalibrator]] = {
    "platt": PlattScaler,
    "platt-smoothed": lambda: PlattScaler(target_smoothing=True, eps=1e-9),
    "isotonic": IsotonicCalibrator,
    "histogram-width": HistogramBinningCalibrator,
    "histogram-mass": lambda: HistogramBinningCalibrator(n_bins=10, binning="mass"),
    "beta": BetaCalibrator,
}
#: Methods whose map is non-decreasing by construction (Platt only when a > 0).
MONOTONE = ("isotonic", "beta")
GRID = np.linspace(0.0, 1.0, 1001)


def overconfident(
    rng: np.random.Generator, n: int, tau: float = 3.0, grid: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stated confidence c, correct with probability sigmoid(logit(c) / tau); with `grid` > 0 the
    confidences lie on grid + 1 points including 0 and 1 (ties, and the clipped ends)."""
    if grid:
        c = rng.integers(0, grid + 1, n) / grid
    else:
        c = rng.uniform(0.01, 0.99, n)
    truth = expit(logit(np.clip(c, 0.01, 0.99)) / tau)
    return c, rng.random(n) < truth


def unpenalised_logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None
) -> np.ndarray:
    """scikit-learn's unpenalised fit (C=inf: `penalty=None` is deprecated in 1.8) as
    (coef..., intercept)."""
    model = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    model.fit(x, y, sample_weight=weight)
    return np.r_[model.coef_[0], model.intercept_]


def beta_features(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 1e-12, 1 - 1e-12)
    return np.column_stack([np.log(c), -np.log(1 - c)])


def beta_data(rng, n: int, a: float, b: float, intercept: float) -> tuple[np.ndarray, np.ndarray]:
    c = rng.uniform(0.01, 0.99, n)
    return c, rng.random(n) < expit(a * np.log(c) - b * np.log(1 - c) + intercept)


# Platt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "grid", "seed"), [(30, 0, 0), (500, 0, 1), (400, 20, 2)])
def test_platt_matches_sklearn(n, grid, seed):
    c, y = overconfident(np.random.default_rng(seed), n, grid=grid)
    fitted = PlattScaler().fit(c, y)
    x = logit(np.clip(c, 1e-12, 1 - 1e-12))[:, None]
    np.testing.assert_allclose([fitted.a_, fitted.b_], unpenalised_logistic(x, y), atol=1e-6)
    np.testing.assert_allclose(
        fitted.predict(GRID),
        expit(fitted.a_ * logit(np.clip(GRID, 1e-12, 1 - 1e-12)) + fitted.b_),
        rtol=1e-14,
    )


def test_platt_target_smoothing_matches_weighted_sklearn():
    """Soft targets t_i are the same likelihood as each item twice: label 1 with weight t_i and
    label 0 with weight 1 - t_i."""
    c, y = beta_data(np.random.default_rng(3), 60, 1.0, 1.0, 1.5)
    n_pos, n_neg = y.sum(), (~y).sum()
    assert n_pos > 2 * n_neg  # unbalanced, so the two targets differ in their counts
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = logit(c)[:, None]
    ref = unpenalised_logistic(np.r_[x, x], np.r_[np.ones(60), np.zeros(60)], np.r_[t, 1 - t])
    smoothed = PlattScaler(target_smoothing=True).fit(c, y)
    np.testing.assert_allclose([smoothed.a_, smoothed.b_], ref, atol=1e-6)
    plain = PlattScaler().fit(c, y)
    assert abs(plain.a_ - smoothed.a_) > 1e-3


def test_platt_separable_data_gives_a_finite_step():
    c = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    y = c > 0.5
    fitted = PlattScaler().fit(c, y)
    assert np.isfinite(fitted.a_) and fitted.a_ > 10
    p = fitted.predict(c)
    assert np.all(p[~y] < 1e-6) and np.all(p[y] > 1 - 1e-6)
    smoothed = PlattScaler(target_smoothing=True).fit(c, y)
    assert 0 < smoothed.a_ < fitted.a_


# isotonic ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "grid", "seed"), [(50, 0, 0), (300, 10, 1), (2000, 40, 2)])
def test_isotonic_matches_sklearn(n, grid, seed):
    rng = np.random.default_rng(seed)
    c, y = overconfident(rng, n, grid=grid)
    inside = (c > 0.05) & (c < 0.95)  # so that part of [0, 1] lies outside the fitted range
    c, y = c[inside], y[inside]
    ours = IsotonicCalibrator().fit(c, y)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(c, y)
    np.testing.assert_array_equal(ours.x_thresholds_, ref.X_thresholds_)
    np.testing.assert_allclose(ours.y_thresholds_, ref.y_thresholds_, rtol=0, atol=1e-12)
    points = np.r_[GRID, c, rng.random(500)]
    np.testing.assert_allclose(ours.predict(points), ref.predict(points), rtol=0, atol=1e-12)


def test_pool_adjacent_violators_matches_scipy():
    rng = np.random.default_rng(4)
    values, weights = rng.normal(size=300).cumsum() * 0.1 + rng.normal(size=300), rng.random(300)
    ref = isotonic_regression(values, weights=weights).x
    np.testing.assert_allclose(pool_adjacent_violators(values, weights), ref, atol=1e-12)


# histogram binning -----------------------------------------------------------------------------


def loop_histogram(c, y, n_bins: int, binning: str, points) -> list[float]:
    """Histogram binning straight from the definitions, one item and one bin at a time."""
    if binning == "width":
        edges = [b / n_bins for b in range(n_bins + 1)]
    else:
        edges = [0.0, *np.quantile(c, [b / n_bins for b in range(1, n_bins)]), 1.0]

    def bin_of(p: float) -> int:
        return next((b for b in range(n_bins) if edges[b] <= p < edges[b + 1]), n_bins - 1)

    count, hits = [0] * n_bins, [0] * n_bins
    for p, ok in zip(c, y, strict=True):
        count[bin_of(p)] += 1
        hits[bin_of(p)] += int(ok)
    full = [b for b in range(n_bins) if count[b]]
    value = []
    for b in range(n_bins):
        nearest = min(abs(b - f) for f in full)
        tied = [hits[f] / count[f] for f in full if abs(b - f) == nearest]
        value.append(sum(tied) / len(tied))
    return [value[bin_of(p)] for p in points]


@pytest.mark.parametrize("binning", ["width", "mass"])
@pytest.mark.parametrize(("grid", "seed"), [(0, 0), (12, 1), (40, 2)])
def test_histogram_matches_loop(binning, grid, seed):
    rng = np.random.default_rng(seed)
    c, y = overconfident(rng, 300, grid=grid)
    c = 0.3 + 0.6 * c  # calibration range [0.3, 0.9]: empty bins on both sides
    fitted = HistogramBinningCalibrator(n_bins=15, binning=binning).fit(c, y)
    points = np.r_[GRID, c]
    expected = loop_histogram(c, y, 15, binning, points)
    np.testing.assert_allclose(fitted.predict(points), expected, rtol=0, atol=1e-15)


def test_histogram_empty_bins_take_the_nearest_or_the_mean_of_two():
    # five width bins; items in bins 0 (accuracy 1/2) and 4 (accuracy 1) only
    c = np.array([0.1, 0.15, 0.9, 0.95, 0.85])
    y = np.array([1, 0, 1, 1, 1])
    fitted = HistogramBinningCalibrator(n_bins=5).fit(c, y)
    np.testing.assert_array_equal(fitted.bin_value_, [0.5, 0.5, 0.75, 1.0, 1.0])


# beta ----------------------------------------------------------------------------------------


def test_beta_unconstrained_matches_sklearn():
    c, y = beta_data(np.random.default_rng(5), 600, 0.4, 1.5, 0.2)
    ref = unpenalised_logistic(beta_features(c), y)
    assert np.all(ref[:2] > 0)
    fitted = BetaCalibrator().fit(c, y)
    np.testing.assert_allclose([fitted.a_, fitted.b_, fitted.intercept_], ref, atol=1e-6)


@pytest.mark.parametrize(("a", "b", "dropped"), [(-1.0, 2.0, 0), (2.0, -1.0, 1)])
def test_beta_drops_a_negative_coefficient_and_refits(a, b, dropped):
    c, y = beta_data(np.random.default_rng(6), 600, a, b, 0.0)
    x = beta_features(c)
    assert unpenalised_logistic(x, y)[dropped] < 0
    kept = 1 - dropped
    ref = unpenalised_logistic(x[:, [kept]], y)
    fitted = BetaCalibrator().fit(c, y)
    coef = [fitted.a_, fitted.b_]
    assert coef[dropped] == 0.0
    np.testing.assert_allclose([coef[kept], fitted.intercept_], ref, atol=1e-6)
    assert np.all(np.diff(fitted.predict(GRID)) >= 0)


def test_beta_anticorrelated_confidence_gives_the_mean_accuracy():
    c, y = beta_data(np.random.default_rng(7), 400, -1.0, -1.0, 0.0)
    fitted = BetaCalibrator().fit(c, y)
    assert fitted.a_ == 0.0 and fitted.b_ == 0.0
    np.testing.assert_allclose(fitted.predict(GRID), y.mean(), rtol=1e-9)


# all methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", FACTORIES)
@pytest.mark.parametrize("data", ["fitted", "fallback"])
def test_json_round_trip_is_exact(method, data):
    rng = np.random.default_rng(8)
    c, y = overconfident(rng, 200, grid=25)
    if data == "fallback":
        y = np.ones_like(y)
    fitted = FACTORIES[method]().fit(c, y)
    text = json.dumps(fitted.to_json())
    loaded = Recalibrator.from_json(json.loads(text))
    assert type(loaded) is type(fitted) and loaded._params() == fitted._params()
    points = np.r_[GRID, rng.random(1000)]
    np.testing.assert_array_equal(loaded.predict(points), fitted.predict(points))
    assert json.dumps(loaded.to_json()) == text


@pytest.mark.parametrize("method", FACTORIES)
def test_transform_never_refits(method):
    rng = np.random.default_rng(9)
    c, y = overconfident(rng, 300)
    other_c, other_y = overconfident(rng, 300, tau=0.5)
    fitted = FACTORIES[method]().fit(c, y)
    state = json.dumps(fitted.to_json())
    first = fitted.predict(GRID)
    fitted.predict(other_c)
    np.testing.assert_array_equal(fitted.predict(GRID), first)
    assert json.dumps(fitted.to_json()) == state
    refitted = fitted.fit(other_c, other_y)
    assert refitted is fitted
    assert not np.array_equal(fitted.predict(GRID), first)


@pytest.mark.parametrize("method", FACTORIES)
def test_transform_before_fit_raises(method):
    with pytest.raises(InputError, match="call fit"):
        FACTORIES[method]().predict([0.5])


@pytest.mark.parametrize("method", FACTORIES)
def test_reduces_ece_on_held_out_half(method):
    c, y = overconfident(np.random.default_rng(10), 4000, tau=4.0)
    fitted = FACTORIES[method]().fit(c[:2000], y[:2000])
    before = ece(c[2000:], y[2000:])
    after = ece(fitted.predict(c[2000:]), y[2000:])
    assert before > 0.15
    assert after < 0.35 * before
    assert fitted.fallback_ == ""


@pytest.mark.parametrize("method", FACTORIES)
def test_outputs_are_probabilities_and_monotone_where_guaranteed(method):
    c, y = overconfident(np.random.default_rng(11), 500, grid=30)
    fitted = FACTORIES[method]().fit(c, y)
    p = fitted.predict(GRID)
    assert p.shape == GRID.shape and np.all((p >= 0) & (p <= 1))
    assert fitted.predict(GRID.reshape(7, 11, 13)).shape == (7, 11, 13)
    if method in MONOTONE or (method.startswith("platt") and fitted.a_ > 0):
        assert np.all(np.diff(p) >= 0)


@pytest.mark.parametrize("method", FACTORIES)
@pytest.mark.parametrize("case", ["all correct", "all wrong", "single value"])
def test_degenerate_data_fall_back_to_laplace_accuracy(method, case):
    c = np.array([0.2, 0.6, 0.7, 0.9, 0.95, 0.3])
    y = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    if case == "all correct":
        y[:] = True
    elif case == "all wrong":
        y[:] = False
    else:
        c[:] = 0.42
    calibrator = FACTORIES[method]()
    if method.startswith("histogram"):
        calibrator.n_bins = 5
    fitted = calibrator.fit(c, y)
    assert fitted.fallback_ == "constant"
    np.testing.assert_allclose(fitted.predict(GRID), (y.sum() + 1) / 8, rtol=1e-15)


@pytest.mark.parametrize("method", ["platt", "beta"])
def test_confidences_equal_once_clipped_fall_back(method):
    c = np.array([0.0, 1e-15, 1e-14, 0.0])
    fitted = FACTORIES[method]().fit(c, [1, 0, 1, 1])
    assert fitted.fallback_ == "constant"
    np.testing.assert_allclose(fitted.predict(GRID), 4 / 6, rtol=1e-15)


@pytest.mark.parametrize(
    ("calibrator", "n"),
    [
        (PlattScaler(), 1),
        (IsotonicCalibrator(), 1),
        (BetaCalibrator(), 2),
        (HistogramBinningCalibrator(n_bins=15), 14),
        (HistogramBinningCalibrator(n_bins=2), 1),
    ],
)
def test_too_few_items_raise(calibrator, n):
    c = np.linspace(0.2, 0.8, n)
    y = np.arange(n) % 2 == 0
    with pytest.raises(InputError, match="at least"):
        calibrator.fit(c, y)
    more = np.linspace(0.2, 0.8, n + 1)
    assert calibrator.fit(more, np.arange(n + 1) % 2 == 0).is_fitted


@pytest.mark.parametrize(
    ("calibrator", "match"),
    [
        (PlattScaler(eps=0.0), "eps"),
        (BetaCalibrator(eps=0.7), "eps"),
        (HistogramBinningCalibrator(n_bins=0), "n_bins"),
        (HistogramBinningCalibrator(binning="quantile"), "binning"),  # type: ignore[arg-type]
    ],
)
def test_bad_hyper_parameters_raise(calibrator, match):
    c, y = overconfident(np.random.default_rng(12), 100)
    with pytest.raises(InputError, match=match):
        calibrator.fit(c, y)
