"""The answer-level metric summary that every table row is made of: estimates with bootstrap CIs."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from calibbench.errors import InputError
from calibbench.metrics.binned import (
    adaptive_calibration_error,
    ece,
    helm_ece,
    reliability,
    rms_calibration_error,
)
from calibbench.metrics.bootstrap import bootstrap_ci
from calibbench.metrics.rejection import aurac, prr
from calibbench.metrics.scores import accuracy, aurc, auroc, brier, nll, overconfidence
from calibbench.validation import as_answer_pair


def mean_confidence(confidence: np.ndarray, correct: np.ndarray) -> float | np.ndarray:
    """Mean stated confidence over the last axis (the `correct` argument is unused)."""
    m = np.mean(confidence, axis=-1)
    return float(m) if np.ndim(m) == 0 else m


def answer_metrics(n_bins: int = 15) -> dict[str, Callable[..., Any]]:
    """The metrics reported per (model, task, method), by name, in table order."""
    return {
        "accuracy": accuracy,
        "mean_confidence": mean_confidence,
        "overconfidence": overconfidence,
        "ece": partial(ece, n_bins=n_bins, binning="width", norm="l1"),
        "ece_mass": partial(ece, n_bins=n_bins, binning="mass", norm="l1"),
        "ece_l2": partial(ece, n_bins=n_bins, binning="width", norm="l2"),
        "mce": partial(ece, n_bins=n_bins, binning="width", norm="max"),
        "brier": brier,
        "nll": nll,
        "auroc": auroc,
        "aurc": aurc,
        "prr": prr,
        "aurac": aurac,
        "ace": partial(adaptive_calibration_error, n_bins=n_bins),
        "rmsce": rms_calibration_error,
        "ece_helm": helm_ece,
    }


#: The metrics that depend only on the order of the confidences: defined for any score.
RANKING_METRICS = ("auroc", "aurc", "prr", "aurac")
#: Metrics reported as a point estimate without a bootstrap interval: smooth ECE's bandwidth
#: search costs about 30 ms per evaluation (450 items), 30 s for 1000 resamples of one summary.
POINT_METRICS = ("smooth_ece",)


def _point_metric(name: str, c: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """A POINT_METRICS entry: its estimate, no interval, and why (or why it has no estimate)."""
    from calibbench.metrics.smooth import smooth_ece

    try:
        value = {"smooth_ece": smooth_ece}[name](c, y)
    except ImportError as exc:
        return {"estimate": None, "low": None, "high": None, "reason": str(exc)}
    return {"estimate": _finite_or_none(value), "low": None, "high": None,
            "reason": "point estimate, not bootstrapped (see POINT_METRICS)"}  # fmt: skip


def _finite_or_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def answer_summary(
    confidence: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    ranking_only: str | None = None,
) -> dict[str, Any]:
    """Every answer-level metric with a percentile bootstrap CI, and reliability-diagram data.

    With `ranking_only` (the reason, e.g. "semantic_entropy is a score, not a probability"),
    `confidence` is a score mapped into [0, 1] by a fixed monotone map rather than a probability:
    only `RANKING_METRICS` are computed, the others have estimate None and that reason, and
    there is no reliability data. `POINT_METRICS` have an estimate without an interval.

    Returns a JSON-ready dict: `n`, the settings, `metrics` {name: {estimate, low, high,
    n_undefined}} (a metric undefined on these data, such as AUROC when every answer is correct,
    has estimate None and a `reason`), and `reliability`, one dict per bin.
    """
    c, y = as_answer_pair(confidence, correct)
    if c.ndim != 1:
        raise InputError(f"answer_summary: expected 1-D inputs, got shape {c.shape}")
    metrics: dict[str, dict[str, Any]] = {}
    for name, fn in answer_metrics(n_bins).items():
        if ranking_only is not None and name not in RANKING_METRICS:
            metrics[name] = {"estimate": None, "low": None, "high": None, "reason": ranking_only}
            continue
        try:
            ci = bootstrap_ci(fn, c, y, n_resamples=n_resamples, level=level, seed=seed)
        except InputError as exc:
            metrics[name] = {"estimate": None, "low": None, "high": None, "reason": str(exc)}
            continue
        metrics[name] = {
            "estimate": _finite_or_none(ci.estimate),
            "low": _finite_or_none(ci.low),
            "high": _finite_or_none(ci.high),
            "n_undefined": ci.n_undefined,
        }
    for name in POINT_METRICS:
        if ranking_only is not None:
            metrics[name] = {"estimate": None, "low": None, "high": None, "reason": ranking_only}
        else:
            metrics[name] = _point_metric(name, c, y)
    bins = (
        reliability(c, y, n_bins=n_bins, binning="width", level=level).to_frame()
        if ranking_only is None
        else pd.DataFrame()
    )
    return {
        "n": int(c.shape[0]),
        "n_bins": n_bins,
        "level": level,
        "n_resamples": n_resamples,
        "seed": seed,
        "metrics": metrics,
        "reliability": [
            {k: (_finite_or_none(v) if isinstance(v, float) else int(v)) for k, v in row.items()}
            for row in bins.to_dict(orient="records")
        ],
    }
