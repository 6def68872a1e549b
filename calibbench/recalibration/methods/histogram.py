"""Histogram binning (Zadrozny & Elkan 2001): each confidence bin maps to its empirical accuracy.

Bins follow `calibbench.metrics.binning` with edges taken from the calibration confidences: bin b
holds c with e_b <= c < e_{b+1}, c == 1.0 in the last bin; "width" edges are b / B, "mass" edges
the quantiles of the calibration confidences, with outer edges 0 and 1. The edges cover [0, 1],
so a confidence outside the calibration range falls in the first or last bin like any other.

Empty bins: a bin with no calibration item takes the accuracy of the nearest non-empty bin (by
bin index); when the nearest non-empty bins on both sides are equally far, the mean of their two
accuracies. Below the lowest and above the highest non-empty bin, that bin's accuracy carries on.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from calibbench.metrics.binning import Binning, assign_bins, bin_edges, check_n_bins
from calibbench.recalibration.base import NotApplicable, ScalarCalibrator
from calibbench.recalibration.degenerate import CONSTANT, is_degenerate, laplace_accuracy


def fill_empty_bins(accuracy: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(B,) per-bin values with each empty bin (count 0) set by the rule in the module docstring;
    at least one bin must be non-empty."""
    index = np.arange(len(count))
    filled = np.where(count > 0, index, -1)
    left = np.maximum.accumulate(filled)  # nearest non-empty bin at or below, -1 if none
    right = np.minimum.accumulate(np.where(count > 0, index, len(count))[::-1])[::-1]
    has_left, has_right = left >= 0, right < len(count)
    to_left = np.where(has_left, index - left, np.inf)
    to_right = np.where(has_right, right - index, np.inf)
    from_left = accuracy[np.where(has_left, left, right)]
    from_right = accuracy[np.where(has_right, right, left)]
    return np.where(
        to_left < to_right,
        from_left,
        np.where(to_right < to_left, from_right, 0.5 * (from_left + from_right)),
    )


class HistogramBinningCalibrator(ScalarCalibrator):
    """Piecewise-constant map: the calibration accuracy of the bin a confidence falls in.

    n_bins: B >= 1; binning: "width" or "mass" (see the module docstring, which also states the
    empty-bin rule). Needs at least max(2, B) calibration items (InputError otherwise: lower
    n_bins or use more data). Degenerate data (all correct, all wrong, or a single distinct
    confidence) give the constant (k + 1) / (n + 2) in every bin, with fallback_ = "constant".
    Learned: edges_ (B + 1,), bin_value_ (B,), fallback_.
    """

    name = "histogram"
    order: ClassVar[int] = 4
    min_items: ClassVar[int] = 2
    learned: ClassVar[tuple[str, ...]] = ("edges", "bin_value", "fallback")

    def __init__(self, n_bins: int = 15, binning: Binning = "width"):
        self.n_bins = n_bins
        self.binning = binning

    @classmethod
    def for_protocol(cls, n_bins: int) -> HistogramBinningCalibrator:
        """Binned like the metrics: `n_bins` equal-width bins."""
        return cls(n_bins=n_bins)

    def _params(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "binning": self.binning}

    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        n_bins = check_n_bins(self.n_bins)
        if len(confidence) < n_bins:
            raise NotApplicable(
                f"{self.name}.fit: {len(confidence)} calibration items for {n_bins} bins; it "
                "needs at least one item per bin on average: lower n_bins or use more data"
            )
        self.edges_ = bin_edges(confidence, n_bins, self.binning)
        if is_degenerate(confidence, correct):
            self.bin_value_ = np.full(n_bins, laplace_accuracy(correct))
            self.fallback_ = CONSTANT
            return
        b = assign_bins(confidence, self.edges_)
        count = np.bincount(b, minlength=n_bins)
        hits = np.bincount(b, weights=correct, minlength=n_bins)
        accuracy = np.divide(hits, count, out=np.zeros(n_bins), where=count > 0)
        self.bin_value_ = fill_empty_bins(accuracy, count)
        self.fallback_ = ""

    def _predict(self, confidence: np.ndarray) -> np.ndarray:
        return self.bin_value_[assign_bins(confidence, self.edges_)]
