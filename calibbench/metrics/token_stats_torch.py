"""Per-position sufficient statistics of next-token logits, torch kernel (CPU or CUDA).

Same statistics and candidate rule as `calibbench.metrics.token_stats` (read its docstring),
computed on the logits' own device: only the small per-position results (O(c * nT) numbers and at
most a few B candidates per position) are copied to the host, never the (c, V) logits.
"""

from __future__ import annotations

import numpy as np
import torch

from calibbench.metrics.token_stats import (
    CANDIDATE_MARGIN,
    X_FLOOR,
    ChunkStats,
    nonfinite_logits_error,
)


class TorchStatsKernel:
    """Computes `ChunkStats` for torch logits on their device."""

    def __init__(self, temperatures: np.ndarray, n_bins: int):
        self.temperatures = temperatures
        self.betas = (1.0 / temperatures).tolist()
        self.n_bins = n_bins

    @torch.inference_mode()
    def __call__(self, z: torch.Tensor, targets: torch.Tensor, offset: int) -> ChunkStats:
        """Statistics of logits `z` (c, V) with targets (c,) on the same device."""
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        z = z.to(dtype)
        m, argmax = z.max(dim=1)
        x = z - m[:, None]
        moments = self._moments(x)
        if not bool(torch.isfinite(m).all() and torch.isfinite(moments).all()):
            bad = ~torch.isfinite(z).all(dim=1)
            if bool(bad.any()):
                raise nonfinite_logits_error(offset + int(bad.nonzero()[0, 0]))
            x.clamp_(min=X_FLOOR)
            moments = self._moments(x)
        s0 = moments[0]
        temps = torch.as_tensor(self.temperatures, dtype=torch.float64, device=z.device)
        theta = (temps[:, None] * torch.log(s0 / self.n_bins)).amin(dim=0)
        theta = theta - CANDIDATE_MARGIN * (1.0 + theta.abs())
        cand_row, cand_col = torch.nonzero(x >= theta.to(dtype)[:, None], as_tuple=True)
        x_target = x.gather(1, targets[:, None])[:, 0]
        host = [t.cpu().numpy() for t in (argmax, x_target, moments, cand_row, cand_col)]
        cand_x = x[cand_row, cand_col].double().cpu().numpy()
        argmax_h, x_target_h, moments_h, cand_row_h, cand_col_h = host
        return ChunkStats(
            argmax=argmax_h.astype(np.int64),
            x_target=x_target_h.astype(np.float64),
            s0=moments_h[0],
            s1=moments_h[1],
            s2=moments_h[2],
            q=moments_h[3],
            cand_row=cand_row_h.astype(np.int64),
            cand_col=cand_col_h.astype(np.int64),
            cand_x=cand_x,
        )

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        """(4, nT, c) float64 on x's device: s0, s1, s2, q at each temperature."""
        x2 = x * x
        out = torch.empty((4, len(self.betas), x.shape[0]), dtype=torch.float64, device=x.device)
        for j, beta in enumerate(self.betas):
            e = torch.exp(x if beta == 1.0 else x * beta)
            out[0, j] = e.sum(dim=1)
            out[1, j] = torch.linalg.vecdot(e, x)
            out[2, j] = torch.linalg.vecdot(e, x2)
            out[3, j] = torch.linalg.vecdot(e, e)
        return out
