"""Windows of a prediction log: binned sums per day and segment, and each window's metrics.

State (`DailyCells`, an accumulator: `update`, `merge`, `compute`): for every segment and UTC
day, the predictions' cells: per outcome (0 wrong, 1 correct) and confidence bin (B equal-width
bins, the convention of `calibbench.metrics.binning`), the count (int64) and the sums of c, c²,
c³ and c⁴. Memory is O(segments x days x B), independent of the number of predictions; a window
is a range of days, so its cells are a sum over days, and every metric below is a function of
them: ECE and accuracy exactly, mean confidence and Brier exactly (their sums expand in powers
of c), and the moments their intervals need.

Windows (`WindowSpec`): calendar days, ISO weeks (Monday to Sunday) or months; or rolling
windows of L days every S days, anchored at the log's last day: the latest window is the last L
days, the one before it ends S days earlier, and so on back to the first day (a window that
would start before the first day starts there; of several such, only the longest is kept).

Intervals (`window_metrics`, coverage `level`): accuracy: Wilson score interval; mean confidence,
over-confidence (mean c - y) and Brier: normal (central limit) intervals from the sums of the
item values and their squares; ECE: percentile bootstrap of the window's items, drawn as
multinomial counts of its 2B cells, the confidence sum of m items drawn from a cell taken as
normal with m times the cell's mean and variance (the item bootstrap's own first two moments).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm as normal

from calibbench.errors import InputError
from calibbench.metrics.binning import assign_bins, check_n_bins, width_edges
from calibbench.validation import check_level

#: Powers of the confidence summed per cell: c, c², c³, c⁴.
POWERS = 4
#: The segment every prediction belongs to (index 0 of `DailyCells.labels`).
ALL = ("", "all")
#: Distinct segments (column, value) one log may have; more is not what segments are for.
MAX_SEGMENTS = 1000
CALENDAR = ("day", "week", "month")
_DAYS = re.compile(r"^(\d+)D$")


@dataclass(frozen=True, eq=False)
class Cells:
    """Binned sums of one set of predictions. count: (2, B) int64, [outcome, bin]; sums:
    (2, B, POWERS) float64, the sums of c^1 .. c^4 of each cell."""

    count: np.ndarray
    sums: np.ndarray

    @classmethod
    def of(cls, confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> Cells:
        """The cells of validated 1-D confidences in [0, 1] and bool outcomes."""
        n_bins = check_n_bins(n_bins)
        flat = correct.astype(np.int64) * n_bins + assign_bins(confidence, width_edges(n_bins))
        count = np.bincount(flat, minlength=2 * n_bins).reshape(2, n_bins)
        sums = np.empty((POWERS, 2 * n_bins))
        for k, power in enumerate(_powers(confidence)):
            sums[k] = np.bincount(flat, weights=power, minlength=2 * n_bins)
        return cls(count.astype(np.int64), np.moveaxis(sums.reshape(POWERS, 2, n_bins), 0, -1))

    @property
    def n(self) -> int:
        """Number of predictions."""
        return int(self.count.sum())


def _powers(confidence: np.ndarray) -> list[np.ndarray]:
    """c, c², ..., c^POWERS of a batch (each by one more multiplication, as the sums use)."""
    out = [confidence * 1.0]
    for _ in range(POWERS - 1):
        out.append(out[-1] * confidence)
    return out


def residual_moments(cells: Cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin (B,): count, sum and sum of squares of the residual r = y - c."""
    n0, n1 = cells.count
    s0, s1 = cells.sums[0], cells.sums[1]
    total = n0 + n1
    first = n1 - s0[:, 0] - s1[:, 0]
    second = s0[:, 1] + n1 - 2.0 * s1[:, 0] + s1[:, 1]  # Σc² (wrong) + Σ(1 - c)² (correct)
    return total, first, second


def wilson(hits: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of hits / n at normal quantile z (NaN where n = 0)."""
    safe = np.maximum(n, 1)
    p = np.where(n > 0, hits / safe, np.nan)
    denom = 1.0 + z**2 / safe
    centre = (p + z**2 / (2.0 * safe)) / denom
    half = z / denom * np.sqrt(p * (1.0 - p) / safe + z**2 / (4.0 * safe**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def cells_reliability(cells: Cells, level: float = 0.95) -> pd.DataFrame:
    """Reliability-diagram bins of the cells, the columns of `Reliability.to_frame()`:
    bin_low, bin_high, count, mean_confidence, accuracy, ci_low, ci_high (Wilson)."""
    n_bins = cells.count.shape[1]
    edges = width_edges(n_bins)
    count = cells.count.sum(axis=0)
    safe = np.maximum(count, 1)
    low, high = wilson(cells.count[1], count, float(normal.ppf(0.5 + check_level(level) / 2.0)))
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "count": count,
            "mean_confidence": np.where(count > 0, cells.sums[..., 0].sum(axis=0) / safe, np.nan),
            "accuracy": np.where(count > 0, cells.count[1] / safe, np.nan),
            "ci_low": low,
            "ci_high": high,
        }
    )


def _normal(total: float, square: float, n: int, z: float) -> tuple[float, float, float]:
    mean = total / n
    var = max(square - n * mean**2, 0.0) / (n - 1) if n > 1 else np.nan
    half = z * np.sqrt(var / n)
    return mean, mean - half, mean + half


def _ece_bootstrap(cells: Cells, n_resamples: int, level: float, seed: int) -> tuple[float, float]:
    n = cells.n
    count = cells.count.ravel()
    safe = np.maximum(count, 1)
    mean = cells.sums[..., 0].ravel() / safe
    sd = np.sqrt(np.maximum(cells.sums[..., 1].ravel() / safe - mean**2, 0.0))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, count / n, size=n_resamples)  # (R, 2B)
    conf = draws * mean + np.sqrt(draws) * sd * rng.standard_normal(draws.shape)
    n_bins = cells.count.shape[1]
    hits = draws[:, n_bins:]
    mass = conf[:, :n_bins] + conf[:, n_bins:]
    values = np.abs(hits - mass).sum(axis=1) / n
    low, high = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def window_metrics(
    cells: Cells, level: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """n and, each as {estimate, low, high} (see the module docstring for the intervals):
    accuracy, mean_confidence, overconfidence, brier, ece (l1, the cells' bins). Raises
    InputError for empty cells or a bad `level`."""
    level = check_level(level)
    n = cells.n
    if n == 0:
        raise InputError("window_metrics: the window holds no predictions")
    z = float(normal.ppf(0.5 + level / 2.0))
    hits = int(cells.count[1].sum())
    conf = cells.sums[..., 0].sum()
    conf_sq = cells.sums[..., 1].sum()
    _, r_sum, r_sq = (part.sum() for part in residual_moments(cells))
    s0, s1, n1 = cells.sums[0].sum(axis=0), cells.sums[1].sum(axis=0), hits
    # Σ(c - y)⁴: c⁴ for wrong answers, (1 - c)⁴ = 1 - 4c + 6c² - 4c³ + c⁴ for correct ones.
    brier_sq = s0[3] + n1 - 4 * s1[0] + 6 * s1[1] - 4 * s1[2] + s1[3]
    acc_low, acc_high = wilson(np.array(hits), np.array(n), z)
    ece = float(np.abs(cells.count[1] - cells.sums[..., 0].sum(axis=0)).sum() / n)
    ece_low, ece_high = _ece_bootstrap(cells, n_resamples, level, seed)

    def entry(values: tuple[float, float, float]) -> dict[str, float]:
        return {"estimate": float(values[0]), "low": float(values[1]), "high": float(values[2])}

    return {
        "n": n,
        "accuracy": entry((hits / n, acc_low, acc_high)),
        "mean_confidence": entry(_normal(conf, conf_sq, n, z)),
        "overconfidence": entry(_normal(-r_sum, r_sq, n, z)),
        "brier": entry(_normal(r_sq, brier_sq, n, z)),
        "ece": entry((ece, ece_low, ece_high)),
    }


def day_text(day: int) -> str:
    """A day number (days since 1970-01-01) as YYYY-MM-DD."""
    return str(np.datetime64(int(day), "D"))


@dataclass(frozen=True)
class Window:
    """Days start..end (inclusive; days since 1970-01-01, UTC)."""

    start: int
    end: int

    @property
    def label(self) -> str:
        """'YYYY-MM-DD' for one day, else 'YYYY-MM-DD..YYYY-MM-DD'."""
        if self.start == self.end:
            return day_text(self.start)
        return f"{day_text(self.start)}..{day_text(self.end)}"


def _calendar_start(unit: str, day: int) -> int:
    if unit == "day":
        return day
    if unit == "week":  # 1970-01-01 was a Thursday; ISO weeks start on Monday
        return (day + 3) // 7 * 7 - 3
    return int(
        np.datetime64(int(day), "D")
        .astype("datetime64[M]")
        .astype("datetime64[D]")
        .astype(np.int64)
    )


def _calendar_end(unit: str, start: int) -> int:
    if unit == "day":
        return start
    if unit == "week":
        return start + 6
    month = np.datetime64(int(start), "D").astype("datetime64[M]") + 1
    return int(month.astype("datetime64[D]").astype(np.int64)) - 1


@dataclass(frozen=True)
class WindowSpec:
    """unit: "day", "week" or "month" (calendar windows), or "rolling" with `length` and `step`
    in days. `parse` reads the command line's form."""

    unit: str
    length: int = 0
    step: int = 0

    @classmethod
    def parse(cls, window: str, step: str | None = None) -> WindowSpec:
        """ "day", "week", "month", or "<L>D" (rolling, L days) with step "<S>D" (default: L).
        Raises InputError naming --window or --step."""
        if window in CALENDAR:
            if step is not None:
                raise InputError(f"--step: calendar windows ({window}) take no step")
            return cls(window)
        match = _DAYS.match(window)
        if not match or int(match[1]) < 1:
            raise InputError(
                f"--window: expected day, week, month or a number of days such as 30D, got "
                f"{window!r}"
            )
        length = int(match[1])
        step_match = _DAYS.match(step) if step is not None else match
        if not step_match or int(step_match[1]) < 1:
            raise InputError(f"--step: expected a number of days such as 7D, got {step!r}")
        return cls("rolling", length, int(step_match[1]))

    def latest_start(self, last_day: int) -> int:
        """The first day of the latest window when the log's last day is `last_day`."""
        if self.unit == "rolling":
            return last_day - self.length + 1
        return _calendar_start(self.unit, last_day)

    def windows(self, first_day: int, last_day: int) -> list[Window]:
        """The windows covering first_day..last_day, oldest first (see the module docstring)."""
        out = []
        if self.unit == "rolling":
            end = last_day
            while end >= first_day:
                start = max(end - self.length + 1, first_day)
                if out and start == first_day and out[-1].start == first_day:
                    break
                out.append(Window(start, end))
                end -= self.step
            return out[::-1]
        start = _calendar_start(self.unit, first_day)
        while start <= last_day:
            end = _calendar_end(self.unit, start)
            out.append(Window(start, end))
            start = end + 1
        return out

    @property
    def text(self) -> str:
        """The spec as the command line writes it."""
        if self.unit == "rolling":
            return f"{self.length}D every {self.step}D"
        return self.unit


@dataclass(frozen=True)
class Coded:
    """A segment column's values in one batch: codes (N,) indexing `values`."""

    codes: np.ndarray
    values: Sequence[str]


class DailyCells:
    """Cells per segment and UTC day (see the module docstring). labels: the segments,
    (column, value), ALL first; `update` adds a batch, `merge` another accumulator's state,
    `compute(windows)` the cells of each window and segment."""

    def __init__(self, n_bins: int = 15, segment_columns: Sequence[str] = ()):
        self.n_bins = check_n_bins(n_bins)
        self._edges = width_edges(self.n_bins)
        self.segment_columns = tuple(segment_columns)
        self.labels: list[tuple[str, str]] = [ALL]
        self._index: dict[tuple[str, str], int] = {ALL: 0}
        self.day0 = 0
        self.count = np.zeros((1, 0, 2, self.n_bins), np.int64)
        self.sums = np.zeros((1, 0, 2, self.n_bins, POWERS))

    @property
    def days(self) -> tuple[int, int] | None:
        """(first, last) day with a prediction, or None before any."""
        seen = np.flatnonzero(self.count[0].sum(axis=(1, 2)))
        if not seen.size:
            return None
        return self.day0 + int(seen[0]), self.day0 + int(seen[-1])

    def _segment_ids(self, column: str, coded: Coded) -> np.ndarray:
        ids = np.empty(len(coded.values), np.int64)
        for i, value in enumerate(coded.values):
            key = (column, str(value))
            if key not in self._index:
                if len(self.labels) > MAX_SEGMENTS:
                    raise InputError(
                        f"--segment {column}: more than {MAX_SEGMENTS} distinct segments; "
                        "segment by a column with a few dozen values (task, customer tier)"
                    )
                self._index[key] = len(self.labels)
                self.labels.append(key)
            ids[i] = self._index[key]
        return ids[coded.codes]

    def _grow(self, first: int, last: int) -> None:
        n_days = self.count.shape[1]
        lo = min(first, self.day0) if n_days else first
        hi = max(last, self.day0 + n_days - 1) if n_days else last
        segments = len(self.labels)
        if lo == self.day0 and hi < self.day0 + n_days and segments == self.count.shape[0]:
            return
        if hi >= self.day0 + n_days or lo < self.day0:  # room for the days a sorted log brings
            hi = max(hi, lo + 2 * max(n_days, 16) - 1)
        count = np.zeros((segments, hi - lo + 1, 2, self.n_bins), np.int64)
        sums = np.zeros((segments, hi - lo + 1, 2, self.n_bins, POWERS))
        if n_days:
            at = self.day0 - lo
            count[: self.count.shape[0], at : at + n_days] = self.count
            sums[: self.sums.shape[0], at : at + n_days] = self.sums
        self.day0, self.count, self.sums = lo, count, sums

    def update(
        self,
        day: np.ndarray,
        confidence: np.ndarray,
        correct: np.ndarray,
        segments: Mapping[str, Coded] | None = None,
    ) -> None:
        """Add a batch of validated predictions: day (N,) int64 days since 1970-01-01 (UTC),
        confidence (N,) float64 in [0, 1], correct (N,) bool, and per segment column its
        coded values. Raises InputError for a missing segment column or too many segments."""
        if not len(day):
            return
        segments = segments or {}
        missing = set(self.segment_columns) - set(segments)
        if missing:
            raise InputError(f"DailyCells.update: no values for segment columns {sorted(missing)}")
        groups = [np.zeros(len(day), np.int64)]
        groups += [self._segment_ids(c, segments[c]) for c in self.segment_columns]
        first, last = int(day.min()), int(day.max())
        self._grow(first, last)
        span = last - first + 1
        cell = (day - first) * 2 * self.n_bins + correct.astype(np.int64) * self.n_bins
        cell += assign_bins(confidence, self._edges)
        size = len(self.labels) * span * 2 * self.n_bins
        lo = first - self.day0
        shape = (len(self.labels), span, 2, self.n_bins)
        powers = _powers(confidence)  # once per batch, shared by every segment column
        for ids in groups:
            flat = ids * (span * 2 * self.n_bins) + cell
            self.count[:, lo : lo + span] += np.bincount(flat, minlength=size).reshape(shape)
            for k, power in enumerate(powers):
                summed = np.bincount(flat, weights=power, minlength=size).reshape(shape)
                self.sums[:, lo : lo + span, ..., k] += summed

    def merge(self, other: DailyCells) -> None:
        """Add another accumulator's state (same n_bins), aligning its days and segments."""
        if other.n_bins != self.n_bins:
            raise InputError(f"merge: n_bins {other.n_bins} != {self.n_bins}")
        if not other.count.shape[1]:
            return
        for label in other.labels:
            if label not in self._index:
                self._index[label] = len(self.labels)
                self.labels.append(label)
        self._grow(other.day0, other.day0 + other.count.shape[1] - 1)
        rows = [self._index[label] for label in other.labels]
        at = other.day0 - self.day0
        span = other.count.shape[1]
        self.count[rows, at : at + span] += other.count
        self.sums[rows, at : at + span] += other.sums

    def cells(self, segment: int, window: Window) -> Cells:
        """The cells of one segment (index into `labels`) over a window's days."""
        lo = max(window.start - self.day0, 0)
        hi = max(min(window.end - self.day0 + 1, self.count.shape[1]), lo)
        return Cells(self.count[segment, lo:hi].sum(axis=0), self.sums[segment, lo:hi].sum(axis=0))

    def compute(self, windows: Sequence[Window]) -> list[list[Cells]]:
        """Cells per segment (in `labels` order) and window: [segment][window]."""
        return [[self.cells(s, w) for w in windows] for s in range(len(self.labels))]
