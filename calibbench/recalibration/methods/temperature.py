"""Temperature scaling of multiple-choice answers: p = softmax(z / T) over an item's option
log-likelihoods z, one T for all items, fitted on the calibration split.

It changes calibration and sampled accuracy, never the argmax. `fit(option_logprobs, gold)`
minimises the mean NLL of the gold option (convex in beta = 1/T; Newton's method with bisection
safeguard) or the top-label ECE (a log-spaced grid search: ECE is piecewise constant in T).
It applies to the primary confidence of tasks whose graded rows carry `option_logprobs` and
`gold`. Next-token temperatures over a whole vocabulary are fitted from one streamed pass by
`calibbench.recalibration.token_temperature`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import logsumexp, softmax

from calibbench.errors import InputError
from calibbench.metrics.binned import ece
from calibbench.recalibration.base import NotApplicable, Recalibrator

OBJECTIVES = ("nll", "ece")
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


class ObjectiveTemperature(Recalibrator):
    """What every one-temperature fit shares: the `objective` hyper-parameter (one of the
    subclass's `objectives`, checked by `_check_objective` in `fit`) and the learned
    temperature_ and objective_value_. Not a method itself (it has no `name`)."""

    objectives: ClassVar[tuple[str, ...]]
    learned: ClassVar[tuple[str, ...]] = ("temperature", "objective_value")

    def __init__(self, objective: str = "nll"):
        self.objective = objective

    def _params(self) -> dict[str, Any]:
        return {"objective": self.objective}

    def _check_objective(self) -> None:
        if self.objective not in self.objectives:
            raise InputError(
                f"{self.name}: objective must be one of {self.objectives}, got {self.objective!r}"
            )


class TemperatureScaler(ObjectiveTemperature):
    """One temperature T over option log-likelihoods; see the module docstring. objective:
    "nll" (default) or "ece" (top-label). Learned: temperature_, objective_value_."""

    name = "temperature"
    order: ClassVar[int] = 1
    min_items: ClassVar[int] = 2
    objectives: ClassVar[tuple[str, ...]] = OBJECTIVES

    @classmethod
    def inputs(cls, frame: pd.DataFrame, signal: str, correct: str) -> tuple[Any, np.ndarray]:
        """The options' log-likelihoods and the gold option, for the primary confidence of
        multiple-choice items (NotApplicable elsewhere)."""
        if signal != "confidence" or not {"option_logprobs", "gold"} <= set(frame.columns):
            raise NotApplicable(
                "temperature scaling needs the options' log-likelihoods (multiple-choice tasks, "
                "primary confidence)"
            )
        return list(frame["option_logprobs"]), frame["gold"].to_numpy(np.int64)

    def fit(self, X: Sequence[ArrayLike], y: ArrayLike) -> TemperatureScaler:
        """Fit on items' option log-likelihoods X (each (K_i,), K_i >= 2) and gold indices y
        (N,)."""
        self._check_objective()
        option_logprobs, gold = X, y
        rows = _options(option_logprobs)
        y = np.asarray(gold)
        if y.shape != (len(rows),) or not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"gold: expected {len(rows)} integer option indices, got {gold!r}")
        if np.any(y < 0) or np.any(y >= [len(r) for r in rows]):
            raise InputError("gold: an index is outside its item's options")
        self._check_size(len(rows))
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

    def predict_proba(self, X: Sequence[ArrayLike]) -> list[np.ndarray]:
        """Per item, the option probabilities softmax(z / T)."""
        self._check_fitted()
        return [softmax(r / self.temperature_) for r in _options(X)]

    def predict(self, X: Sequence[ArrayLike]) -> np.ndarray:
        """Per item, the calibrated probability of its top option (the argmax is unchanged)."""
        return np.array([p.max() for p in self.predict_proba(X)])
