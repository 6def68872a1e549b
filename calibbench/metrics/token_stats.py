"""Per-position sufficient statistics of next-token logits, numpy kernel.

For a chunk of c positions with logits z (c, V), max m_i = max_k z_ik and shifted logits
x_ik = z_ik - m_i <= 0, and for each inverse temperature beta_j = 1 / T_j with e = exp(beta_j x):

    s0 = sum_k e,   s1 = sum_k e x,   s2 = sum_k e x^2,   q = sum_k e^2        (each (nT, c))

so that p_ik = e_ik / s0, E_p[x] = s1 / s0, Var_p[x] = s2 / s0 - (s1 / s0)^2 and
sum_k p_ik^2 = q / s0^2. Every token-level metric follows from these and from the few entries
that can reach a confidence bin above the first: an entry with p_ik >= 1 / B satisfies
x_ik >= T_j log(s0_ij / B) for some j, and there are at most B such entries per position and
temperature. The kernel returns those candidates (with a safety margin) as a sparse list, so the
bins above bin 0 are filled exactly and bin 0 follows from the totals (probabilities sum to 1).

The threshold is never above 0, so every maximal entry (x == 0) is a candidate too and the
argmax (first maximal index) is read off the candidates rather than from another pass.

The dense work is a handful of vectorised passes over each sub-chunk (max, subtract, and per
temperature one exp and four row-wise dot products through BLAS) sized to stay in the CPU's L2
cache; nothing of size N x V is ever allocated. The per-position sums are the same whatever the
chunking (each row is reduced on its own), so merging accumulators of any split of the data
reproduces one pass. The numpy kernel spreads a chunk's sub-chunks over one thread per CPU this
process may use (numpy and BLAS release the GIL in these passes), as the runtimes do for their
forward passes; a row is reduced the same way in any thread, so the results do not depend on the
number of threads.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibbench.errors import InputError

#: Shifted logits below this are clamped when their square would overflow (exp(beta x) is 0 there
#: for any beta > 1e-15, so the statistics do not change).
X_FLOOR = -1e18

#: Relative safety margin on the candidate threshold: far above float32 rounding in s0, so no entry
#: that reaches p >= 1 / B is ever missed; the few extra candidates are binned exactly anyway.
CANDIDATE_MARGIN = 1e-4


@dataclass(frozen=True)
class ChunkStats:
    """Sufficient statistics of one chunk of c positions (all arrays on the host).

    argmax: (c,) int64, first index of the maximum logit.
    x_target: (c,) float64, z_iy - m_i.
    s0, s1, s2, q: (nT, c) float64, the moments defined in the module docstring.
    cand_row, cand_col: (k,) int64, entries that may fall in a bin above the first at some T.
    cand_x: (k,) float64, their shifted logits.
    """

    argmax: np.ndarray
    x_target: np.ndarray
    s0: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    q: np.ndarray
    cand_row: np.ndarray
    cand_col: np.ndarray
    cand_x: np.ndarray


def candidate_threshold(s0: np.ndarray, temperatures: np.ndarray, n_bins: int) -> np.ndarray:
    """Per-position lower bound on x for entries that can reach p >= 1 / n_bins, shape (c,).

    `s0` is (nT, c); the bound is min(0, min_j T_j log(s0_j / B)) less a margin far above
    rounding error (0 so that the maximal entries are always candidates).
    """
    theta = np.minimum((temperatures[:, None] * np.log(s0 / n_bins)).min(axis=0), 0.0)
    return theta - CANDIDATE_MARGIN * (1.0 + np.abs(theta))


def first_max_index(cand_row: np.ndarray, cand_col: np.ndarray, cand_x: np.ndarray, c: int):
    """Argmax (first maximal index) of each of c positions from its candidates, (c,) int64.

    Candidates come in row-major order and include every entry with x == 0 (see
    `candidate_threshold`), so the first candidate of a row with x == 0 is its argmax.
    """
    top = cand_x == 0.0
    rows, first = np.unique(cand_row[top], return_index=True)
    if len(rows) != c:
        raise AssertionError("every position must have a maximal candidate")
    return cand_col[top][first]


def nonfinite_logits_error(position: int) -> InputError:
    """The error for a position whose logits hold NaN or an infinity."""
    return InputError(
        f"logits: position {position} has NaN or infinite values; masked vocabulary entries must "
        "be finite (e.g. a large negative number), not -inf"
    )


def check_finite_rows(z: np.ndarray, offset: int) -> None:
    """Raise `InputError` naming the first position of `z` (c, V) with a NaN or infinite logit."""
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        raise nonfinite_logits_error(offset + int(np.argmax(bad)))


def cpu_threads() -> int:
    """Threads for the CPU passes: one per CPU this process may use (as the runtimes use)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The process-wide worker threads of the CPU kernel, started on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(cpu_threads(), thread_name_prefix="calibbench-stats")
        return _POOL


class StatsKernel:
    """Computes `ChunkStats` of a block of positions, `rows` positions (one sub-chunk) at a time,
    the sub-chunks spread over `threads` threads in contiguous runs.

    Subclasses implement `_dense` for one array library; this loop and everything after the
    dense passes is shared, so both libraries produce statistics the same way.
    """

    def __init__(
        self,
        vocab_size: int,
        temperatures: np.ndarray,
        n_bins: int,
        rows: int,
        threads: int = 1,
        fused: bool = True,
    ):
        from calibbench.metrics.token_stats_native import native_stats

        #: The native CPU statistics (`calibbench.metrics.token_stats_native`), or None.
        self._native = native_stats(temperatures, n_bins, CANDIDATE_MARGIN) if fused else None
        self.vocab_size = vocab_size
        self.temperatures = temperatures
        self.betas = 1.0 / temperatures
        self.n_bins = n_bins
        self.rows = rows
        self.threads = max(1, threads)

    def __call__(self, z: Any, targets: Any, offset: int) -> ChunkStats:
        """Statistics of logits `z` (c, V) with targets (c,); `offset` numbers the positions."""
        c = z.shape[0]
        moments = np.empty((4, len(self.betas), c))
        x_target = np.empty(c)
        starts = range(0, c, self.rows)
        runs = [list(r) for r in np.array_split(starts, min(self.threads, len(starts)))]

        def run(run_starts: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
            found = []
            for start in run_starts:
                stop = min(start + self.rows, c)
                xt, flat, cx = self._dense(
                    z[start:stop], targets[start:stop], offset + start, moments[:, :, start:stop]
                )
                x_target[start:stop] = xt
                found.append((flat + start * self.vocab_size, cx))
            return found

        if len(runs) == 1:
            found = run(runs[0])
        else:
            found = [f for part in _pool().map(run, runs) for f in part]
        cand_row, cand_col = np.divmod(np.concatenate([f for f, _ in found]), self.vocab_size)
        cand_x = np.concatenate([x for _, x in found])
        return ChunkStats(
            argmax=first_max_index(cand_row, cand_col, cand_x, c),
            x_target=x_target,
            s0=moments[0],
            s1=moments[1],
            s2=moments[2],
            q=moments[3],
            cand_row=cand_row,
            cand_col=cand_col,
            cand_x=cand_x,
        )

    def _dense(
        self, z: Any, targets: Any, offset: int, out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fill `out` (4, nT, c) with s0, s1, s2, q of a sub-chunk z (c, V).

        Returns, on the host: x at the targets (c,) float64, the flat indices (into c x V) of the
        candidates in row-major order (int64), and their x (float64).
        """
        raise NotImplementedError


class NumpyStatsKernel(StatsKernel):
    """`StatsKernel` for numpy logits.

    With `fused` (default), float32 logits go through `calibbench.metrics.token_stats_native`,
    which reads them in place with no work buffers, so a sub-chunk holds 3 * 4 + 1 times the
    `rows` that the memory budget gives the eager passes, and each sub-chunk's rows are spread
    over the CPUs. Float64 logits, and float32 where that library cannot be had, go through the
    eager passes below, in reused work buffers of `rows` x V per thread (default:
    `cpu_threads()` threads).
    """

    #: Work bytes per vocabulary entry of a sub-chunk row in the eager passes over float32 (three
    #: buffers and the mask), over those of the native pass (none but the logits).
    NATIVE_ROWS_FACTOR = 3 * 4 + 1

    def __init__(
        self,
        vocab_size: int,
        temperatures: np.ndarray,
        n_bins: int,
        rows: int,
        threads: int | None = None,
        fused: bool = True,
    ):
        threads = cpu_threads() if threads is None else threads
        super().__init__(vocab_size, temperatures, n_bins, rows, threads, fused)
        self._eager_rows = rows
        self._native_threads = self.threads
        if self._native is not None:
            # The native pass spreads each sub-chunk over the threads itself.
            self.threads = 1
            self.rows = rows * self.NATIVE_ROWS_FACTOR
        self._buffers: dict[tuple[np.dtype, int], tuple[np.ndarray, ...]] = {}

    def _work(self, dtype: np.dtype) -> tuple[np.ndarray, ...]:
        """The calling thread's work buffers (rows, V) of `dtype`: x, x^2 and e, plus a (V,)
        vector of ones."""
        key = (dtype, threading.get_ident())
        if key not in self._buffers:
            shape = (self._eager_rows, self.vocab_size)
            work = tuple(np.empty(shape, dtype) for _ in range(3))
            self._buffers[key] = (*work, np.ones(self.vocab_size, dtype))
        return self._buffers[key]

    def _dense(
        self, z: np.ndarray, targets: np.ndarray, offset: int, out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dtype = np.dtype(np.float64 if z.dtype == np.float64 else np.float32)
        if self._native is not None and dtype == np.float32:
            found = self._dense_native(z.astype(dtype, copy=False), targets, offset, out)
            if found is not None:
                return found
        m = z.max(axis=1)
        if not np.isfinite(m).all():
            check_finite_rows(z, offset)
        c = z.shape[0]
        found = []
        for start in range(0, c, self._eager_rows):
            stop = min(start + self._eager_rows, c)
            xt, flat, cx = self._dense_eager(
                z[start:stop], m[start:stop], targets[start:stop], offset + start,
                out[:, :, start:stop], dtype,
            )  # fmt: skip
            found.append((xt, flat + start * self.vocab_size, cx))
        return tuple(np.concatenate(part) for part in zip(*found, strict=True))

    def _dense_native(
        self, z: np.ndarray, targets: np.ndarray, offset: int, out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """`_dense` through the native statistics, the rows split over the threads; None for a
        sub-chunk the eager passes must take (finite logits with a non-finite moment)."""
        if z.strides[-1] != z.itemsize:
            z = np.ascontiguousarray(z)
        c = z.shape[0]
        bounds = np.linspace(0, c, min(self._native_threads, c) + 1).astype(int)
        parts = [z[a:b] for a, b in itertools.pairwise(bounds)]
        results = list(_pool().map(self._native, parts)) if len(parts) > 1 else [self._native(z)]
        m = np.concatenate([r[0] for r in results])
        out[...] = np.concatenate([r[1] for r in results], axis=2)
        if not np.isfinite(out).all():
            check_finite_rows(z, offset)
            return None
        if any(r[2] is None for r in results):  # more candidates than slots: find them here
            theta = candidate_threshold(out[0], self.temperatures, self.n_bins)
            # x >= theta, on z: m + theta rounds to at most m, so every maximal entry is found.
            flat = np.flatnonzero(z >= (m + theta).astype(z.dtype)[:, None])
        else:
            flat = np.concatenate(
                [r[2] + a * self.vocab_size for a, r in zip(bounds[:-1], results, strict=True)]
            )
        rows, cols = np.divmod(flat, self.vocab_size)
        with np.errstate(over="ignore"):  # x as the eager passes have it, clamped at X_FLOOR
            cand_x = np.maximum(z[rows, cols] - m[rows], X_FLOOR).astype(np.float64)
            x_target = np.maximum(z[np.arange(c), targets] - m, X_FLOOR).astype(np.float64)
        return x_target, flat, cand_x

    def _dense_eager(
        self,
        z: np.ndarray,
        m: np.ndarray,
        targets: np.ndarray,
        offset: int,
        out: np.ndarray,
        dtype: np.dtype,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_dense` through the eager passes, for at most `_eager_rows` rows."""
        c = z.shape[0]
        bx, bx2, be, ones = self._work(dtype)
        bx, bx2, be = bx[:c], bx2[:c], be[:c]
        x = np.subtract(z, m[:, None], out=bx, dtype=dtype, casting="unsafe")
        with np.errstate(over="ignore", invalid="ignore"):
            self._moments(x, bx2, be, ones, out)
        if not np.isfinite(out).all():
            check_finite_rows(z, offset)
            np.maximum(x, X_FLOOR, out=x)
            self._moments(x, bx2, be, ones, out)
        theta = candidate_threshold(out[0], self.temperatures, self.n_bins)
        flat = np.flatnonzero(x >= theta.astype(dtype)[:, None])
        x_target = x[np.arange(c), targets].astype(np.float64)
        return x_target, flat, x.ravel()[flat].astype(np.float64)

    def _moments(
        self, x: np.ndarray, x2: np.ndarray, e: np.ndarray, ones: np.ndarray, out: np.ndarray
    ) -> None:
        """Write s0, s1, s2, q at each temperature into `out` (4, nT, c), eager passes."""
        np.multiply(x, x, out=x2)
        for j, beta in enumerate(self.betas):
            if beta == 1.0:
                np.exp(x, out=e)
            else:
                np.multiply(x, beta.astype(x.dtype), out=e)
                np.exp(e, out=e)
            out[0, j] = _rowdot(e, ones)
            out[1, j] = _rowdot(e, x)
            out[2, j] = _rowdot(e, x2)
            out[3, j] = _rowdot(e, e)


def target_logprobs(
    logits: np.ndarray, targets: np.ndarray, chunk_bytes: int = 2 * 2**20
) -> tuple[np.ndarray, np.ndarray]:
    """log p(target) under softmax(logits) per row, and whether the target is the row's argmax
    (first maximal index), for logits (n, V) float32/64 and targets (n,); float64 and bool.

    Computed as `TokenCalibration` computes it at T = 1 (x = z - max in the logits' precision,
    log p = x_target - log sum exp x, the sum in float64), so the two agree to about 1e-9
    relative (the native kernel's exp and summation order differ in the last bits; the eager
    passes sum in float32, about 1e-6); streams through one L2-sized buffer, with no (n, V)
    temporary.
    """
    n, v = logits.shape
    dtype = np.float64 if logits.dtype == np.float64 else np.float32
    rows = max(1, chunk_bytes // (4 * v))
    buf = np.empty((min(rows, n), v), dtype)
    logp = np.empty(n)
    greedy = np.empty(n, dtype=bool)
    for start in range(0, n, rows):
        z = logits[start : start + rows]
        t = targets[start : start + rows]
        c = len(z)
        m = z.max(axis=1)
        x = np.subtract(z, m[:, None], out=buf[:c], dtype=dtype, casting="unsafe")
        x_target = x[np.arange(c), t].astype(np.float64)
        top = x_target == 0.0
        np.exp(x, out=x)
        logp[start : start + c] = x_target - np.log(x.sum(axis=1, dtype=np.float64))
        for i in np.flatnonzero(top):  # ties: the argmax is the first maximal index
            top[i] = not (z[i, : t[i]] == m[i]).any()
        greedy[start : start + c] = top
    return logp, greedy


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (c, V) arrays (b may be one (V,) vector), shape (c,).

    Batched BLAS: each row is reduced by its own call, so a row's sum does not depend on the
    other rows of the chunk (a plain matrix-vector product groups rows and does).
    """
    return np.matmul(a[:, None, :], b[..., :, None])[:, 0, 0]
