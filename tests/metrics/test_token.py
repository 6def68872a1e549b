"""Token-level calibration: pinned against brute force, torchmetrics, closed forms and itself."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax
from torchmetrics.classification import MulticlassCalibrationError

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration, full_ece

TEMPS = (0.5, 0.85, 1.0, 1.3, 2.0)
SCALARS = (
    "full_ece", "full_ece_per_entry", "top1_ece", "top1_mce", "brier", "nll", "argmax_accuracy",
    "sampled_accuracy", "entropy", "nll_grad", "nll_hess",
)  # fmt: skip


def llm_like(rng: np.random.Generator, n: int, v: int, dtype=np.float32):
    """Heavy-tailed logits with a few dominant entries, and targets drawn near the top."""
    z = rng.standard_normal((n, v)) * 2.0 + rng.gumbel(size=(n, v)) * 1.5
    z[np.arange(n), rng.integers(0, v, n)] += rng.uniform(0, 8, n)
    p = softmax(z, axis=1)
    y = np.array([rng.choice(v, p=row) for row in p**0.7 / (p**0.7).sum(1, keepdims=True)])
    return z.astype(dtype), y


def brute_force(z: np.ndarray, y: np.ndarray, n_bins: int, t: float) -> dict[str, np.ndarray]:
    """Loop over every (position, entry) in float64, binning by the documented convention."""
    zz = z.astype(np.float64) / t
    p = softmax(zz, axis=1)
    n, v = p.shape
    count = np.zeros(n_bins, np.int64)
    mass = np.zeros(n_bins)
    hits = np.zeros(n_bins, np.int64)
    top_count = np.zeros(n_bins, np.int64)
    top_conf = np.zeros(n_bins)
    top_correct = np.zeros(n_bins, np.int64)
    for i in range(n):
        for k in range(v):
            b = min(int(np.floor(p[i, k] * n_bins)), n_bins - 1)
            while b > 0 and p[i, k] < b / n_bins:
                b -= 1
            while b < n_bins - 1 and p[i, k] >= (b + 1) / n_bins:
                b += 1
            count[b] += 1
            mass[b] += p[i, k]
            hits[b] += int(k == y[i])
        k = int(np.argmax(p[i]))
        b = min(int(p[i, k] * n_bins), n_bins - 1)
        top_count[b] += 1
        top_conf[b] += p[i, k]
        top_correct[b] += int(k == y[i])
    onehot = np.eye(v)[y]
    logp = log_softmax(zz, axis=1)
    zs = z.astype(np.float64)
    mean_z = (p * zs).sum(1)
    return {
        "full_count": count, "full_mass": mass, "full_hits": hits,
        "top1_count": top_count, "top1_confidence": top_conf, "top1_correct": top_correct,
        "full_ece": np.abs(hits - mass).sum() / n,
        "top1_ece": np.abs(top_correct - top_conf).sum() / n,
        "brier": ((p - onehot) ** 2).sum(1).mean(),
        "nll": -logp[np.arange(n), y].mean(),
        "argmax_accuracy": (p.argmax(1) == y).mean(),
        "sampled_accuracy": p[np.arange(n), y].mean(),
        "entropy": -(p * logp).sum(1).mean(),
        "nll_grad": (mean_z - zs[np.arange(n), y]).mean(),
        "nll_hess": ((p * zs**2).sum(1) - mean_z**2).mean(),
    }  # fmt: skip


@pytest.mark.parametrize("n_bins", [1, 4, 15])
def test_matches_brute_force_loop(n_bins):
    rng = np.random.default_rng(n_bins)
    z, y = llm_like(rng, 40, 37)
    acc = TokenCalibration(37, n_bins=n_bins, temperatures=TEMPS)
    acc.update(z, y)
    assert_matches_brute_force(acc.compute(), z, y, n_bins, TEMPS, rtol=1e-6, atol=1e-9)


def assert_matches_brute_force(got, z, y, n_bins, temps, rtol, atol, keys=None):
    """Counts equal and every other statistic (or `keys`) close to `brute_force`'s at each T."""
    for j, t in enumerate(temps):
        ref = brute_force(z, y, n_bins, t)
        for key in ("full_count", "full_hits", "top1_count", "top1_correct"):
            np.testing.assert_array_equal(getattr(got, key)[j], ref[key], err_msg=key)
        for key in keys or ref:
            np.testing.assert_allclose(
                getattr(got, key)[j], ref[key], rtol=rtol, atol=atol, err_msg=key
            )


def edge_cases(rng: np.random.Generator, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 logits (48, 6 * n_bins) and targets: random rows, tied maxima, rows of repeated
    values, and rows whose probabilities sit exactly on bin edges at every temperature (uniform
    over B, B / 2 or B / 5 entries, the rest masked; one certain entry), targets on every kind."""
    v = 6 * n_bins
    z, y = llm_like(rng, 48, v, dtype=np.float64)
    z[0:8, 7] = z[0:8, 3] = z[0:8].max(axis=1) + 1.0  # two tied maxima
    z[8:16] = np.round(z[8:16])  # many ties everywhere
    masked = -1e30  # exp(masked / T) == 0 at every T here
    for i, k in zip(range(16, 40), (n_bins, n_bins // 2, n_bins // 5) * 8, strict=True):
        z[i] = masked
        z[i, rng.choice(v, k, replace=False)] = rng.normal() * 5  # p = 1/k = (B/k) / B
        y[i] = rng.choice(np.flatnonzero(z[i] > masked)) if i % 2 else rng.integers(v)
    z[40:44] = masked
    z[40:44, 1] = 0.0  # p = 1 exactly: the last bin
    y[40:44] = (1, 2, 1, 0)
    return z, y


def test_sparse_binning_matches_full_binning_on_ties_extremes_and_edges():
    """Only the candidates are binned above bin 0 (bin 0 follows from the totals): pinned
    against binning every entry, at extreme temperatures too."""
    n_bins, temps = 10, (0.05, 0.5, 1.0, 7.0, 50.0)
    for seed in range(3):
        z, y = edge_cases(np.random.default_rng(seed), n_bins)
        acc = TokenCalibration(z.shape[1], n_bins=n_bins, temperatures=temps, chunk_bytes=4096)
        acc.update(z, y)
        got = acc.compute()
        keys = ("full_mass", "top1_confidence", "full_ece", "top1_ece", "brier")
        assert_matches_brute_force(got, z, y, n_bins, temps, 1e-9, 1e-12, keys)
        for j, t in enumerate(temps):
            assert got.argmax_accuracy[j] == brute_force(z, y, n_bins, t)["argmax_accuracy"]
        edge_bins = {n_bins // k for k in (n_bins, n_bins // 2, n_bins // 5)}
        assert all((got.full_count[:, b] > 0).all() for b in edge_bins | {n_bins - 1})


def test_float64_input_is_exact_to_float64_precision():
    rng = np.random.default_rng(7)
    z, y = llm_like(rng, 30, 23, dtype=np.float64)
    acc = TokenCalibration(23, n_bins=10, temperatures=(0.7, 1.0))
    acc.update(z, y)
    got = acc.compute()
    for j, t in enumerate((0.7, 1.0)):
        ref = brute_force(z, y, 10, t)
        for key in ("full_ece", "brier", "nll", "entropy", "nll_grad", "nll_hess"):
            np.testing.assert_allclose(getattr(got, key)[j], ref[key], rtol=1e-11, err_msg=key)


def test_full_ece_closed_forms():
    n, v = 64, 8
    # Certain and always wrong: mass N in the last bin with no hits, hits N in bin 0: ECE = 2.
    z = np.zeros((n, v), np.float32)
    z[:, 0] = 1e4
    y = np.ones(n, np.int64)
    assert full_ece(z, y, n_bins=10) == 2.0
    # Certain and always right: ECE = 0.
    assert full_ece(z, np.zeros(n, np.int64), n_bins=10) == 0.0
    # Uniform over V = B entries: p = 1/B sits exactly on an edge, so every entry is in bin 1, whose
    # mass N equals its hits N: ECE = 0 with count N * V in bin 1.
    acc = TokenCalibration(v, n_bins=v)
    acc.update(np.zeros((n, v), np.float32), np.arange(n) % v)
    got = acc.compute()
    assert got.full_ece[0] == pytest.approx(0.0, abs=1e-12)
    assert got.full_count[0, 1] == n * v and got.full_count[0].sum() == n * v


def test_probability_one_goes_to_last_bin_and_zero_to_first():
    z = np.array([[200.0, 0.0, 0.0]], np.float32)  # p = (1.0, 0.0, 0.0) after float rounding
    acc = TokenCalibration(3, n_bins=5)
    acc.update(z, np.array([0]))
    got = acc.compute()
    np.testing.assert_array_equal(got.full_count[0], [2, 0, 0, 0, 1])
    np.testing.assert_array_equal(got.top1_count[0], [0, 0, 0, 0, 1])
    assert got.full_ece[0] == 0.0


def test_argmax_ties_take_the_first_index():
    z = np.array([[1.0, 3.0, 3.0, 0.0]], np.float32)
    acc = TokenCalibration(4, n_bins=5)
    acc.update(z, np.array([1]))
    assert acc.compute().argmax_accuracy[0] == 1.0
    acc = TokenCalibration(4, n_bins=5)
    acc.update(z, np.array([2]))
    assert acc.compute().argmax_accuracy[0] == 0.0


def test_very_negative_finite_logits_are_masked_entries():
    rng = np.random.default_rng(3)
    z, y = llm_like(rng, 20, 12)
    masked = z.copy()
    masked[:, -3:] = np.finfo(np.float32).min  # as a logits processor masks, finite
    y = np.minimum(y, 8)
    acc = TokenCalibration(12, n_bins=10, temperatures=(0.5, 1.0))
    acc.update(masked, y)
    got = acc.compute()
    ref = TokenCalibration(9, n_bins=10, temperatures=(0.5, 1.0))
    ref.update(z[:, :9], y)
    want = ref.compute()
    for key in ("full_ece", "brier", "nll", "entropy", "top1_ece", "nll_grad", "nll_hess"):
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), rtol=1e-6, err_msg=key)
    np.testing.assert_array_equal(got.full_count[:, 0] - want.full_count[:, 0], [60, 60])


def test_top1_ece_matches_torchmetrics():
    rng = np.random.default_rng(11)
    z, y = llm_like(rng, 500, 30)
    for t in (0.7, 1.0, 1.6):
        probs = torch.from_numpy(softmax(z.astype(np.float64) / t, axis=1))
        acc = TokenCalibration(30, n_bins=15, temperatures=(t,))
        acc.update(z, y)
        got = acc.compute()
        for norm, key in (("l1", "top1_ece"), ("max", "top1_mce")):
            ref = MulticlassCalibrationError(num_classes=30, n_bins=15, norm=norm)
            want = float(ref(probs, torch.from_numpy(y)))
            assert getattr(got, key)[0] == pytest.approx(want, rel=1e-5), (t, norm)


def test_argmax_accuracy_is_invariant_to_temperature_but_sampled_accuracy_is_not():
    rng = np.random.default_rng(5)
    z, y = llm_like(rng, 200, 50)
    acc = TokenCalibration(50, temperatures=(0.5, 1.0, 2.0))
    acc.update(z, y)
    got = acc.compute()
    assert np.all(got.argmax_accuracy == got.argmax_accuracy[0])
    assert got.sampled_accuracy[0] != pytest.approx(got.sampled_accuracy[2], rel=1e-3)
    assert got.argmax_accuracy[0] == np.mean(z.argmax(1) == y)


def _state_equal(a: TokenCalibration, b: TokenCalibration, rtol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if sa[key].dtype.kind in "iU":
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
        else:
            np.testing.assert_allclose(sa[key], sb[key], rtol=rtol, atol=0, err_msg=key)


@pytest.mark.parametrize("seed", range(4))
def test_merge_of_any_partition_equals_one_pass(seed):
    rng = np.random.default_rng(seed)
    v = int(rng.integers(5, 300))
    z, y = llm_like(rng, 257, v)
    one = TokenCalibration(v, n_bins=15, temperatures=TEMPS)
    one.update(z, y)
    order = rng.permutation(len(y))
    cuts = np.sort(rng.choice(np.arange(1, len(y)), size=int(rng.integers(1, 9)), replace=False))
    parts = []
    for idx in np.split(order, cuts):
        part = TokenCalibration(
            v, n_bins=15, temperatures=TEMPS, chunk_bytes=int(rng.integers(1, 10**5))
        )
        part.update(z[idx], y[idx])
        parts.append(part)
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    _state_equal(merged, one, rtol=1e-9)


def test_state_dict_round_trips_through_npz():
    rng = np.random.default_rng(2)
    z, y = llm_like(rng, 50, 40)
    acc = TokenCalibration(40, n_bins=12, temperatures=(0.8, 1.2))
    acc.update(z, y)
    buf = io.BytesIO()
    np.savez(buf, **acc.state_dict())
    buf.seek(0)
    loaded = TokenCalibration.from_state_dict(dict(np.load(buf)))
    _state_equal(loaded, acc, rtol=0)
    assert loaded.compute().to_frame().equals(acc.compute().to_frame())
    loaded.update(z, y)
    assert loaded.n_positions == 100


def test_counts_are_exact_beyond_float32_range():
    v, n = 4096, 4200  # 17.2 M entries in bin 0: beyond 2**24, where float32 counting stops
    row = np.linspace(-3, 3, v, dtype=np.float32)
    z = np.broadcast_to(row, (n, v))
    acc = TokenCalibration(v, n_bins=15)
    acc.update(z, np.zeros(n, np.int64))
    got = acc.compute()
    assert got.full_count.dtype == np.int64
    assert got.full_count[0, 0] > 2**24
    assert int(got.full_count.sum()) == n * v
    per_row = TokenCalibration(v, n_bins=15)
    per_row.update(row[None], np.zeros(1, np.int64))
    np.testing.assert_array_equal(got.full_count, per_row.compute().full_count * n)


def test_bfloat16_tensors_go_through_the_torch_kernel_and_agree_with_numpy():
    rng = np.random.default_rng(10)
    z, y = llm_like(rng, 200, 300)
    zb = torch.from_numpy(z).bfloat16()
    a = TokenCalibration(300, temperatures=TEMPS)
    a.update(zb.float().numpy(), y)
    b = TokenCalibration(300, temperatures=TEMPS)
    b.update(zb, torch.from_numpy(y))
    ra, rb = a.compute(), b.compute()
    for key in SCALARS:
        np.testing.assert_allclose(getattr(rb, key), getattr(ra, key), rtol=1e-6, err_msg=key)
    np.testing.assert_array_equal(rb.full_count, ra.full_count)


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(9)
    z, y = llm_like(rng, 300, 500)
    a = TokenCalibration(500, temperatures=TEMPS)
    a.update(z, y)
    b = TokenCalibration(500, temperatures=TEMPS)
    b.update(torch.from_numpy(z), torch.from_numpy(y))
    ra, rb = a.compute(), b.compute()
    for key in SCALARS:
        np.testing.assert_allclose(getattr(rb, key), getattr(ra, key), rtol=1e-6, err_msg=key)
    np.testing.assert_array_equal(rb.full_count, ra.full_count)
    np.testing.assert_array_equal(rb.full_hits, ra.full_hits)


def test_half_precision_inputs_are_upcast():
    rng = np.random.default_rng(4)
    z, y = llm_like(rng, 60, 70)
    z16 = z.astype(np.float16)
    ref = brute_force(z16.astype(np.float32), y, 15, 1.0)
    for logits in (z16, torch.from_numpy(z16), torch.from_numpy(z16.astype(np.float32)).bfloat16()):
        acc = TokenCalibration(70)
        acc.update(logits, torch.from_numpy(y) if isinstance(logits, torch.Tensor) else y)
        got = acc.compute()
        if logits.dtype == torch.bfloat16:
            ref_bf = brute_force(logits.float().numpy(), y, 15, 1.0)
            assert got.nll[0] == pytest.approx(ref_bf["nll"], rel=1e-6)
        else:
            assert got.nll[0] == pytest.approx(ref["nll"], rel=1e-6)
            assert got.full_ece[0] == pytest.approx(ref["full_ece"], rel=1e-6)


def test_batched_leading_axes_are_flattened():
    rng = np.random.default_rng(8)
    z, y = llm_like(rng, 24, 16)
    a = TokenCalibration(16)
    a.update(z.reshape(4, 6, 16), y.reshape(4, 6))
    b = TokenCalibration(16)
    b.update(z, y)
    _state_equal(a, b, rtol=0)


def test_memory_does_not_grow_with_positions():
    import tracemalloc

    rng = np.random.default_rng(0)
    v = 2048
    peaks = []
    # Both sizes span many 128-row sub-chunks, so both keep one work buffer per thread busy (with
    # two sub-chunks, whether the threads overlap was a race and the smaller peak halved).
    for n in (2048, 16384):
        z = rng.standard_normal((n, v), dtype=np.float32)
        y = rng.integers(0, v, n)
        acc = TokenCalibration(v, chunk_bytes=2**20)
        tracemalloc.start()
        acc.update(z, y)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 4 * 2**20
    assert peaks[1] < 1.5 * peaks[0] + 2**18


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_numpy():
    rng = np.random.default_rng(12)
    z, y = llm_like(rng, 300, 1000)
    a = TokenCalibration(1000, temperatures=TEMPS)
    a.update(z, y)
    b = TokenCalibration(1000, temperatures=TEMPS)
    b.update(torch.from_numpy(z).cuda(), torch.from_numpy(y).cuda())
    for key in SCALARS:
        np.testing.assert_allclose(getattr(b.compute(), key), getattr(a.compute(), key), rtol=1e-6)


@pytest.mark.parametrize(
    ("logits", "targets", "match"),
    [
        (np.array([[0.0, np.nan, 1.0]]), [0], "position 0 has NaN or infinite"),
        (np.array([[0.0, 1.0, 1.0], [0.0, np.inf, 1.0]]), [0, 1], "position 1 has NaN or infinite"),
        (np.array([[0.0, -np.inf, 1.0]]), [0], "not -inf"),
        (np.zeros((2, 3)), [0, 3], r"token id 3 outside the vocabulary \[0, 3\)"),
        (np.zeros((2, 3)), [-1, 0], "token id -1 outside"),
        (np.zeros((2, 3)), [0.0, 1.0], "integer token ids"),
        (np.zeros((2, 3)), [0, 1, 2], "does not match"),
        (np.zeros((2, 4)), [0, 1], r"expected shape \(\.\.\., 3\)"),
        (np.zeros((0, 3)), np.zeros(0, np.int64), "empty update"),
        (np.zeros((2, 3), np.int64), [0, 1], "floating-point"),
        (np.zeros(3), np.zeros((), np.int64), "expected shape"),
    ],
)
def test_bad_input_raises_input_error(logits, targets, match):
    for as_torch in (False, True):
        acc = TokenCalibration(3)
        z = torch.as_tensor(logits) if as_torch else logits
        with pytest.raises(InputError, match=match):
            acc.update(z, targets)


def test_bad_configuration_raises_input_error():
    with pytest.raises(InputError, match="temperatures"):
        TokenCalibration(10, temperatures=(1.0, 0.0))
    with pytest.raises(InputError, match="n_bins"):
        TokenCalibration(10, n_bins=0)
    with pytest.raises(InputError, match="vocab_size"):
        TokenCalibration(0)
    with pytest.raises(InputError, match="no positions"):
        TokenCalibration(10).compute()
    with pytest.raises(InputError, match="differ"):
        TokenCalibration(10).merge(TokenCalibration(11))
    with pytest.raises(InputError, match="missing key"):
        TokenCalibration.from_state_dict({"vocab_size": 3, "n_bins": 2, "temperatures": [1.0]})


def test_update_scored_returns_target_logprobs_at_unit_temperature():
    rng = np.random.default_rng(13)
    z, y = llm_like(rng, 40, 64)
    acc = TokenCalibration(64, temperatures=(0.7, 1.0))
    logp, greedy = acc.update_scored(z, y)
    want = log_softmax(z.astype(np.float64), axis=1)[np.arange(40), y]
    np.testing.assert_allclose(logp, want, rtol=1e-6, atol=1e-6)  # float32 sums: ~1e-7 nats
    np.testing.assert_array_equal(greedy, z.argmax(1) == y)
    plain = TokenCalibration(64, temperatures=(0.7, 1.0))
    plain.update(z, y)
    _state_equal(acc, plain, rtol=0)
    with pytest.raises(InputError, match=r"must contain 1\.0"):
        TokenCalibration(64, temperatures=(0.7,)).update_scored(z, y)
