"""smooth_ece: the call into relplot, checked against closed forms of SmoothECE."""

import numpy as np
import pytest
import relplot

from calibbench.errors import InputError
from calibbench.metrics import ece, overconfidence, smooth_ece


def test_equals_relplot():
    rng = np.random.default_rng(0)
    c = rng.random(500)
    y = rng.random(500) < c**2
    assert smooth_ece(c, y) == relplot.smECE(c, y.astype(float))


@pytest.mark.parametrize("c", [0.1, 0.3, 0.85])
def test_constant_residual_gives_its_size(c):
    # Every residual c - y equals c - 1, so the smoothed residual is c - 1 everywhere.
    assert smooth_ece(np.full(200, c), np.ones(200, dtype=bool)) == pytest.approx(1 - c, abs=1e-4)


def test_bounds():
    rng = np.random.default_rng(1)
    c = rng.random(4000)
    calibrated = rng.random(4000) < c
    assert smooth_ece(c, calibrated) < 0.03
    over = rng.random(4000) < c**2
    # The reflected kernel keeps mass in [0, 1], so smECE >= |mean residual|; and it is no more
    # than the l1 ECE of fine bins plus their width (Błasiok & Nakkiran 2023, up to constants).
    value = smooth_ece(c, over)
    assert value >= abs(overconfidence(c, over)) - 1e-3
    assert value <= ece(c, over, n_bins=20) + 0.05


def test_bad_input():
    with pytest.raises(InputError, match="1-D"):
        smooth_ece(np.full((2, 5), 0.5), np.ones((2, 5)))
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        smooth_ece([0.5, 2.0], [1, 0])
