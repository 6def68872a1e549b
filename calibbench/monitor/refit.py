"""What refitting a recalibration on the latest window would change.

`LatestSample` (an accumulator over a time-sorted stream) keeps a uniform random sample of at
most `max_rows` predictions of the latest window: every row gets a seeded uniform key, and each
day keeps the rows with the `max_rows` smallest keys; days that can no longer be in the latest
window are dropped as the stream advances (memory: at most window days x `max_rows` rows). The
rows of the latest window with the smallest keys overall are then a uniform sample of it.

`refit_whatif`: the sample in time order; the earlier half fits, the later half scores (as a
recalibration fitted today is used tomorrow). Methods: the raw confidence; temperature scaling of
the two-outcome distribution (c, 1 - c), p = sigmoid(logit(c) / T) (`TemperatureScaler` on the
log-probabilities (log c, log(1 - c)) with the observed outcome as the gold option; c clipped to
[1e-12, 1 - 1e-12]); Platt scaling (`PlattScaler`). Each is scored by ECE and Brier on the later
half, with its change against the raw confidence by a paired bootstrap (`metric_change`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit, logit

from calibbench.errors import InputError
from calibbench.monitor.change import change_metrics, metric_change
from calibbench.recalibration.methods.platt import PlattScaler
from calibbench.recalibration.methods.temperature import TemperatureScaler

#: Rows sampled from the latest window.
MAX_ROWS = 20_000
#: Fewest rows of the latest window a refit is tried on (half to fit, half to score).
MIN_ROWS = 40
EPS = 1e-12
_FIELDS = ("key", "row", "confidence", "correct")


class LatestSample:
    """See the module docstring. latest_start(last_day) gives the first day of the window that
    ends with `last_day` (`WindowSpec.latest_start`)."""

    def __init__(self, latest_start: Callable[[int], int], max_rows: int = MAX_ROWS, seed: int = 0):
        if max_rows < MIN_ROWS:
            raise InputError(f"refit rows: expected at least {MIN_ROWS}, got {max_rows}")
        self.latest_start = latest_start
        self.max_rows = max_rows
        self._rng = np.random.default_rng(seed)
        self._days: dict[int, dict[str, np.ndarray]] = {}
        self.last_day: int | None = None

    def update(
        self, day: np.ndarray, row: np.ndarray, confidence: np.ndarray, correct: np.ndarray
    ) -> None:
        """Add a batch: day, row (file position), confidence, correct, each (N,), sorted by
        time within and across batches."""
        if not len(day):
            return
        keys = self._rng.random(len(day))
        bounds = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(day)], strict=True):
            part = {
                "key": keys[lo:hi],
                "row": row[lo:hi],
                "confidence": confidence[lo:hi],
                "correct": correct[lo:hi],
            }
            self._add(int(day[lo]), part)
        self.last_day = int(day[-1]) if self.last_day is None else max(self.last_day, int(day[-1]))
        start = self.latest_start(self.last_day)
        for old in [d for d in self._days if d < start]:
            del self._days[old]

    def _add(self, day: int, part: dict[str, np.ndarray]) -> None:
        held = self._days.get(day)
        if held is not None:
            part = {k: np.concatenate([held[k], part[k]]) for k in _FIELDS}
        self._days[day] = self._smallest(part)

    def _smallest(self, part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The rows of `part` with the `max_rows` smallest keys (all of them if no more)."""
        if len(part["key"]) <= self.max_rows:
            return part
        keep = np.argpartition(part["key"], self.max_rows - 1)[: self.max_rows]
        return {k: v[keep] for k, v in part.items()}

    def compute(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, confidence, correct) of the sample, in file (time) order."""
        if not self._days:
            return np.empty(0, np.int64), np.empty(0), np.empty(0, bool)
        held = self._smallest(
            {k: np.concatenate([d[k] for d in self._days.values()]) for k in _FIELDS}
        )
        order = np.argsort(held["row"], kind="stable")
        return held["row"][order], held["confidence"][order], held["correct"][order]


def binary_temperature(confidence: np.ndarray, correct: np.ndarray) -> float:
    """T of p = sigmoid(logit(c) / T) by maximum likelihood (see the module docstring)."""
    c = np.clip(confidence, EPS, 1.0 - EPS)
    options = np.stack([np.log(c), np.log1p(-c)], axis=1)
    scaler = TemperatureScaler().fit(list(options), np.where(correct, 0, 1))
    return float(scaler.temperature_)


def refit_whatif(
    confidence: np.ndarray,
    correct: np.ndarray,
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit on the earlier half of validated (N,) arrays in time order, score on the later half
    (see the module docstring). Returns n_fit, n_score, temperature, platt {a, b, fallback} and
    rows: per method and metric (ece, brier) the value on the later half, its change against
    raw and the interval of that change. Raises InputError for fewer than MIN_ROWS rows."""
    n = len(confidence)
    if n < MIN_ROWS:
        raise InputError(f"refit: the latest window holds {n} predictions; {MIN_ROWS} are needed")
    half = n // 2
    fit_c, fit_y, score_c, score_y = (
        confidence[:half],
        correct[:half],
        confidence[half:],
        correct[half:],
    )
    temperature = binary_temperature(fit_c, fit_y)
    platt = PlattScaler().fit(fit_c, fit_y)
    scored = {
        "temperature": expit(logit(np.clip(score_c, EPS, 1.0 - EPS)) / temperature),
        "platt": platt.predict(score_c),
    }
    metrics = {k: v for k, v in change_metrics(n_bins).items() if k in ("ece", "brier")}
    rows = [
        {
            "method": "raw",
            "metric": metric,
            "value": float(fn(score_c, score_y)),
            "change": 0.0,
            "low": 0.0,
            "high": 0.0,
        }
        for metric, fn in metrics.items()
    ]
    for method in ("temperature", "platt"):
        for metric, fn in metrics.items():
            change = metric_change(
                fn, (score_c, score_y), (scored[method], score_y), True, n_resamples, level, seed
            )
            rows.append(
                {
                    "method": method,
                    "metric": metric,
                    "value": change.new,
                    "change": change.change,
                    "low": change.low,
                    "high": change.high,
                }
            )
    return {
        "n_fit": half,
        "n_score": n - half,
        "temperature": temperature,
        "platt": {"a": platt.a_, "b": platt.b_, "fallback": platt.fallback_},
        "rows": rows,
    }
