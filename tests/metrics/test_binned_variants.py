"""Adaptive, RMS and HELM equal-mass calibration errors against brute-force loops and the
reference packages (uncertainty-metrics for ACE, uncertainty-calibration for HELM)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from calibbench.errors import InputError
from calibbench.metrics import adaptive_calibration_error, ece, helm_ece, rms_calibration_error

_spec = importlib.util.spec_from_file_location(
    "compute_anchors", Path(__file__).parent / "anchors" / "compute_anchors.py"
)
anchors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(anchors)


def loop_binned(c, y, assign, n_bins, power=1) -> float:
    """(Σ_b (n_b/N)·|acc_b - conf_b|^power)^(1/power) with a bin index per prediction."""
    total = 0.0
    for b in range(n_bins):
        members = [i for i in range(len(c)) if assign(c[i]) == b]
        if members:
            gap = abs(np.mean([y[i] for i in members]) - np.mean([c[i] for i in members]))
            total += len(members) / len(c) * gap**power
    return total ** (1 / power)


def adaptive_assign(c, n_bins):
    """Nixon et al.'s adaptive bins, written out: lower edge of bin b at sorted[round(b·N/B)]."""
    s = sorted(c)
    lowers = [s[min(round(b * len(c) / n_bins), len(c) - 1)] for b in range(1, n_bins)]
    return lambda p: sum(p >= edge for edge in lowers)


def helm_assign(c, n_bins):
    """uncertainty-calibration's get_equal_bins, written out: split the sorted values into
    min(B, N) runs (np.array_split), boundary = midpoint of neighbours, ties go down."""
    s = sorted(c)
    runs = [list(r) for r in np.array_split(s, min(n_bins, len(c)))]
    bounds = [(runs[i][-1] + runs[i + 1][0]) / 2 for i in range(len(runs) - 1)]
    return lambda p: sum(p > edge for edge in bounds)


def answers(rng, n, tied):
    c = rng.integers(0, 11, size=n) / 10 if tied else rng.random(n)
    return c, rng.random(n) < c**1.5


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("n_bins", [1, 3, 10, 15, 500])
def test_adaptive_and_helm_match_loops(tied, n_bins):
    rng = np.random.default_rng(n_bins + 100 * tied)
    c, y = answers(rng, 137, tied)
    ace = adaptive_calibration_error(c, y, n_bins=n_bins)
    assert ace == pytest.approx(loop_binned(c, y, adaptive_assign(c, n_bins), n_bins), abs=1e-12)
    rms = adaptive_calibration_error(c, y, n_bins=n_bins, norm="l2")
    assert rms == pytest.approx(
        loop_binned(c, y, adaptive_assign(c, n_bins), n_bins, power=2), abs=1e-12
    )
    runs = min(n_bins, len(c))
    assert helm_ece(c, y, n_bins=n_bins) == pytest.approx(
        loop_binned(c, y, helm_assign(c, n_bins), runs), abs=1e-12
    )


def test_rms_uses_bins_of_bin_size():
    rng = np.random.default_rng(7)
    c, y = answers(rng, 1050, False)
    assert rms_calibration_error(c, y) == pytest.approx(
        adaptive_calibration_error(c, y, n_bins=10, norm="l2"), abs=1e-15
    )
    assert rms_calibration_error(c, y, bin_size=50) == pytest.approx(
        loop_binned(c, y, adaptive_assign(c, 21), 21, power=2), abs=1e-12
    )
    # Fewer predictions than bin_size: one bin, |mean confidence - accuracy|.
    assert rms_calibration_error(c[:60], y[:60]) == pytest.approx(
        abs(c[:60].mean() - y[:60].mean()), abs=1e-12
    )


def test_closed_forms():
    # Constant confidence: every binning gives |c - accuracy|.
    y = np.arange(40) % 4 == 0
    c = np.full(40, 0.7)
    for metric in (adaptive_calibration_error, rms_calibration_error, helm_ece):
        assert metric(c, y) == pytest.approx(0.45, abs=1e-12)
    # Perfect separation into equal-mass bins of calibrated predictions: 0.
    c = np.repeat([0.0, 1.0], 50)
    for metric in (adaptive_calibration_error, rms_calibration_error, helm_ece):
        assert metric(c, c == 1.0) == 0.0
    # Without ties and with B dividing N, adaptive and quantile ("mass") edges give the same bins.
    rng = np.random.default_rng(8)
    c, yy = answers(rng, 300, False)
    assert adaptive_calibration_error(c, yy, n_bins=10) == pytest.approx(
        ece(c, yy, n_bins=10, binning="mass"), abs=1e-12
    )


def test_batched_rows_equal_1d():
    rng = np.random.default_rng(9)
    c = rng.random((3, 80))
    y = rng.random((3, 80)) < c
    for metric in (adaptive_calibration_error, rms_calibration_error, helm_ece):
        assert np.allclose(metric(c, y), [metric(a, b) for a, b in zip(c, y, strict=True)])


# Reference values from tests/metrics/anchors/compute_anchors.py: HELM's ece_10_bin is
# uncertainty-calibration 0.1.4's get_ece_em (HELM pins ~=0.1.4); ACE is uncertainty-metrics
# 0.0.81's GeneralCalibrationError.get_calibration_error with get_adaptive_bins, l1, on the answer
# confidences. (0.0.81's "l2" squares the weighted gap, (w_b·gap_b)², not w_b·gap_b², so RMS is
# pinned against the loop above instead.)
REFERENCE = {
    # case: (get_ece_em 10 bins, get_ece_em 7 bins, ACE 10 bins, ACE 15 bins)
    "distinct": (
        0.021320958139538132,
        0.031067112148432257,
        0.021320958139538132,
        0.05974421902443038,
    ),
    "tied": (0.042038216560509566, 0.020382165605095547, 0.02611464968152866, 0.08789808917197452),
    "overconfident": (
        0.15098869028625206,
        0.15098869028625203,
        0.150988690286252,
        0.15098869028625206,
    ),
}


@pytest.mark.parametrize("case", sorted(REFERENCE))
def test_against_helm_and_uncertainty_metrics(case):
    c, y = anchors.anchor_inputs(case)
    helm10, helm7, ace10, ace15 = REFERENCE[case]
    assert helm_ece(c, y) == pytest.approx(helm10, abs=1e-12)
    assert helm_ece(c, y, n_bins=7) == pytest.approx(helm7, abs=1e-12)
    assert adaptive_calibration_error(c, y, n_bins=10) == pytest.approx(ace10, abs=1e-12)
    assert adaptive_calibration_error(c, y) == pytest.approx(ace15, abs=1e-12)


def test_bad_input():
    for metric in (adaptive_calibration_error, rms_calibration_error, helm_ece):
        with pytest.raises(InputError, match=r"outside \[0, 1\]"):
            metric([0.2, 1.5], [1, 0])
        with pytest.raises(InputError, match="NaN"):
            metric([0.2, np.nan], [1, 0])
        with pytest.raises(InputError, match="empty"):
            metric([], [])
    with pytest.raises(InputError, match="n_bins"):
        adaptive_calibration_error([0.2, 0.4], [1, 0], n_bins=0)
    with pytest.raises(InputError, match="n_bins"):
        helm_ece([0.2, 0.4], [1, 0], n_bins=2.5)
    with pytest.raises(InputError, match="bin_size"):
        rms_calibration_error([0.2, 0.4], [1, 0], bin_size=0)
    with pytest.raises(InputError, match="norm"):
        adaptive_calibration_error([0.2, 0.4], [1, 0], norm="l3")
