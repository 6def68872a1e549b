"""Next-token temperature over a whole vocabulary, fitted from one streamed pass.

z are next-token logits; the N x V logits are never held: `TokenTemperatureScaler.fit(metrics)`
reads one `TokenCalibration` pass at a grid of temperatures, which keeps the mean NLL and its
first and second derivatives in beta = 1/T, g = mean(E_p[z] - z_y) and h = mean Var_p[z]. NLL is
convex in beta, so the minimum lies where g changes sign between two grid points; there g is
interpolated by the cubic Hermite polynomial through (g, h) at both ends and its root is the
fitted beta. `refine(metrics)` optionally takes a second pass at the fitted T only to confirm:
one Newton step with the exact g and h there. The ECE objectives pick the grid temperature with
the lowest top-1 ECE or Full-ECE. It calibrates token distributions, not answers, so it is not
one of the protocol's per-item methods.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.optimize import brentq

from calibbench.errors import InputError
from calibbench.metrics.token import TokenMetrics
from calibbench.recalibration.methods.temperature import ObjectiveTemperature

OBJECTIVES = ("nll", "ece", "full_ece")


class TokenTemperatureScaler(ObjectiveTemperature):
    """One next-token temperature T from a streamed pass; see the module docstring. objective:
    "nll" (default), "ece" (top-1) or "full_ece". Learned: temperature_, objective_value_."""

    name = "token_temperature"
    per_item: ClassVar[bool] = False
    objectives: ClassVar[tuple[str, ...]] = OBJECTIVES

    @classmethod
    def inputs(cls, frame: Any, signal: str, correct: str) -> tuple[Any, np.ndarray]:
        raise InputError("token_temperature: fitted from accumulator statistics, not items")

    def predict(self, X: Any) -> np.ndarray:
        raise InputError(
            "token_temperature: divide next-token logits by temperature_; there are no items"
        )

    def fit(self, X: TokenMetrics, y: Any = None) -> TokenTemperatureScaler:
        """Fit from one streamed pass X: `TokenCalibration(...).compute()` at a temperature grid
        (at least two temperatures; for "nll" the minimum must lie inside the grid)."""
        self._check_objective()
        metrics = X
        t = metrics.temperatures
        if len(t) < 2:
            raise InputError("token_temperature.fit: the accumulator needs 2 or more temperatures")
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
                f"token_temperature.fit: the NLL keeps falling towards the grid's end (T {side} "
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

    def refine(self, metrics: TokenMetrics) -> TokenTemperatureScaler:
        """Confirm a token-level fit with a second pass at T = temperature_ only: one Newton step
        beta -= g / h with the exact derivatives there."""
        self._check_fitted()
        if self.objective != "nll":
            raise InputError("refine: applies to NLL fits")
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
