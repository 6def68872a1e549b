"""Temperature scaling against exact fits on in-memory logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax

from calibbench.errors import InputError
from calibbench.metrics.binned import ece
from calibbench.metrics.token import TokenCalibration
from calibbench.recalibration.methods.temperature import T_MAX, T_MIN, TemperatureScaler
from calibbench.recalibration.sweep import DEFAULT_TEMPERATURES, answer_sweep, token_sweep
from calibbench.recalibration.token_temperature import TokenTemperatureScaler


def exact_t(z: np.ndarray, y: np.ndarray) -> float:
    """argmin_T of the mean NLL of softmax(z / T) on in-memory float64 logits (scipy)."""
    z = z.astype(np.float64)

    def loss(log_t: float) -> float:
        zt = z / np.exp(log_t)
        return float(np.mean(logsumexp(zt, axis=1) - zt[np.arange(len(y)), y]))

    res = minimize_scalar(loss, bounds=(-3, 3), method="bounded", options={"xatol": 1e-10})
    return float(np.exp(res.x))


def overconfident_logits(n: int, v: int, seed: int, sharpness: float = 2.0):
    """Targets drawn from softmax(z) but logits reported as sharpness * z: the best T is near
    `sharpness`."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, v)) * 1.5
    z[np.arange(n), rng.integers(0, v, n)] += rng.uniform(0, 5, n)
    p = softmax(z, axis=1)
    y = np.array([rng.choice(v, p=row) for row in p])
    return (sharpness * z).astype(np.float32), y


@pytest.mark.parametrize("sharpness", [0.7, 1.6])
def test_token_level_fit_from_one_pass_matches_the_exact_fit(sharpness):
    z, y = overconfident_logits(3000, 300, seed=1, sharpness=sharpness)
    acc = TokenCalibration(300, temperatures=DEFAULT_TEMPERATURES)
    acc.update(z, y)
    scaler = TokenTemperatureScaler().fit(acc.compute())
    want = exact_t(z, y)
    assert scaler.temperature_ == pytest.approx(want, rel=1e-3)
    confirm = TokenCalibration(300, temperatures=(scaler.temperature_,))
    confirm.update(z, y)
    assert scaler.refine(confirm.compute()).temperature_ == pytest.approx(want, rel=1e-6)


def test_answer_level_nll_fit_matches_scipy_and_keeps_the_argmax():
    rng = np.random.default_rng(3)
    rows = [rng.standard_normal(rng.integers(2, 6)) * 4 for _ in range(400)]
    gold = np.array([int(rng.integers(0, len(r))) for r in rows])

    def loss(t: float) -> float:
        return float(
            np.mean([logsumexp(r / t) - r[g] / t for r, g in zip(rows, gold, strict=True)])
        )

    want = minimize_scalar(loss, bounds=(0.02, 50), method="bounded", options={"xatol": 1e-10}).x
    scaler = TemperatureScaler().fit(rows, gold)
    assert scaler.temperature_ == pytest.approx(want, rel=1e-6)
    probs = scaler.predict_proba(rows)
    assert [int(np.argmax(p)) for p in probs] == [int(np.argmax(r)) for r in rows]
    assert np.allclose([p.sum() for p in probs], 1.0)


def test_answer_level_ece_objective_is_the_grid_minimum():
    rng = np.random.default_rng(4)
    rows = [rng.standard_normal(4) * 3 for _ in range(300)]
    gold = rng.integers(0, 4, 300)
    scaler = TemperatureScaler("ece").fit(rows, gold)
    grid = np.geomspace(T_MIN, T_MAX, 400)  # the documented search grid
    values = []
    for t in grid[::7]:
        p = np.array([softmax(r / t) for r in rows])
        values.append(ece(p.max(1), p.argmax(1) == gold))
    assert scaler.objective_value_ <= min(values) + 1e-12
    assert scaler.temperature_ in grid


def test_json_round_trip_is_exact():
    rows = [np.array([0.0, -1.0, -3.0]), np.array([-2.0, -0.5]), np.array([-1.0, -1.1, -4.0])]
    scaler = TemperatureScaler().fit(rows, np.array([0, 1, 1]))
    again = TemperatureScaler.from_json(json.dumps(scaler.to_json()))
    assert again.temperature_ == scaler.temperature_
    np.testing.assert_array_equal(again.predict(rows), scaler.predict(rows))


def test_sweeps_show_argmax_accuracy_fixed_and_sampled_accuracy_moving():
    z, y = overconfident_logits(500, 50, seed=2)
    acc = TokenCalibration(50, temperatures=DEFAULT_TEMPERATURES)
    acc.update(z, y)
    token = token_sweep(acc.compute())
    assert token["argmax_accuracy"].nunique() == 1
    assert token["sampled_accuracy"].max() - token["sampled_accuracy"].min() > 0.01
    rows = [r[:5] for r in z.astype(np.float64)]
    answer = answer_sweep(rows, np.minimum(y, 4))
    assert answer["argmax_accuracy"].nunique() == 1
    assert answer["sampled_accuracy"].is_monotonic_decreasing  # softer T, less mass on argmax


def test_errors():
    rows, gold = [[0.0, 1.0], [1.0, 0.0]], np.array([0, 1])
    scaler = TemperatureScaler("brier")  # hyper-parameters are checked by fit, as in sklearn
    with pytest.raises(InputError, match="objective must be one of"):
        scaler.fit(rows, gold)
    with pytest.raises(InputError, match="objective must be one of"):
        TemperatureScaler("full_ece").fit(rows, gold)
    with pytest.raises(InputError, match="fit"):
        TemperatureScaler().predict([[0.0, 1.0]])
    z, y = overconfident_logits(300, 40, seed=5, sharpness=4.0)
    acc = TokenCalibration(40, temperatures=(0.5, 1.0))
    acc.update(z, y)
    with pytest.raises(InputError, match="extend the temperature grid"):
        TokenTemperatureScaler().fit(acc.compute())
