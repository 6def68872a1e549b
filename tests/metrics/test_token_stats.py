"""The per-position statistics kernels: numpy and torch agree, sums are chunking-invariant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

from calibbench.metrics.token_stats import NumpyStatsKernel, candidate_threshold
from calibbench.metrics.token_stats_torch import TorchStatsKernel

TEMPS = np.array([0.5, 1.0, 1.7])


def logits(seed: int, n: int, v: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, v)) * 3).astype(np.float32)
    z[np.arange(n), rng.integers(0, v, n)] += 6
    return z, rng.integers(0, v, n)


@pytest.mark.parametrize("fused", [True, False])
def test_moments_match_direct_float64_sums(fused):
    z, y = logits(0, 20, 4200)
    st = NumpyStatsKernel(4200, TEMPS, 15, rows=7, fused=fused)(z, y, 0)
    x = z.astype(np.float64) - z.max(axis=1, keepdims=True)
    for j, t in enumerate(TEMPS):
        e = np.exp(x / t)
        np.testing.assert_allclose(st.s0[j], e.sum(1), rtol=1e-6)
        np.testing.assert_allclose(st.s1[j], (e * x).sum(1), rtol=1e-5)
        np.testing.assert_allclose(st.s2[j], (e * x**2).sum(1), rtol=1e-5)
        np.testing.assert_allclose(st.q[j], (e**2).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(st.argmax, z.argmax(1))
    np.testing.assert_allclose(st.x_target, x[np.arange(20), y], rtol=1e-6)


def test_candidates_hold_every_entry_that_can_leave_the_first_bin():
    z, y = logits(1, 50, 400)
    n_bins = 15
    st = NumpyStatsKernel(400, TEMPS, n_bins, rows=8)(z, y, 0)
    cand = set(zip(st.cand_row.tolist(), st.cand_col.tolist(), strict=True))
    for t in TEMPS:
        p = softmax(z.astype(np.float64) / t, axis=1)
        needed = set(zip(*np.nonzero(p >= 1.0 / n_bins), strict=True))
        assert needed <= cand
    assert len(cand) <= 50 * n_bins * len(TEMPS) + 50
    # Every maximal entry is a candidate, so the argmax comes from them.
    assert set(zip(range(50), z.argmax(1).tolist(), strict=True)) <= cand


def test_threshold_is_never_above_zero():
    s0 = np.array([[1.0, 40.0, 1000.0]])
    theta = candidate_threshold(s0, np.array([1.0]), 15)
    assert np.all(theta < 0)
    assert theta[0] == pytest.approx(np.log(1 / 15), rel=1e-3)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("v", [37, 1000, 4099, 9000])
def test_per_position_sums_do_not_depend_on_chunking(v, fused):
    z, y = logits(v, 40, v)
    one = NumpyStatsKernel(v, TEMPS, 15, rows=1, fused=fused)
    per_row = [one(z[i : i + 1], y[i : i + 1], i) for i in range(40)]
    for rows in (3, 16, 40):
        st = NumpyStatsKernel(v, TEMPS, 15, rows=rows, fused=fused)(z, y, 0)
        for name in ("s0", "s1", "s2", "q"):
            want = np.concatenate([getattr(r, name) for r in per_row], axis=1)
            np.testing.assert_array_equal(getattr(st, name), want, err_msg=f"{name}, rows={rows}")


def test_statistics_do_not_depend_on_the_number_of_threads():
    z, y = logits(4, 37, 1500)
    one = NumpyStatsKernel(1500, TEMPS, 15, rows=2, threads=1, fused=False)(z, y, 0)
    for threads in (2, 3, 64):
        st = NumpyStatsKernel(1500, TEMPS, 15, rows=2, threads=threads, fused=False)(z, y, 0)
        for name in ("argmax", "x_target", "s0", "s1", "s2", "q", "cand_row", "cand_col", "cand_x"):
            np.testing.assert_array_equal(getattr(st, name), getattr(one, name), err_msg=name)


@pytest.mark.parametrize("fused", [True, False])
def test_torch_kernel_matches_numpy_kernel_on_cpu(fused):
    z, y = logits(2, 64, 4777)
    a = NumpyStatsKernel(4777, TEMPS, 15, rows=5, fused=False)(z, y, 0)
    b = TorchStatsKernel(4777, TEMPS, 15, rows=9, fused=fused)(
        torch.from_numpy(z), torch.from_numpy(y), 0
    )
    np.testing.assert_array_equal(a.argmax, b.argmax)
    np.testing.assert_array_equal(a.x_target, b.x_target)
    np.testing.assert_array_equal(a.cand_row, b.cand_row)
    np.testing.assert_array_equal(a.cand_col, b.cand_col)
    np.testing.assert_array_equal(a.cand_x, b.cand_x)
    for name in ("s0", "s1", "s2", "q"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=2e-6, err_msg=name)


def test_target_logprobs_match_scipy_and_argmax_ties_take_the_first_index():
    from scipy.special import log_softmax

    from calibbench.metrics.token_stats import target_logprobs

    z, y = logits(5, 30, 5000)
    logp, greedy = target_logprobs(z, y, chunk_bytes=4 * 5000 * 7)
    want = log_softmax(z.astype(np.float64), axis=1)[np.arange(30), y]
    np.testing.assert_allclose(logp, want, rtol=1e-6)
    np.testing.assert_array_equal(greedy, z.argmax(1) == y)
    tied = np.array([[1.0, 3.0, 3.0]], np.float32)
    assert target_logprobs(tied, np.array([1]))[1][0]
    assert not target_logprobs(tied, np.array([2]))[1][0]


def test_native_kernel_is_exact_where_entries_are_far_below_the_maximum():
    """Entries 50-200 nats below the maximum (real vocabularies have them) put exp and e^2 in the
    float32 subnormal range, which the native kernel skips: every moment stays within 1e-6 of
    float64 sums, at temperatures from 0.05 to 50, for float32 and float64 logits."""
    temps = np.array([0.05, 0.5, 1.0, 2.0, 50.0])
    z, y = logits(7, 30, 5000)
    z[:, 1000:3000] -= np.linspace(50, 200, 2000, dtype=np.float32)
    for dtype in (np.float32, np.float64):
        zz = z.astype(dtype)
        st = NumpyStatsKernel(5000, temps, 15, rows=4)(zz, y, 0)
        x = zz.astype(np.float64) - zz.max(axis=1, keepdims=True).astype(np.float64)
        for j, t in enumerate(temps):
            e = np.exp(x / t)
            for name, want in (
                ("s0", e.sum(1)),
                ("s1", (e * x).sum(1)),
                ("s2", (e * x**2).sum(1)),
                ("q", (e**2).sum(1)),
            ):
                np.testing.assert_allclose(
                    getattr(st, name)[j], want, rtol=1e-6, err_msg=f"{name}, T={t}, {dtype}"
                )


@pytest.mark.parametrize("bad", [np.nan, -np.inf, np.inf])
def test_kernels_report_nonfinite_logits(bad):
    from calibbench.errors import InputError

    z, y = logits(8, 12, 5000)
    z[5, 17] = bad
    for kernel in (
        NumpyStatsKernel(5000, TEMPS, 15, rows=4),
        TorchStatsKernel(5000, TEMPS, 15, rows=4),
    ):
        arg = (
            (z, y)
            if isinstance(kernel, NumpyStatsKernel)
            else (torch.from_numpy(z), torch.from_numpy(y))
        )
        with pytest.raises(InputError, match="position 105"):
            kernel(*arg, 100)


def test_the_native_kernel_can_be_switched_off(monkeypatch):
    from calibbench.metrics import token_stats_native

    monkeypatch.setenv(token_stats_native.SWITCH, "0")
    assert token_stats_native.native_stats(TEMPS, 15, 1e-4) is None
    assert NumpyStatsKernel(5000, TEMPS, 15, rows=2)._native is None
    monkeypatch.delenv(token_stats_native.SWITCH)
    assert token_stats_native.native_stats(TEMPS, 15, 1e-4) is not None


def test_without_a_compiler_the_eager_passes_take_over(monkeypatch, tmp_path, caplog):
    """A compiler that fails (here `false`) leaves no library: a warning, and the same
    statistics from the eager passes."""
    from calibbench.metrics import token_stats_native

    monkeypatch.setattr(token_stats_native, "CACHE_DIR", tmp_path)
    monkeypatch.setenv("CC", "false")
    token_stats_native._library.cache_clear()
    try:
        assert token_stats_native.native_stats(TEMPS, 15, 1e-4) is None
        assert "native token-statistics kernel is unavailable" in caplog.text
        z, y = logits(3, 6, 5000)
        got = NumpyStatsKernel(5000, TEMPS, 15, rows=2)(z, y, 0)
        want = NumpyStatsKernel(5000, TEMPS, 15, rows=2, fused=False)(z, y, 0)
        np.testing.assert_array_equal(got.s0, want.s0)
        assert list(tmp_path.iterdir()) == []  # no half-written library left behind
    finally:
        token_stats_native._library.cache_clear()


def test_the_library_is_built_once_per_source_compiler_and_cpu(monkeypatch, tmp_path):
    from calibbench.metrics import token_stats_native

    monkeypatch.setattr(token_stats_native, "CACHE_DIR", tmp_path)
    token_stats_native._library.cache_clear()
    try:
        assert token_stats_native.native_stats(TEMPS, 15, 1e-4) is not None
        built = list(tmp_path.glob("token_stats-*.so"))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        token_stats_native._library.cache_clear()
        assert token_stats_native.native_stats(TEMPS, 15, 1e-4) is not None
        assert list(tmp_path.glob("*")) == built and built[0].stat().st_mtime_ns == stamp
    finally:
        token_stats_native._library.cache_clear()


def test_rows_with_more_candidates_than_slots_match_the_eager_passes():
    """Rows of many tied maxima (more candidates than the native pass has slots for) get their
    candidates from numpy: the same as the eager passes'."""
    z, y = logits(4, 10, 5000)
    z[2, :3000] = z[2].max() + 1.0  # 3000 maximal entries
    z[7] = 0.5  # a uniform row
    fused = NumpyStatsKernel(5000, TEMPS, 15, rows=4)(z, y, 0)
    eager = NumpyStatsKernel(5000, TEMPS, 15, rows=4, fused=False)(z, y, 0)
    for name in ("argmax", "cand_row", "cand_col", "cand_x", "x_target"):
        np.testing.assert_array_equal(getattr(fused, name), getattr(eager, name), err_msg=name)
    np.testing.assert_allclose(fused.s0, eager.s0, rtol=1e-6)


@pytest.mark.parametrize("masked", [-1e30, -3.0e38])
def test_masked_entries_far_below_give_the_same_statistics_fused_or_eager(masked):
    """Masked entries (finite, hugely negative; at -3e38 z - max overflows float32) weigh nothing:
    both paths agree with float64 sums over the unmasked entries, and with each other exactly on
    the candidates and targets (x clamped at X_FLOOR)."""
    z, y = logits(9, 24, 5000)
    z[:, 4000:] = masked
    z[3, :] = masked
    z[3, 7] = 2.0e38  # one row whose range overflows even x = z - m
    y[::5] = 4500  # some targets are masked entries
    fused = NumpyStatsKernel(5000, TEMPS, 15, rows=2)(z, y, 0)
    eager = NumpyStatsKernel(5000, TEMPS, 15, rows=2, fused=False)(z, y, 0)
    for name in ("argmax", "cand_row", "cand_col", "cand_x", "x_target"):
        np.testing.assert_array_equal(getattr(fused, name), getattr(eager, name), err_msg=name)
    keep = np.ones(24, bool)
    keep[3] = False
    x = z[keep, :4000].astype(np.float64) - z[keep].max(axis=1, keepdims=True)
    for j, t in enumerate(TEMPS):
        e = np.exp(x / t)
        for name, want in (("s0", e.sum(1)), ("s1", (e * x).sum(1)),
                           ("s2", (e * x**2).sum(1)), ("q", (e**2).sum(1))):  # fmt: skip
            for st in (fused, eager):
                np.testing.assert_allclose(getattr(st, name)[j][keep], want, rtol=1e-5,
                                           err_msg=f"{name}, T={t}")  # fmt: skip
        for st in (fused, eager):  # the overflowing row: one entry holds all the mass
            assert st.s0[j][3] == 1.0 and st.q[j][3] == 1.0
            # the native pass counts clamped entries at exp(-87): under 1e-28 here
            assert abs(st.s1[j][3]) < 1e-28 and abs(st.s2[j][3]) < 1e-28
