"""Unbinned scores against scikit-learn, closed forms and brute-force loops."""

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from calibbench.errors import InputError
from calibbench.metrics.scores import (
    NLL_EPS,
    accuracy,
    aurc,
    auroc,
    brier,
    multiclass_brier,
    multiclass_nll,
    nll,
    overconfidence,
)

ANSWER_METRICS = [brier, nll, auroc, aurc, overconfidence, accuracy]


def answers(rng: np.random.Generator, n: int, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    c = rng.integers(1, 6, size=n) / 6 if tied else rng.random(n)
    return c, rng.random(n) < c


def softmax(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    z = rng.normal(size=(n, k)) * 2.0
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loop_aurc(c, correct) -> float:
    """AURC of one ordering: sort by confidence (stable), average the running error rate."""
    order = sorted(range(len(c)), key=lambda i: -c[i])
    errors, total = 0, 0.0
    for k, i in enumerate(order, start=1):
        errors += not correct[i]
        total += errors / k
    return total / len(c)


def test_brier_matches_sklearn():
    rng = np.random.default_rng(0)
    for tied in (False, True):
        c, y = answers(rng, 500, tied)
        assert brier(c, y) == pytest.approx(brier_score_loss(y, c), abs=1e-14)


def test_nll_matches_sklearn():
    rng = np.random.default_rng(1)
    c = rng.uniform(0.01, 0.99, size=500)
    y = rng.random(500) < c
    assert nll(c, y) == pytest.approx(log_loss(y, c, labels=[False, True]), rel=1e-12)


def test_nll_clipping_caps_each_item():
    cap = -math.log(NLL_EPS)
    assert cap == pytest.approx(27.631, abs=1e-3)
    assert nll([0.0, 1.0], [True, False]) == pytest.approx(cap, rel=1e-9)
    assert nll([0.0], [False]) == pytest.approx(0.0, abs=1e-11)
    assert nll([1.0, 0.5], [True, True]) == pytest.approx(math.log(2) / 2, rel=1e-9)


def test_auroc_matches_sklearn():
    rng = np.random.default_rng(2)
    for tied in (False, True):
        for n in (2, 10, 700):
            c, y = answers(rng, n, tied)
            y[0], y[1] = True, False  # both classes present
            assert auroc(c, y) == pytest.approx(roc_auc_score(y, c), abs=1e-12)


def test_auroc_pair_counting():
    rng = np.random.default_rng(3)
    c = rng.integers(0, 4, size=30) / 3
    y = rng.random(30) < 0.5
    pos, neg = c[y], c[~y]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    assert auroc(c, y) == pytest.approx(wins / (len(pos) * len(neg)), abs=1e-12)


def test_auroc_extremes():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [True, False, True]) == 0.5


@pytest.mark.parametrize("outcome", [True, False])
def test_auroc_single_class_is_undefined(outcome):
    with pytest.raises(InputError, match="undefined"):
        auroc([0.2, 0.6, 0.9], [outcome] * 3)
    batched = auroc([[0.2, 0.6, 0.9], [0.2, 0.6, 0.9]], [[outcome] * 3, [True, False, True]])
    assert np.isnan(batched[0])
    assert batched[1] == 0.5


def test_aurc_matches_loop_without_ties():
    rng = np.random.default_rng(4)
    for n in (1, 5, 300):
        c, y = answers(rng, n, tied=False)
        assert aurc(c, y) == pytest.approx(loop_aurc(c, y), abs=1e-12)


def test_aurc_ties_average_over_all_orderings():
    rng = np.random.default_rng(5)
    for _ in range(4):
        c = rng.integers(0, 3, size=7) / 2
        y = rng.random(7) < 0.5
        # A stable sort of every permutation of the input breaks ties uniformly at random.
        perms = list(itertools.permutations(range(7)))
        expected = sum(loop_aurc(c[list(p)], y[list(p)]) for p in perms) / len(perms)
        assert aurc(c, y) == pytest.approx(expected, abs=1e-12)


def test_aurc_invariant_to_input_order():
    rng = np.random.default_rng(6)
    c, y = answers(rng, 200, tied=True)
    value = aurc(c, y)
    for _ in range(5):
        p = rng.permutation(200)
        assert aurc(c[p], y[p]) == pytest.approx(value, abs=1e-14)


def test_aurc_closed_forms():
    assert aurc([0.9, 0.5, 0.1], [True, True, True]) == 0.0
    assert aurc([0.9, 0.5, 0.1], [False, False, False]) == 1.0
    # one error, ranked last of 3: risks 0, 0, 1/3
    assert aurc([0.9, 0.5, 0.1], [True, True, False]) == pytest.approx(1 / 9)
    # all tied, one error of 2: expected errors 1/2, 1 -> risks 1/2, 1/2
    assert aurc([0.5, 0.5], [True, False]) == pytest.approx(0.5)


def test_overconfidence_and_accuracy():
    c = [0.9, 0.8, 0.7, 0.6]
    y = [True, False, False, True]
    assert accuracy(c, y) == 0.5
    assert overconfidence(c, y) == pytest.approx(0.75 - 0.5)
    assert overconfidence([0.2, 0.2], [True, True]) == pytest.approx(-0.8)


@pytest.mark.parametrize("metric", ANSWER_METRICS)
@pytest.mark.parametrize("tied", [False, True])
def test_batched_equals_row_by_row(metric, tied):
    rng = np.random.default_rng(7)
    c, y = answers(rng, 2 * 3 * 40, tied)
    c, y = c.reshape(2, 3, 40), y.reshape(2, 3, 40)
    y[..., 0], y[..., 1] = True, False
    got = metric(c, y)
    assert isinstance(got, np.ndarray)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert got[i, j] == pytest.approx(metric(c[i, j], y[i, j]), abs=1e-14)


@pytest.mark.parametrize("metric", ANSWER_METRICS)
def test_one_d_returns_python_float(metric):
    assert type(metric([0.2, 0.9, 0.6], [False, True, True])) is float


def test_multiclass_brier_matches_one_hot():
    rng = np.random.default_rng(8)
    p = softmax(rng, 300, 6)
    labels = rng.integers(0, 6, size=300)
    one_hot = np.eye(6)[labels]
    assert multiclass_brier(p, labels) == pytest.approx(
        np.mean(np.sum((p - one_hot) ** 2, axis=1)), abs=1e-14
    )
    assert multiclass_brier([[0.0, 1.0]], [0]) == 2.0
    assert multiclass_brier([[1.0, 0.0]], [0]) == 0.0


def test_multiclass_nll_matches_sklearn():
    rng = np.random.default_rng(9)
    p = softmax(rng, 300, 6)
    labels = rng.integers(0, 6, size=300)
    assert multiclass_nll(p, labels) == pytest.approx(
        log_loss(labels, p, labels=range(6)), rel=1e-12
    )
    assert multiclass_nll([[0.0, 1.0]], [0]) == pytest.approx(-math.log(NLL_EPS))


@pytest.mark.parametrize("metric", ANSWER_METRICS)
@pytest.mark.parametrize(
    ("confidence", "correct", "match"),
    [
        ([0.5, np.nan], [True, False], "NaN"),
        ([0.5, -np.inf], [True, False], "NaN"),
        ([0.5, 1.0001], [True, False], r"outside \[0, 1\]"),
        ([0.5, 0.5], [[True, False]], "shape"),
        ([], [], "empty"),
        ([0.5, 0.5], [1, 3], "0/1"),
        ([0.5, 0.5], ["yes", "no"], "correct"),
    ],
)
def test_bad_answer_inputs_raise(metric, confidence, correct, match):
    with pytest.raises(InputError, match=match):
        metric(confidence, correct)


@pytest.mark.parametrize("metric", [multiclass_brier, multiclass_nll])
@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        ([[0.2, 0.7], [0.5, 0.5]], [0, 1], "sum to 1"),
        ([[0.2, 0.8], [0.5, 0.5]], [0, 2], "outside"),
        ([[0.2, 0.8], [0.5, 0.5]], [0], "shape"),
        ([[0.2, 0.8], [0.5, 0.5]], [0.0, 1.5], "integer"),
        ([[0.2, np.inf], [0.5, 0.5]], [0, 1], "NaN"),
        ([], [], "empty"),
    ],
)
def test_bad_multiclass_inputs_raise(metric, probs, labels, match):
    with pytest.raises(InputError, match=match):
        metric(probs, labels)
