"""Token-level calibration over whole next-token distributions, streamed in O(bins) memory.

`TokenCalibration` accumulates, for every temperature of a grid in one pass over the logits:

- Full-ECE bins (Liu et al. 2024): every (position i, vocabulary entry k) is a prediction p_ik
  with outcome 1[y_i = k]; per confidence bin b, count_b (int64), mass_b = sum p_ik and
  hits_b = sum 1[y_i = k]. Full-ECE = (1/N) sum_b |hits_b - mass_b| in [0, 2], N = positions;
  the per-entry normalisation divides by N * V instead.
- top-1 bins (confidence max_k p_ik, outcome argmax == y) for top-label ECE and MCE,
- full-distribution Brier mean_i sum_k (p_ik - 1[y_i = k])^2, NLL -mean log p_iy (nats),
  argmax accuracy, sampled accuracy mean p_iy, mean entropy (nats),
- the first and second derivative of the mean NLL in beta = 1/T, mean(E_p[z] - z_y) and
  mean Var_p[z], from which a temperature can be fitted without revisiting the logits.

Bins follow `calibbench.metrics.binning` (b/B <= p < (b+1)/B, p == 1 in the last bin).
Probabilities are p = softmax(z / T). The state is a few arrays of shape (nT, B); `update` works
through the logits in chunks of bounded size, so memory does not grow with N. Accumulators built on
any split of the data and merged give the same result as one pass.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from calibbench.errors import InputError
from calibbench.metrics.binning import assign_bins, check_n_bins, width_edges
from calibbench.metrics.token_stats import ChunkStats, NumpyStatsKernel, StatsKernel

#: Default work-memory budget of one sub-chunk of logits on the CPU, in bytes: small enough for
#: the work buffers to stay in a core's L2 cache, which makes the passes several times faster.
CPU_CHUNK_BYTES = 2 * 2**20
#: The same for bfloat16 tensors on the CPU (torch kernel; its passes are multi-threaded and pay a
#: fixed cost per call, so larger sub-chunks are faster).
TORCH_CPU_CHUNK_BYTES = 8 * 2**20
#: Default work-memory budget of one chunk of logits on a GPU, in bytes.
CUDA_CHUNK_BYTES = 1024 * 2**20
#: Positions whose statistics are folded into the state at once (bounds host memory per fold).
FOLD_ROWS = 512

_COUNTS = ("full_count", "full_hits", "top1_count", "top1_correct")
_BIN_SUMS = ("full_mass", "top1_confidence")
_SUMS = ("nll", "brier", "p_target", "entropy", "nll_grad", "nll_hess")


@dataclass(frozen=True)
class TokenMetrics:
    """Token-level metrics per temperature; every (nT,) array is indexed like `temperatures`.

    Bin arrays are (nT, B): `full_*` for Full-ECE (count, probability mass, hits), `top1_*` for
    the top-label bins (count, summed confidence, number correct).
    """

    temperatures: np.ndarray
    n_positions: int
    vocab_size: int
    n_bins: int
    approximation: str | None
    full_ece: np.ndarray
    full_ece_per_entry: np.ndarray
    top1_ece: np.ndarray
    top1_mce: np.ndarray
    brier: np.ndarray
    nll: np.ndarray
    argmax_accuracy: np.ndarray
    sampled_accuracy: np.ndarray
    entropy: np.ndarray
    nll_grad: np.ndarray
    nll_hess: np.ndarray
    full_count: np.ndarray
    full_mass: np.ndarray
    full_hits: np.ndarray
    top1_count: np.ndarray
    top1_confidence: np.ndarray
    top1_correct: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per temperature with the scalar metrics."""
        names = (
            "full_ece", "full_ece_per_entry", "top1_ece", "top1_mce", "brier", "nll",
            "argmax_accuracy", "sampled_accuracy", "entropy", "nll_grad", "nll_hess",
        )  # fmt: skip
        frame = pd.DataFrame({n: getattr(self, n) for n in names})
        frame.insert(0, "temperature", self.temperatures)
        frame["n_positions"] = self.n_positions
        frame["approximation"] = self.approximation or ""
        return frame


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _numpy_floats() -> tuple[Any, ...]:
    import torch

    return (torch.float16, torch.float32, torch.float64)


def _check_temperatures(temperatures: Sequence[float]) -> np.ndarray:
    t = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise InputError(
            "temperatures: expected a non-empty list of positive finite numbers, "
            f"got {temperatures!r}"
        )
    return t


class TokenCalibration:
    """Streaming token-level calibration accumulator over next-token logits.

    Args:
        vocab_size: V, the size of the last axis of the logits.
        n_bins: B, equal-width confidence bins.
        temperatures: the grid T_1..T_nT; every statistic is kept for each.
        approximation: None for full next-token distributions; otherwise a label saying how the
            distributions were approximated (e.g. "top-20 + unseen-mass bucket" for API
            log-probs). It travels with the state and the metrics so reports can say so.
        chunk_bytes: work-memory budget of the dense passes (default 2 MiB on the CPU,
            1 GiB on CUDA); it changes speed, never results.

    `update(logits, targets)` takes logits (..., V) as a numpy array or a torch tensor and integer
    targets (...). CUDA tensors are computed on their device; CPU tensors go through the numpy
    kernel on a zero-copy view (bfloat16 through torch, upcast per chunk); float16 is upcast to
    float32 per chunk, float64 is computed in float64.
    Raises `InputError` for NaN/infinite logits, targets outside [0, V), mismatched shapes or an
    empty update.
    """

    def __init__(
        self,
        vocab_size: int,
        n_bins: int = 15,
        temperatures: Sequence[float] = (1.0,),
        chunk_bytes: int | None = None,
        approximation: str | None = None,
    ):
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
            raise InputError(f"vocab_size: expected a positive integer, got {vocab_size!r}")
        if vocab_size < 1:
            raise InputError(f"vocab_size: expected a positive integer, got {vocab_size!r}")
        self.vocab_size = int(vocab_size)
        self.n_bins = check_n_bins(n_bins)
        self.temperatures = _check_temperatures(temperatures)
        self.chunk_bytes = chunk_bytes
        self.approximation = approximation
        self._edges = width_edges(self.n_bins)
        self._kernels: dict[tuple[str, int], StatsKernel] = {}
        shape = (len(self.temperatures), self.n_bins)
        self._state: dict[str, np.ndarray] = {
            "n_positions": np.zeros((), np.int64),
            "argmax_correct": np.zeros((), np.int64),
            **{k: np.zeros(shape, np.int64) for k in _COUNTS},
            **{k: np.zeros(shape, np.float64) for k in _BIN_SUMS},
            **{k: np.zeros(len(self.temperatures), np.float64) for k in _SUMS},
        }

    @property
    def n_positions(self) -> int:
        """Number of positions accumulated so far."""
        return int(self._state["n_positions"])

    def _rows_per_chunk(self, itemsize: int, default_bytes: int) -> int:
        """Positions per sub-chunk so that its work buffers fit the memory budget."""
        budget = default_bytes if self.chunk_bytes is None else self.chunk_bytes
        per_row = self.vocab_size * (3 * max(itemsize, 4) + 1)
        return max(1, budget // per_row)

    def _run(
        self, kernel: StatsKernel, z: Any, y: Any, y_host: np.ndarray, scored: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Feed positions to `kernel` in blocks of FOLD_ROWS and fold each block's statistics;
        with `scored`, return log p(target) at T = 1 and argmax == target per position (a
        by-product of the statistics; T = 1 must be on the grid), else None and nothing of the
        positions' size is kept."""
        offset = self.n_positions
        unit = int(np.flatnonzero(self.temperatures == 1.0)[0]) if scored else None
        logps, greedy = [], []
        for start in range(0, z.shape[0], FOLD_ROWS):
            stop = min(start + FOLD_ROWS, z.shape[0])
            stats = kernel(z[start:stop], y[start:stop], offset + start)
            self._fold(stats, y_host[start:stop])
            if scored:
                logps.append(stats.x_target - np.log(stats.s0[unit]))
                greedy.append(stats.argmax == y_host[start:stop])
        return (np.concatenate(logps), np.concatenate(greedy)) if scored else None

    def update(self, logits: Any, targets: Any) -> None:
        """Accumulate positions with logits (..., V) and target token ids (...)."""
        self._dispatch(logits, targets, scored=False)

    def update_scored(self, logits: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        """`update`, returning per position (flattened) log p(target) at T = 1 in nats (float64)
        and whether the target is the first maximal logit; computed from the same statistics,
        so scoring and accumulating cost one pass. Needs 1.0 among the temperatures."""
        if not np.any(self.temperatures == 1.0):
            raise InputError("update_scored: the temperature grid must contain 1.0")
        scored = self._dispatch(logits, targets, scored=True)
        assert scored is not None
        return scored

    def _dispatch(
        self, logits: Any, targets: Any, scored: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if not _is_torch(logits):
            return self._update_numpy(logits, targets, scored)
        z = logits.detach()
        if z.device.type == "cpu" and z.dtype in _numpy_floats():
            return self._update_numpy(z.numpy(), np.asarray(targets), scored)
        return self._update_torch(z, targets, scored)

    def _check_shapes(self, logits_shape: tuple[int, ...], targets_shape: tuple[int, ...]) -> None:
        if len(logits_shape) < 2 or logits_shape[-1] != self.vocab_size:
            raise InputError(
                f"logits: expected shape (..., {self.vocab_size}) (positions x vocabulary), "
                f"got {tuple(logits_shape)}"
            )
        if tuple(targets_shape) != tuple(logits_shape[:-1]):
            raise InputError(
                f"targets: shape {tuple(targets_shape)} does not match the logits' leading "
                f"shape {tuple(logits_shape[:-1])}"
            )
        if int(np.prod(logits_shape[:-1])) == 0:
            raise InputError("logits: empty update (no positions)")

    def _check_targets(self, lo: int, hi: int) -> None:
        if lo < 0 or hi >= self.vocab_size:
            bad = lo if lo < 0 else hi
            raise InputError(
                f"targets: token id {bad} outside the vocabulary [0, {self.vocab_size})"
            )

    def _update_numpy(
        self, logits: Any, targets: Any, scored: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        z = np.asarray(logits)
        y = np.asarray(targets)
        self._check_shapes(z.shape, y.shape)
        if not np.issubdtype(z.dtype, np.floating):
            raise InputError(f"logits: expected a floating-point array, got dtype {z.dtype}")
        if not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"targets: expected integer token ids, got dtype {y.dtype}")
        z = z.reshape(-1, self.vocab_size)
        y = y.reshape(-1).astype(np.int64)
        self._check_targets(int(y.min()), int(y.max()))
        rows = self._rows_per_chunk(z.dtype.itemsize, CPU_CHUNK_BYTES)
        key = ("numpy", rows)
        if key not in self._kernels:
            self._kernels[key] = NumpyStatsKernel(
                self.vocab_size, self.temperatures, self.n_bins, rows
            )
        return self._run(self._kernels[key], z, y, y, scored)

    def _update_torch(
        self, z: Any, targets: Any, scored: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        import torch

        from calibbench.metrics.token_stats_torch import TorchStatsKernel

        self._check_shapes(tuple(z.shape), tuple(np.shape(targets)))
        if not z.is_floating_point():
            raise InputError(f"logits: expected a floating-point tensor, got dtype {z.dtype}")
        y = torch.as_tensor(targets, device=z.device)
        if y.is_floating_point() or y.dtype == torch.bool:
            raise InputError(f"targets: expected integer token ids, got dtype {y.dtype}")
        z = z.reshape(-1, self.vocab_size)
        y = y.reshape(-1).long()
        self._check_targets(int(y.min()), int(y.max()))
        default = CUDA_CHUNK_BYTES if z.device.type == "cuda" else TORCH_CPU_CHUNK_BYTES
        rows = self._rows_per_chunk(z.element_size(), default)
        key = ("torch", rows)
        if key not in self._kernels:
            self._kernels[key] = TorchStatsKernel(
                self.vocab_size, self.temperatures, self.n_bins, rows
            )
        return self._run(self._kernels[key], z, y, y.cpu().numpy(), scored)

    def _fold(self, st: ChunkStats, targets: np.ndarray) -> None:
        """Add one chunk's statistics to the state (all float64 / int64 on the host)."""
        s = self._state
        n_t, n_b = len(self.temperatures), self.n_bins
        c = targets.shape[0]
        beta = (1.0 / self.temperatures)[:, None]
        s0 = st.s0
        log_s0 = np.log(s0)
        mean_x = st.s1 / s0
        p_target = np.exp(beta * st.x_target) / s0
        correct = st.argmax == targets

        s["n_positions"] += c
        s["argmax_correct"] += int(correct.sum())
        s["nll"] += (log_s0 - beta * st.x_target).sum(axis=1)
        s["brier"] += (st.q / s0**2 - 2.0 * p_target + 1.0).sum(axis=1)
        s["p_target"] += p_target.sum(axis=1)
        s["entropy"] += (log_s0 - beta * mean_x).sum(axis=1)
        s["nll_grad"] += (mean_x - st.x_target).sum(axis=1)
        s["nll_hess"] += np.maximum(st.s2 / s0 - mean_x**2, 0.0).sum(axis=1)

        offsets = (np.arange(n_t) * n_b)[:, None]
        conf = 1.0 / s0
        idx = (offsets + assign_bins(conf, self._edges)).ravel()
        size = n_t * n_b
        s["top1_count"] += np.bincount(idx, minlength=size).reshape(n_t, n_b)
        s["top1_confidence"] += np.bincount(idx, weights=conf.ravel(), minlength=size).reshape(
            n_t, n_b
        )
        hit_top = np.broadcast_to(correct, conf.shape).ravel()
        s["top1_correct"] += np.bincount(idx[hit_top], minlength=size).reshape(n_t, n_b)

        p = np.exp(beta * st.cand_x) / s0[:, st.cand_row]
        bins = assign_bins(p, self._edges)
        upper = bins >= 1
        idx = (offsets + bins)[upper]
        hit = np.broadcast_to(st.cand_col == targets[st.cand_row], p.shape)[upper]
        count = np.bincount(idx, minlength=size).reshape(n_t, n_b)
        mass = np.bincount(idx, weights=p[upper], minlength=size).reshape(n_t, n_b)
        hits = np.bincount(idx[hit], minlength=size).reshape(n_t, n_b)
        count[:, 0] = c * self.vocab_size - count.sum(axis=1)
        mass[:, 0] = c - mass.sum(axis=1)
        hits[:, 0] = c - hits.sum(axis=1)
        s["full_count"] += count
        s["full_mass"] += mass
        s["full_hits"] += hits

    def merge(self, other: TokenCalibration) -> TokenCalibration:
        """Add `other`'s state into this accumulator (in place) and return self."""
        if not isinstance(other, TokenCalibration):
            raise InputError(f"merge: expected a TokenCalibration, got {type(other).__name__}")
        mine = (self.vocab_size, self.n_bins, self.temperatures.tolist(), self.approximation)
        theirs = (other.vocab_size, other.n_bins, other.temperatures.tolist(), other.approximation)
        if mine != theirs:
            raise InputError(
                "merge: accumulators differ in (vocab_size, n_bins, temperatures, approximation): "
                f"{mine} vs {theirs}"
            )
        for key, value in other._state.items():
            self._state[key] = self._state[key] + value
        return self

    def compute(self) -> TokenMetrics:
        """Metrics at every temperature; raises `InputError` if nothing was accumulated."""
        s = self._state
        n = self.n_positions
        if n == 0:
            raise InputError("TokenCalibration.compute: no positions accumulated; call update")
        gap = np.abs(s["full_hits"] - s["full_mass"]).sum(axis=1)
        top_gap = np.abs(s["top1_correct"] - s["top1_confidence"])
        with np.errstate(invalid="ignore", divide="ignore"):
            per_bin = np.where(s["top1_count"] > 0, top_gap / s["top1_count"], -np.inf)
        return TokenMetrics(
            temperatures=self.temperatures.copy(),
            n_positions=n,
            vocab_size=self.vocab_size,
            n_bins=self.n_bins,
            approximation=self.approximation,
            full_ece=gap / n,
            full_ece_per_entry=gap / (n * self.vocab_size),
            top1_ece=top_gap.sum(axis=1) / n,
            top1_mce=per_bin.max(axis=1),
            brier=s["brier"] / n,
            nll=s["nll"] / n,
            argmax_accuracy=np.full(len(self.temperatures), int(s["argmax_correct"]) / n),
            sampled_accuracy=s["p_target"] / n,
            entropy=s["entropy"] / n,
            nll_grad=s["nll_grad"] / n,
            nll_hess=s["nll_hess"] / n,
            **{k: s[k].copy() for k in _COUNTS + _BIN_SUMS},
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        """The configuration and state as numpy arrays (for `np.savez`); see `from_state_dict`."""
        config = {
            "vocab_size": np.asarray(self.vocab_size, np.int64),
            "n_bins": np.asarray(self.n_bins, np.int64),
            "temperatures": self.temperatures.copy(),
            "approximation": np.asarray(self.approximation or ""),
        }
        return config | {k: v.copy() for k, v in self._state.items()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TokenCalibration:
        """Rebuild an accumulator from `state_dict()` output (e.g. a loaded `.npz`)."""
        try:
            acc = cls(
                int(state["vocab_size"]),
                int(state["n_bins"]),
                np.asarray(state["temperatures"]),
                approximation=str(state.get("approximation", "")) or None,
            )
            for key, value in acc._state.items():
                loaded = np.asarray(state[key], dtype=value.dtype)
                if loaded.shape != value.shape:
                    raise InputError(
                        f"state: '{key}' has shape {loaded.shape}, expected {value.shape}"
                    )
                acc._state[key] = loaded.copy()
        except KeyError as exc:
            raise InputError(
                f"state: missing key {exc.args[0]!r}; not a TokenCalibration state"
            ) from None
        return acc


def full_ece(logits: Any, targets: Any, n_bins: int = 15, temperature: float = 1.0) -> float:
    """Full-ECE of next-token logits (N, V) (numpy or torch) against target ids (N,).

    Per-position normalisation, range [0, 2]; see `TokenCalibration` for the definition.
    """
    shape = tuple(logits.shape) if hasattr(logits, "shape") else np.shape(logits)
    if len(shape) < 2:
        raise InputError(f"logits: expected shape (N, V), got {shape}")
    acc = TokenCalibration(shape[-1], n_bins=n_bins, temperatures=(temperature,))
    acc.update(logits, targets)
    return float(acc.compute().full_ece[0])
