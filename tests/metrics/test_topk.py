"""Top-k + unseen-mass distributions: pinned against a brute-force construction by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from calibbench.errors import InputError
from calibbench.metrics.topk import (
    PAD_LOGIT,
    topk_bucket_logits,
    topk_calibration,
    topk_label,
)

N_BINS = 15


def full_distributions(rng: np.random.Generator, n: int, v: int):
    """Peaked full log-softmax rows (n, v) and targets drawn from them (some outside the top-k)."""
    z = rng.standard_normal((n, v)) * 2.5
    z[np.arange(n), rng.integers(0, v, n)] += rng.uniform(0, 6, n)
    logp = log_softmax(z, axis=1)
    y = np.array([rng.choice(v, p=np.exp(row)) for row in logp])
    return logp, y


def by_hand(logp: np.ndarray, y: np.ndarray, k: int, t: float = 1.0):
    """Keep the top-k of each full row, put the rest in one bucket, and compute the metrics."""
    nll = brier = 0.0
    argmax_hits = 0
    mass = np.zeros(N_BINS)
    hits = np.zeros(N_BINS)
    for row, target in zip(logp, y, strict=True):
        order = np.argsort(-row, kind="stable")[:k]
        q = np.append(np.exp(row[order]), 1.0 - np.exp(row[order]).sum())
        slot = int(np.flatnonzero(order == target)[0]) if target in order else k
        q = q ** (1.0 / t) / (q ** (1.0 / t)).sum()
        nll -= np.log(q[slot])
        brier += ((q - np.eye(k + 1)[slot]) ** 2).sum()
        argmax_hits += int(np.argmax(q) == slot)
        for j, p in enumerate(q):
            b = min(int(p * N_BINS), N_BINS - 1)
            mass[b] += p
            hits[b] += j == slot
    n = len(y)
    return {
        "nll": nll / n,
        "brier": brier / n,
        "argmax_accuracy": argmax_hits / n,
        "full_ece": np.abs(hits - mass).sum() / n,
    }


def api_view(logp: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator):
    """What an API reports: k alternatives (shuffled, sometimes plus the chosen token) and the
    chosen token's log-prob."""
    tops, targets = [], []
    for row, target in zip(logp, y, strict=True):
        top = list(row[np.argsort(-row)[:k]])
        if row[target] < top[-1] and rng.random() < 0.5:
            top.append(row[target])
        rng.shuffle(top)
        tops.append(top)
        targets.append(row[target])
    return tops, targets


@pytest.mark.parametrize("k", [1, 5, 20])
def test_metrics_match_the_truncated_distribution_by_hand(k):
    rng = np.random.default_rng(k)
    logp, y = full_distributions(rng, 300, 200)
    tops, targets = api_view(logp, y, k, rng)
    logits, slots = topk_bucket_logits(tops, targets, k)
    assert logits.shape == (300, k + 1) and slots.shape == (300,)
    assert 0 < (slots == k).sum() < 300  # both seen and unseen targets occur
    acc = topk_calibration(k, n_bins=N_BINS, temperatures=(0.5, 1.0, 2.0))
    acc.update(logits, slots)
    got = acc.compute()
    assert got.approximation == topk_label(k) == f"top-{k} + unseen-mass bucket"
    for j, t in enumerate((0.5, 1.0, 2.0)):
        want = by_hand(logp, y, k, t)
        for name, value in want.items():
            assert getattr(got, name)[j] == pytest.approx(value, abs=1e-9), (name, t)


def test_rows_are_sorted_truncated_padded_and_bucketed():
    # position 0: target is the 2nd best; position 1: two alternatives only and the target
    # (reported as an extra entry) outside them; position 2: top-2 sums to 1 (empty bucket).
    tops = [
        [np.log(0.1), np.log(0.6), np.log(0.2)],
        [np.log(0.05), np.log(0.5)],
        [np.log(0.75), np.log(0.25), -np.inf],
    ]
    targets = [np.log(0.2), np.log(0.01), np.log(0.25)]
    logits, slots = topk_bucket_logits(tops, targets, 3)
    np.testing.assert_allclose(np.exp(logits[0]), [0.6, 0.2, 0.1, 0.1])
    np.testing.assert_allclose(np.exp(logits[1, :2]), [0.5, 0.05])
    assert logits[1, 2] == PAD_LOGIT
    assert np.exp(logits[1, 3]) == pytest.approx(0.45)
    assert logits[2, 2] == logits[2, 3] == PAD_LOGIT
    assert np.isfinite(logits).all()
    assert slots.tolist() == [1, 3, 1]


def test_unseen_bucket_holds_at_least_the_target():
    # rounding made the reported top-2 sum past 1, yet the target is not among them
    logits, slots = topk_bucket_logits([[np.log(0.7), np.log(0.3000001)]], [np.log(1e-3)], 2)
    assert slots.tolist() == [2]
    assert np.exp(logits[0, 2]) == pytest.approx(1e-3)


def test_extra_chosen_entry_beyond_k_is_dropped():
    logits, slots = topk_bucket_logits([[-0.1, -3.0, -9.0]], [-9.0], 2)
    np.testing.assert_allclose(logits[0, :2], [-0.1, -3.0])
    assert slots.tolist() == [2]


def test_pad_logit_is_the_most_negative_float32():
    assert PAD_LOGIT == np.finfo(np.float32).min


@pytest.mark.parametrize(
    ("tops", "targets", "k", "match"),
    [
        ([[-1.0]], [-1.0, -2.0], 1, "target_logprobs"),
        ([[np.nan]], [-1.0], 1, "position 0"),
        ([[-1.0], [0.5]], [-1.0, -1.0], 1, "position 1"),
        ([[-1.0]], [np.nan], 1, "position 0"),
        ([[-1.0]], [-1.0], 0, "k:"),
    ],
)
def test_invalid_input_raises(tops, targets, k, match):
    with pytest.raises(InputError, match=match):
        topk_bucket_logits(tops, targets, k)


def test_topk_calibration_rejects_bad_k():
    with pytest.raises(InputError, match="k:"):
        topk_calibration(0)


def test_a_full_distribution_within_the_top_k_is_exact():
    """With k = V the bucket is empty and the metrics are those of the full distribution."""
    rng = np.random.default_rng(3)
    logp, y = full_distributions(rng, 50, 8)
    logits, slots = topk_bucket_logits(logp, logp[np.arange(50), y], 8)
    acc = topk_calibration(8)
    acc.update(logits, slots)
    full = softmax(logp, axis=1)
    assert acc.compute().nll[0] == pytest.approx(-np.log(full[np.arange(50), y]).mean())
