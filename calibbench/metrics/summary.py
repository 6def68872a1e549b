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
from calibbench.metrics.binned import ece, reliability
from calibbench.metrics.bootstrap import bootstrap_ci
from calibbench.metrics.rejection import prr
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
    }


#: The metrics that depend only on the order of the confidences: defined for any score.
RANKING_METRICS = ("auroc", "aurc", "prr")


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
    there is no reliability data.

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
