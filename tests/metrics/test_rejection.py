"""AURAC and PRR against brute-force loops, closed forms, lm-polygraph and HELM's selective
stats."""

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from calibbench.errors import InputError
from calibbench.metrics import aurac, aurc, prr

_spec = importlib.util.spec_from_file_location(
    "compute_anchors", Path(__file__).parent / "anchors" / "compute_anchors.py"
)
anchors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(anchors)


def loop_aurac(score, correct) -> float:
    """Mean over k of the accuracy of the k highest scores (one ordering, no ties)."""
    order = sorted(range(len(score)), key=lambda i: -score[i])
    hits, total = 0, 0.0
    for k, i in enumerate(order, start=1):
        hits += bool(correct[i])
        total += hits / k
    return total / len(score)


def loop_tied_aurac(score, correct) -> float:
    """AURAC averaged over every tie-breaking permutation (small inputs only)."""
    values = sorted(set(score), reverse=True)
    groups = [[i for i in range(len(score)) if score[i] == v] for v in values]
    results = []
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [i for p in perms for i in p]
        results.append(loop_aurac([-order.index(i) for i in range(len(score))], correct))
    return float(np.mean(results))


def test_aurac_matches_loop_on_untied_scores_of_any_range():
    rng = np.random.default_rng(0)
    s = rng.normal(size=300) * 5.0  # entropies, log-probs: not probabilities
    y = rng.random(300) < 1 / (1 + np.exp(-s / 3))
    assert aurac(s, y) == pytest.approx(loop_aurac(s, y), abs=1e-12)


def test_aurac_averages_over_tie_breaking():
    s = np.array([2.0, 1.0, 1.0, 1.0, 0.0, 0.0, -3.0])
    y = np.array([1, 0, 1, 1, 0, 1, 0], dtype=bool)
    assert aurac(s, y) == pytest.approx(loop_tied_aurac(s, y), abs=1e-12)
    perm = np.random.default_rng(1).permutation(len(s))
    assert aurac(s[perm], y[perm]) == pytest.approx(aurac(s, y), abs=1e-15)


def test_aurac_is_one_minus_aurc_and_order_only():
    rng = np.random.default_rng(2)
    c = rng.random(200)
    y = rng.random(200) < c
    assert aurac(c, y) == pytest.approx(1.0 - aurc(c, y), abs=1e-12)
    assert aurac(np.log(c) * 10 - 4, y) == pytest.approx(aurac(c, y), abs=1e-12)


def test_aurac_and_prr_batched_rows_equal_1d():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(4, 50))
    y = rng.random((4, 50)) < 0.6
    assert np.allclose(aurac(s, y), [aurac(a, b) for a, b in zip(s, y, strict=True)])
    assert np.allclose(prr(s, y), [prr(a, b) for a, b in zip(s, y, strict=True)])


def oracle_aurac(y) -> float:
    return loop_aurac(y.astype(float), y)


def test_prr_closed_forms():
    rng = np.random.default_rng(4)
    y = rng.random(400) < 0.35
    # Oracle ordering: 1. Reversed oracle: (AURAC_rev - a) / (AURAC_oracle - a) < 0.
    assert prr(y.astype(float), y) == pytest.approx(1.0, abs=1e-12)
    a = y.mean()
    reversed_value = (loop_aurac(-y.astype(float), y) - a) / (oracle_aurac(y) - a)
    assert prr(-y.astype(float), y) == pytest.approx(reversed_value, abs=1e-12)
    assert reversed_value < -0.5
    # Oracle AURAC in closed form: (C/N)(1 + H_N - H_C).
    n, nc = len(y), int(y.sum())
    harmonic = sum(1 / k for k in range(nc + 1, n + 1))
    assert oracle_aurac(y) == pytest.approx(nc / n * (1 + harmonic), abs=1e-12)


def test_prr_of_random_orderings_is_zero_in_expectation():
    rng = np.random.default_rng(5)
    y = rng.random(100) < 0.4
    values = np.array([prr(rng.random(100), y) for _ in range(4000)])
    # Exact expectation 0; the standard error of the mean here is about 0.003.
    assert abs(values.mean()) < 0.012
    assert values.std() > 0.05  # a single random ordering is not 0


def test_prr_matches_brute_force_definition():
    rng = np.random.default_rng(6)
    s = rng.normal(size=150)
    y = rng.random(150) < 1 / (1 + np.exp(-2 * s))
    a = y.mean()
    expected = (loop_aurac(s, y) - a) / (oracle_aurac(y) - a)
    assert prr(s, y) == pytest.approx(expected, abs=1e-12)


# Reference values from tests/metrics/anchors/compute_anchors.py, run with lm-polygraph 0.7.0
# and uncertainty-calibration 0.1.4 (what HELM calls), numpy 2.4.6. Scores are
# 3·logit(c) - 7, given to lm-polygraph as the uncertainty -score.
LM_POLYGRAPH = {
    # case: (PredictionRejectionArea, oracle area, random area (1000 seeded shuffles),
    #        normalised PRR, HELM selective_cov_acc_area)
    "distinct": (
        0.7554935908888095,
        0.845326715240912,
        0.5011362612328045,
        0.7390016971534417,
        0.7554935908888095,
    ),
    "overconfident": (
        0.7225665509184168,
        0.9057833040432023,
        0.5999809088743202,
        0.40086553925255425,
        0.7225665509184168,
    ),
}


@pytest.mark.parametrize("case", sorted(LM_POLYGRAPH))
def test_against_lm_polygraph_and_helm(case):
    c, y = anchors.anchor_inputs(case)
    s = np.log(c / (1.0 - c + 1e-9)) * 3.0 - 7.0
    area, oracle, random_area, lmpg_prr, helm_area = LM_POLYGRAPH[case]
    assert aurac(s, y) == pytest.approx(area, abs=1e-12)
    assert aurac(c, y) == pytest.approx(helm_area, abs=1e-12)
    # Same oracle; random is the exact expectation (the accuracy) instead of a Monte Carlo mean.
    assert prr(s, y) == pytest.approx((area - y.mean()) / (oracle - y.mean()), abs=1e-12)
    assert random_area == pytest.approx(y.mean(), abs=0.003)
    assert prr(s, y) == pytest.approx(lmpg_prr, abs=0.005)


def test_undefined_and_bad_input():
    with pytest.raises(InputError, match="all 5 answers are correct"):
        prr(np.arange(5.0), np.ones(5, dtype=bool))
    with pytest.raises(InputError, match="all 3 answers are wrong"):
        prr(np.arange(3.0), np.zeros(3, dtype=bool))
    batched = prr(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), np.array([[1, 1, 1], [0, 1, 1]]))
    assert math.isnan(batched[0]) and batched[1] == pytest.approx(1.0)
    assert aurac(np.arange(4.0), np.ones(4)) == 1.0
    assert aurac(np.arange(4.0), np.zeros(4)) == 0.0
    for metric in (aurac, prr):
        with pytest.raises(InputError, match="NaN or infinite"):
            metric([0.1, np.nan, 0.3], [1, 0, 1])
        with pytest.raises(InputError, match="non-empty"):
            metric([], [])
        with pytest.raises(InputError, match="shape"):
            metric([0.1, 0.2], [1, 0, 1])
        with pytest.raises(InputError, match="0/1"):
            metric([0.1, 0.2], [1, 0.5])
