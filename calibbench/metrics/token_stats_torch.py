"""Per-position sufficient statistics of next-token logits, torch kernel (CPU or CUDA).

Same statistics and candidate rule as `calibbench.metrics.token_stats` (read its docstring),
computed on the logits' own device: only per-position results (O(c * nT) numbers and at most a
few B candidates per position) reach the host, never the (c, V) logits. On the CPU the candidate
search runs through numpy on a zero-copy view, which is several times faster there than
`torch.nonzero`.
"""

from __future__ import annotations

import numpy as np
import torch

from calibbench.metrics.token_stats import (
    CANDIDATE_MARGIN,
    X_FLOOR,
    StatsKernel,
    nonfinite_logits_error,
)


class TorchStatsKernel(StatsKernel):
    """`StatsKernel` for torch logits, computed on their device (float16/bfloat16 upcast). On the
    CPU with `fused` (default) the moments of float32 (and upcast) logits come from
    `calibbench.metrics.token_stats_native` where that library can be had, else from the eager
    passes below."""

    @torch.inference_mode()
    def _dense(
        self, z: torch.Tensor, targets: torch.Tensor, offset: int, out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        z = z.to(dtype)
        m = z.amax(dim=1)
        x = z - m[:, None]
        moments = self._moments(z, m, x)
        if not bool(torch.isfinite(moments).all()):
            bad = ~torch.isfinite(z).all(dim=1)
            if bool(bad.any()):
                raise nonfinite_logits_error(offset + int(bad.nonzero()[0, 0]))
            x.clamp_(min=X_FLOOR)
            moments = self._moments(x, torch.zeros_like(m), x)
        temps = torch.as_tensor(self.temperatures, dtype=torch.float64, device=z.device)
        theta = (temps[:, None] * torch.log(moments[0] / self.n_bins)).amin(dim=0).clamp(max=0.0)
        theta = (theta - CANDIDATE_MARGIN * (1.0 + theta.abs())).to(dtype)
        if x.device.type == "cpu":
            xn = x.numpy()
            flat = np.flatnonzero(xn >= theta.numpy()[:, None])
            cand_x = xn.ravel()[flat].astype(np.float64)
        else:
            flat_t = torch.nonzero((x >= theta[:, None]).view(-1), as_tuple=True)[0]
            cand_x = x.view(-1)[flat_t].double().cpu().numpy()
            flat = flat_t.cpu().numpy()
        out[...] = moments.cpu().numpy()
        x_target = x.gather(1, targets[:, None])[:, 0].double().cpu().numpy()
        return x_target, flat.astype(np.int64), cand_x

    def _moments(self, z: torch.Tensor, m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(4, nT, c) float64 on x's device: s0, s1, s2, q at each temperature of x = z - m."""
        if self._native is not None and x.device.type == "cpu" and z.dtype == torch.float32:
            return torch.from_numpy(self._native(np.ascontiguousarray(z.numpy()))[1])
        x2 = x * x
        out = torch.empty((4, len(self.betas), x.shape[0]), dtype=torch.float64, device=x.device)
        for j, beta in enumerate(self.betas.tolist()):
            e = torch.exp(x if beta == 1.0 else x * beta)
            out[0, j] = e.sum(dim=1)
            out[1, j] = torch.linalg.vecdot(e, x)
            out[2, j] = torch.linalg.vecdot(e, x2)
            out[3, j] = torch.linalg.vecdot(e, e)
        return out
