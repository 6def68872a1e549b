"""Confidence bins: edges and bin assignment, shared by every binned metric.

Convention (pinned in tests): with `B` bins and edges e_0 = 0 < e_1 < ... < e_B = 1, bin `b`
holds p with e_b <= p < e_{b+1}; p == 1.0 goes into the last bin and p == 0.0 into the first.
Equal-width edges are e_b = b / B. Equal-mass edges put the interior edges at the empirical
quantiles b / B of the confidences (numpy's default linear interpolation), so each bin holds
about N / B predictions; ties never straddle an edge, so bins may hold unequal counts.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from calibbench.errors import InputError

Binning = Literal["width", "mass"]


def check_n_bins(n_bins: int) -> int:
    """Return `n_bins` as an int after checking it is a positive integer."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"n_bins: expected a positive integer, got {n_bins!r}")
    return int(n_bins)


def width_edges(n_bins: int) -> np.ndarray:
    """Equal-width edges b / B for b = 0..B, shape (B + 1,)."""
    n_bins = check_n_bins(n_bins)
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def mass_edges(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass edges of confidences (..., N): shape (..., B + 1), outer edges 0 and 1."""
    n_bins = check_n_bins(n_bins)
    q = np.arange(1, n_bins, dtype=np.float64) / n_bins
    inner = np.moveaxis(np.quantile(confidence, q, axis=-1), 0, -1)
    lead = confidence.shape[:-1]
    return np.concatenate([np.zeros((*lead, 1)), inner, np.ones((*lead, 1))], axis=-1)


def bin_edges(confidence: np.ndarray, n_bins: int, binning: Binning) -> np.ndarray:
    """Edges for `binning` ("width" or "mass"): shape (B + 1,) or (..., B + 1) for mass."""
    if binning == "width":
        return width_edges(n_bins)
    if binning == "mass":
        return mass_edges(confidence, n_bins)
    raise InputError(f"binning: expected 'width' or 'mass', got {binning!r}")


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index in [0, B - 1] of each value in [0, 1] (int64, same shape as `values`).

    `edges` is (B + 1,) for all values, or (..., B + 1) with one row of edges per leading index of
    `values` (..., N).
    """
    if edges.ndim == 1:
        return np.searchsorted(edges[1:-1], values, side="right").astype(np.int64)
    inner = edges[..., 1:-1]
    return (values[..., :, None] >= inner[..., None, :]).sum(axis=-1, dtype=np.int64)
