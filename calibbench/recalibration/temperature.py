"""Temperature scaling: p = softmax(z / T), one T for all items, fitted on the calibration split.

It changes calibration and sampled accuracy, never the argmax. Two levels:

- answer level (multiple choice): z_i are an item's option log-likelihoods, the target its gold
  option; `fit(option_logprobs, gold)` minimises the mean NLL of the gold option (convex in
  beta = 1/T; Newton's method with bisection safeguard) or the top-label ECE (a log-spaced grid
  search: ECE is piecewise constant in T).
- token level: z are next-token logits over the whole vocabulary. The N x V logits are never
  held: `fit_token_stats(metrics)` uses one streamed `TokenCalibration` pass at a grid of
  temperatures, which keeps the mean NLL and its first and second derivatives in beta,
  g = mean(E_p[z] - z_y) and h = mean Var_p[z]. NLL is convex in beta, so the minimum lies where
  g changes sign between two grid points; there g is interpolated by the cubic Hermite polynomial
  through (g, h) at both ends and its root is the fitted beta. `refine(metrics)` optionally takes
  a second pass at the fitted T only to confirm: one Newton step with the exact g and h there.
  The ECE objectives pick the grid temperature with the lowest top-1 ECE or Full-ECE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import logsumexp, softmax

from calibbench.errors import InputError
from calibbench.metrics.binned import ece
from calibbench.metrics.token import TokenMetrics
from calibbench.recalibration.base import Recalibrator

OBJECTIVES = ("nll", "ece", "full_ece")
#: Temperatures searched, as bounds on T.
T_MIN, T_MAX = 0.02, 50.0


def _options(option_logprobs: Sequence[ArrayLike]) -> list[np.ndarray]:
    rows = [np.asarray(r, dtype=np.float64) for r in option_logprobs]
    if not rows:
        raise InputError("option_logprobs: no items")
    for i, r in enumerate(rows):
        if r.ndim != 1 or r.size < 2 or not np.all(np.isfinite(r)):
            raise InputError(
                f"option_logprobs[{i}]: expected two or more finite log-likelihoods, got {r}"
            )
    return rows


def _padded(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, K_max) logits padded with -inf, and the mask of real options."""
    k = max(len(r) for r in rows)
    z = np.full((len(rows), k), -np.inf)
    for i, r in enumerate(rows):
        z[i, : len(r)] = r
    return z, np.isfinite(z)


def _nll_grad_hess(z: np.ndarray, mask: np.ndarray, gold: np.ndarray, beta: float):
    """Mean NLL of gold under softmax(beta z) and its first two derivatives in beta."""
    zb = np.where(mask, z * beta, -np.inf)
    lse = logsumexp(zb, axis=1)
    p = np.exp(zb - lse[:, None])
    zz = np.where(mask, z, 0.0)
    mean = (p * zz).sum(1)
    var = (p * zz**2).sum(1) - mean**2
    z_gold = zz[np.arange(len(gold)), gold]
    return float(np.mean(lse - beta * z_gold)), float(np.mean(mean - z_gold)), float(np.mean(var))


class TemperatureScaler(Recalibrator):
    """One temperature T; see the module docstring. objective: "nll" (default), "ece" (top-1) or
    "full_ece" (token level only)."""

    name = "temperature"
    min_items: ClassVar[int] = 2
    learned: ClassVar[tuple[str, ...]] = ("temperature", "level", "objective_value")

    def __init__(self, objective: str = "nll"):
        if objective not in OBJECTIVES:
            raise InputError(
                f"temperature: objective must be one of {OBJECTIVES}, got {objective!r}"
            )
        self.objective = objective

    def _params(self) -> dict[str, Any]:
        return {"objective": self.objective}

    # answer level ---------------------------------------------------------------------------

    def fit(self, option_logprobs: Sequence[ArrayLike], gold: ArrayLike) -> TemperatureScaler:
        """Fit on items' option log-likelihoods (each (K_i,), K_i >= 2) and gold indices (N,)."""
        rows = _options(option_logprobs)
        y = np.asarray(gold)
        if y.shape != (len(rows),) or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"gold: expected {len(rows)} integer option indices, got {gold!r}")
        if np.any(y < 0) or np.any(y >= [len(r) for r in rows]):
            raise InputError("gold: an index is outside its item's options")
        if len(rows) < self.min_items:
            raise InputError(f"temperature.fit: needs at least {self.min_items} items")
        if self.objective == "full_ece":
            raise InputError("temperature: 'full_ece' applies to token-level fits only")
        z, mask = _padded(rows)
        if self.objective == "ece":
            grid = np.geomspace(T_MIN, T_MAX, 400)
            values = [self._ece(z, mask, y, t) for t in grid]
            best = int(np.argmin(values))
            self.temperature_, self.objective_value_ = float(grid[best]), float(values[best])
        else:
            beta = self._newton(z, mask, y)
            self.temperature_ = 1.0 / beta
            self.objective_value_ = _nll_grad_hess(z, mask, y, beta)[0]
        self.level_ = "answer"
        return self

    @staticmethod
    def _ece(z: np.ndarray, mask: np.ndarray, y: np.ndarray, t: float) -> float:
        p = softmax(np.where(mask, z / t, -np.inf), axis=1)
        return float(ece(p.max(1), p.argmax(1) == y))

    @staticmethod
    def _newton(z: np.ndarray, mask: np.ndarray, y: np.ndarray) -> float:
        """argmin over beta in [1/T_MAX, 1/T_MIN] of the convex NLL: safeguarded Newton."""
        lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
        if _nll_grad_hess(z, mask, y, lo)[1] >= 0:
            return lo
        if _nll_grad_hess(z, mask, y, hi)[1] <= 0:
            return hi
        beta = 1.0
        for _ in range(100):
            _, g, h = _nll_grad_hess(z, mask, y, beta)
            if g > 0:
                hi = beta
            else:
                lo = beta
            step = beta - g / h if h > 0 else np.nan
            beta = step if lo < step < hi else 0.5 * (lo + hi)
            if hi - lo < 1e-12 * beta or abs(g) < 1e-12:
                break
        return float(beta)

    def transform(self, option_logprobs: Sequence[ArrayLike]) -> list[np.ndarray]:
        """Per item, the option probabilities softmax(z / T)."""
        self._check_fitted()
        return [softmax(r / self.temperature_) for r in _options(option_logprobs)]

    def confidence(self, option_logprobs: Sequence[ArrayLike]) -> np.ndarray:
        """Per item, the calibrated probability of its top option (the argmax is unchanged)."""
        return np.array([p.max() for p in self.transform(option_logprobs)])

    # token level -----------------------------------------------------------------------------

    def fit_token_stats(self, metrics: TokenMetrics) -> TemperatureScaler:
        """Fit from one streamed pass: `TokenCalibration(...).compute()` at a temperature grid
        (at least two temperatures; for "nll" the minimum must lie inside the grid)."""
        t = metrics.temperatures
        if len(t) < 2:
            raise InputError("fit_token_stats: the accumulator needs at least two temperatures")
        self.level_ = "token"
        if self.objective != "nll":
            values = metrics.top1_ece if self.objective == "ece" else metrics.full_ece
            best = int(np.argmin(values))
            self.temperature_, self.objective_value_ = float(t[best]), float(values[best])
            return self
        order = np.argsort(1.0 / t)
        beta, nll, g, h = (
            (1.0 / t)[order],
            metrics.nll[order],
            metrics.nll_grad[order],
            metrics.nll_hess[order],
        )
        crossing = np.flatnonzero((g[:-1] < 0) & (g[1:] >= 0))
        if crossing.size == 0:
            side = "above" if g[-1] < 0 else "below"
            raise InputError(
                f"fit_token_stats: the NLL keeps falling towards the grid's end (T {side} "
                f"{t.min() if side == 'below' else t.max():g}); extend the temperature grid"
            )
        j = int(crossing[0])
        b0, b1 = beta[j], beta[j + 1]
        d = b1 - b0

        def hermite(b: float) -> float:
            s = (b - b0) / d
            h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
            h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
            return h00 * g[j] + h10 * d * h[j] + h01 * g[j + 1] + h11 * d * h[j + 1]

        root = b1 if g[j + 1] == 0 else brentq(hermite, b0, b1, xtol=1e-14)
        self.temperature_ = float(1.0 / root)
        self.objective_value_ = float(min(nll[j], nll[j + 1]))
        return self

    def refine(self, metrics: TokenMetrics) -> TemperatureScaler:
        """Confirm a token-level fit with a second pass at T = temperature_ only: one Newton step
        beta -= g / h with the exact derivatives there."""
        self._check_fitted()
        if self.objective != "nll" or self.level_ != "token":
            raise InputError("refine: applies to token-level NLL fits")
        if len(metrics.temperatures) != 1 or not np.isclose(
            metrics.temperatures[0], self.temperature_, rtol=1e-12
        ):
            raise InputError(
                "refine: pass the metrics of one pass at exactly the fitted temperature"
            )
        beta = 1.0 / self.temperature_ - metrics.nll_grad[0] / metrics.nll_hess[0]
        self.temperature_ = float(1.0 / beta)
        self.objective_value_ = float(metrics.nll[0])
        return self
