"""The latest window's sample and what refitting temperature or Platt on it would change."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit

from calibbench.errors import InputError
from calibbench.metrics import brier, ece
from calibbench.monitor.refit import LatestSample, binary_temperature, refit_whatif
from calibbench.monitor.windows import WindowSpec
from calibbench.recalibration.methods.platt import PlattScaler


@pytest.mark.parametrize(
    ("window", "max_rows"), [("14D", 10_000), ("14D", 100), ("month", 10_000), ("month", 150)]
)
def test_the_sample_is_the_latest_windows_rows_with_the_smallest_keys(window, max_rows):
    rng = np.random.default_rng(0)
    n = 6000
    day = np.sort(rng.integers(19_700, 19_760, n))
    c, y = rng.uniform(size=n), rng.uniform(size=n) < 0.5
    spec = WindowSpec.parse(window)
    sample = LatestSample(spec.latest_start, max_rows=max_rows, seed=3)
    chunks = np.array_split(np.arange(n), 9)
    for part in chunks:
        sample.update(day[part], part, c[part], y[part])
    keys_rng = np.random.default_rng(3)
    keys = np.concatenate([keys_rng.random(len(part)) for part in chunks])
    inside = np.flatnonzero(day >= spec.latest_start(int(day[-1])))
    want = np.sort(inside[np.argsort(keys[inside])[:max_rows]])
    rows, conf, correct = sample.compute()
    assert np.array_equal(rows, want)
    assert np.array_equal(conf, c[want]) and np.array_equal(correct, y[want])


def test_binary_temperature_minimises_the_two_outcome_nll():
    rng = np.random.default_rng(1)
    c = rng.beta(5, 1.5, 2000)
    y = rng.uniform(size=2000) < 0.8 * c + 0.1
    z = logit(c)

    def nll(log_t: float) -> float:
        p = np.clip(expit(z / np.exp(log_t)), 1e-15, 1 - 1e-15)
        return -np.mean(np.where(y, np.log(p), np.log1p(-p)))

    exact = np.exp(
        minimize_scalar(nll, bounds=(-3, 3), method="bounded", options={"xatol": 1e-10}).x
    )
    assert binary_temperature(c, y) == pytest.approx(exact, rel=1e-5)


def test_refit_fits_on_the_earlier_half_and_scores_on_the_later():
    rng = np.random.default_rng(2)
    c = rng.beta(5, 1.5, 4000)
    y = rng.uniform(size=4000) < 0.6 * c + 0.1  # over-confident
    got = refit_whatif(c, y, n_bins=10, n_resamples=300)
    assert (got["n_fit"], got["n_score"]) == (2000, 2000)
    later_c, later_y = c[2000:], y[2000:]
    t = binary_temperature(c[:2000], y[:2000])
    platt = PlattScaler().fit(c[:2000], y[:2000]).predict(later_c)
    want = {
        ("raw", "ece"): ece(later_c, later_y, n_bins=10),
        ("raw", "brier"): brier(later_c, later_y),
        ("temperature", "ece"): ece(expit(logit(later_c) / t), later_y, n_bins=10),
        ("platt", "ece"): ece(platt, later_y, n_bins=10),
        ("platt", "brier"): brier(platt, later_y),
    }
    rows = {(r["method"], r["metric"]): r for r in got["rows"]}
    for key, value in want.items():
        assert rows[key]["value"] == pytest.approx(value, abs=1e-12)
    assert rows[("platt", "ece")]["high"] < 0 and rows[("temperature", "brier")]["high"] < 0
    with pytest.raises(InputError, match="the latest window holds 30 predictions; 40 are needed"):
        refit_whatif(c[:30], y[:30])
