"""Binned metrics against torchmetrics, scikit-learn, scipy and brute-force loops."""

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from sklearn.calibration import calibration_curve
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from calibbench.errors import InputError
from calibbench.metrics.binned import classwise_ece, ece, mce, reliability, top_label_ece


def softmax(rng: np.random.Generator, n: int, k: int, scale: float = 2.0) -> np.ndarray:
    z = rng.normal(size=(n, k)) * scale
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def answers(rng: np.random.Generator, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct): continuous, or on a coarse grid with 0, 1, ties and bin edges."""
    if kind == "continuous":
        c = rng.random(n)
    else:
        c = rng.integers(0, 11, size=n) / 10
    return c, rng.random(n) < c


def loop_edges(c: np.ndarray, n_bins: int, binning: str) -> list[float]:
    if binning == "width":
        return [b / n_bins for b in range(n_bins + 1)]
    return [0.0, *np.quantile(c, [b / n_bins for b in range(1, n_bins)]), 1.0]


def loop_ece(c, correct, edges, norm) -> float:
    """ECE by a plain loop over items and bins, straight from the definition."""
    n_bins = len(edges) - 1
    count, conf, hits = [0] * n_bins, [0.0] * n_bins, [0] * n_bins
    for p, ok in zip(c, correct, strict=True):
        b = next((b for b in range(n_bins) if edges[b] <= p < edges[b + 1]), n_bins - 1)
        count[b] += 1
        conf[b] += p
        hits[b] += int(ok)
    gaps = [
        (count[b], abs(hits[b] / count[b] - conf[b] / count[b])) for b in range(n_bins) if count[b]
    ]
    n = len(c)
    if norm == "l1":
        return sum(m / n * g for m, g in gaps)
    if norm == "l2":
        return sum(m / n * g**2 for m, g in gaps) ** 0.5
    return max(g for _, g in gaps)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("binning", ["width", "mass"])
@pytest.mark.parametrize("kind", ["continuous", "grid"])
def test_ece_matches_loop(norm, binning, kind):
    rng = np.random.default_rng(1)
    for n, n_bins in [(1, 15), (7, 3), (300, 10), (1000, 15)]:
        c, y = answers(rng, n, kind)
        expected = loop_ece(c, y, loop_edges(c, n_bins, binning), norm)
        assert ece(c, y, n_bins=n_bins, binning=binning, norm=norm) == pytest.approx(
            expected, abs=1e-12
        )


def test_mce_is_max_norm():
    rng = np.random.default_rng(2)
    c, y = answers(rng, 500, "continuous")
    assert mce(c, y, n_bins=12, binning="mass") == ece(c, y, n_bins=12, binning="mass", norm="max")


def test_ece_hand_values():
    c = np.array([0.9] * 10 + [0.3] * 10)
    y = np.array([True] * 9 + [False] + [True] * 5 + [False] * 5)
    # bins: 0.9 -> acc 0.9 (gap 0); 0.3 -> acc 0.5 (gap 0.2)
    assert ece(c, y, n_bins=10) == pytest.approx(0.1)
    assert ece(c, y, n_bins=10, norm="l2") == pytest.approx(np.sqrt(0.5 * 0.04))
    assert mce(c, y, n_bins=10) == pytest.approx(0.2)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [5, 15])
def test_top_label_ece_matches_torchmetrics(norm, n_bins):
    rng = np.random.default_rng(3)
    for n, k in [(50, 3), (800, 7)]:
        p = softmax(rng, n, k)
        labels = rng.integers(0, k, size=n)
        assert p.max() < 1.0  # torchmetrics puts p == 1.0 into an extra bin
        ref = MulticlassCalibrationError(num_classes=k, n_bins=n_bins, norm=norm)
        expected = ref(torch.from_numpy(p), torch.from_numpy(labels)).item()  # float32 inside
        got = top_label_ece(p, labels, n_bins=n_bins, norm=norm)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_matches_torchmetrics_binary(norm):
    # BinaryCalibrationError bins the positive-class probability against the 0/1 target, which is
    # our (confidence, correct) pair.
    rng = np.random.default_rng(4)
    c = rng.random(600) ** 2
    y = rng.random(600) < c
    ref = BinaryCalibrationError(n_bins=10, norm=norm)
    expected = ref(torch.from_numpy(c), torch.from_numpy(y.astype(np.int64))).item()
    assert ece(c, y, n_bins=10, norm=norm) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("binning", ["width", "mass"])
def test_top_label_and_classwise_match_loop(norm, binning):
    rng = np.random.default_rng(5)
    n, k, n_bins = 400, 4, 8
    p = softmax(rng, n, k)
    labels = rng.integers(0, k, size=n)
    conf = [max(row) for row in p]
    correct = [list(row).index(max(row)) == label for row, label in zip(p, labels, strict=True)]
    expected_top = loop_ece(conf, correct, loop_edges(np.array(conf), n_bins, binning), norm)
    got_top = top_label_ece(p, labels, n_bins=n_bins, binning=binning, norm=norm)
    assert got_top == pytest.approx(expected_top, abs=1e-12)
    per_class = []
    for j in range(k):
        values = p[:, j]
        per_class.append(loop_ece(values, labels == j, loop_edges(values, n_bins, binning), norm))
    expected_cw = sum(per_class) / k
    got_cw = classwise_ece(p, labels, n_bins=n_bins, binning=binning, norm=norm)
    assert got_cw == pytest.approx(expected_cw, abs=1e-12)


def test_top_label_argmax_ties_take_first_index():
    p = np.array([[0.4, 0.4, 0.2]] * 4)
    assert top_label_ece(p, [0, 0, 0, 0]) == pytest.approx(0.6)  # argmax 0: correct
    assert top_label_ece(p, [1, 1, 1, 1]) == pytest.approx(0.4)  # argmax 0: wrong


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("binning", ["width", "mass"])
def test_batched_equals_row_by_row(norm, binning):
    rng = np.random.default_rng(6)
    c = rng.integers(0, 21, size=(3, 4, 50)) / 20
    y = rng.random((3, 4, 50)) < c
    got = ece(c, y, n_bins=7, binning=binning, norm=norm)
    assert isinstance(got, np.ndarray)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert got[i, j] == ece(c[i, j], y[i, j], n_bins=7, binning=binning, norm=norm)


def test_one_d_returns_python_float():
    assert type(ece([0.2, 0.9], [False, True])) is float
    assert type(mce([0.2, 0.9], [False, True])) is float


def test_reliability_matches_sklearn_calibration_curve():
    rng = np.random.default_rng(7)
    c = rng.beta(4, 2, size=2000)
    y = rng.random(2000) < c**1.5
    for n_bins in [5, 10, 20]:
        r = reliability(c, y, n_bins=n_bins)
        prob_true, prob_pred = calibration_curve(y, c, n_bins=n_bins, strategy="uniform")
        filled = r.count > 0
        np.testing.assert_allclose(r.accuracy[filled], prob_true, rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.mean_confidence[filled], prob_pred, rtol=0, atol=1e-12)


@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_reliability_wilson_matches_scipy(level):
    rng = np.random.default_rng(8)
    c = np.concatenate([rng.random(300), [0.05], [0.98]])  # add sparse bins of a single item
    y = np.concatenate([rng.random(300) < c[:300], [True], [False]])
    r = reliability(c, y, n_bins=20, level=level)
    for b in np.flatnonzero(r.count):
        hits = round(r.accuracy[b] * r.count[b])
        ci = binomtest(hits, int(r.count[b])).proportion_ci(confidence_level=level, method="wilson")
        assert r.ci_low[b] == pytest.approx(ci.low, abs=1e-12)
        assert r.ci_high[b] == pytest.approx(ci.high, abs=1e-12)


def test_reliability_data_layout():
    c = np.array([0.05, 0.15, 0.95, 0.99])
    y = np.array([True, False, True, True])
    r = reliability(c, y, n_bins=10)
    np.testing.assert_array_equal(r.edges, np.arange(11) / 10)
    assert r.count.dtype == np.int64
    assert r.count.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    empty = r.count == 0
    for field in (r.mean_confidence, r.accuracy, r.ci_low, r.ci_high):
        assert field.shape == (10,)
        assert np.isnan(field[empty]).all()
        assert not np.isnan(field[~empty]).any()
    assert r.mean_confidence[9] == pytest.approx(0.97)
    frame = r.to_frame()
    assert list(frame.columns) == [
        "bin_low",
        "bin_high",
        "count",
        "mean_confidence",
        "accuracy",
        "ci_low",
        "ci_high",
    ]
    assert len(frame) == 10
    assert frame["count"].sum() == 4


def test_reliability_mass_bins_hold_about_n_over_b():
    rng = np.random.default_rng(9)
    r = reliability(rng.random(1000), rng.random(1000) < 0.5, n_bins=10, binning="mass")
    assert r.edges[0] == 0.0
    assert r.edges[-1] == 1.0
    assert r.count.sum() == 1000
    assert set(r.count.tolist()) <= {99, 100, 101}


def test_bin_convention_pins():
    n_bins = 5
    edge_values = np.arange(n_bins + 1) / n_bins  # 0.0, 0.2, ..., 1.0
    r = reliability(edge_values, np.ones(n_bins + 1, dtype=bool), n_bins=n_bins)
    # p == b/B goes into bin b; p == 1.0 joins 0.8 in the last bin; p == 0.0 is in the first.
    assert r.count.tolist() == [1, 1, 1, 1, 2]
    assert r.mean_confidence[-1] == pytest.approx(0.9)
    assert r.mean_confidence[0] == 0.0


@pytest.mark.parametrize(
    ("confidence", "correct"),
    [
        ([0.5, np.nan], [True, False]),
        ([0.5, np.inf], [True, False]),
        ([0.5, 1.2], [True, False]),
        ([-0.1, 0.5], [True, False]),
        ([0.5, 0.5], [True, False, True]),
        ([], []),
        ([0.5, 0.5], [1, 2]),
        ([0.5, 0.5], [0.5, 1.0]),
        ([0.5, 0.5], [True, np.nan]),
        ("abc", [True]),
    ],
)
def test_bad_answer_inputs_raise(confidence, correct):
    with pytest.raises(InputError):
        ece(confidence, correct)
    with pytest.raises(InputError):
        reliability(confidence, correct)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": "l3"},
        {"norm": "L1"},
        {"binning": "quantile"},
        {"n_bins": 0},
        {"n_bins": 2.5},
        {"n_bins": True},
    ],
)
def test_bad_options_raise(kwargs):
    c, y = [0.2, 0.7], [False, True]
    with pytest.raises(InputError):
        ece(c, y, **kwargs)
    p, labels = [[0.2, 0.8], [0.6, 0.4]], [1, 0]
    with pytest.raises(InputError):
        top_label_ece(p, labels, **kwargs)
    with pytest.raises(InputError):
        classwise_ece(p, labels, **kwargs)


def test_mce_bad_options_raise():
    with pytest.raises(InputError, match="binning"):
        mce([0.2, 0.7], [False, True], binning="uniform")


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.2, "0.9"])
def test_reliability_bad_level_raises(level):
    with pytest.raises(InputError, match="level"):
        reliability([0.2, 0.7], [False, True], level=level)


def test_reliability_rejects_batched_input():
    with pytest.raises(InputError, match="1-D"):
        reliability(np.full((2, 3), 0.5), np.ones((2, 3), dtype=bool))


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        ([[0.2, 0.7], [0.5, 0.5]], [0, 1], "sum to 1"),
        ([[0.2, 0.8], [0.5, 0.5]], [0, 2], "outside"),
        ([[0.2, 0.8], [0.5, 0.5]], [-1, 0], "outside"),
        ([[0.2, 0.8], [0.5, 0.5]], [0, 1, 1], "shape"),
        ([[0.2, 0.8], [0.5, 0.5]], [0.5, 1.0], "integer"),
        ([0.2, 0.8], [1], "2-D"),
        ([[0.2, np.nan], [0.5, 0.5]], [0, 1], "NaN"),
        ([[1.2, -0.2], [0.5, 0.5]], [0, 1], "outside"),
    ],
)
def test_bad_multiclass_inputs_raise(probs, labels, match):
    with pytest.raises(InputError, match=match):
        top_label_ece(probs, labels)
    with pytest.raises(InputError, match=match):
        classwise_ece(probs, labels)
