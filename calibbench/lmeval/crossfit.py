"""Seeded cross-fitting of the recalibration methods, for graded rows without a calibration split.

An lm-eval log has no held-out calibration items, so every document serves both ways: the
documents are dealt into K folds by their rank in the order of SHA-256(seed, item_id) (the hash
of `calibbench.splits`; fold = rank mod K, so fold sizes differ by at most one and the
assignment depends only on the seed and the set of ids), and each method is fitted K times, on
the other K - 1 folds, and predicts the held-out fold. Every document thus gets an out-of-fold
recalibrated confidence, which is summarised with bootstrap intervals
(`calibbench.metrics.summary.answer_summary`); the best method follows
`calibbench.recalibration.protocol.best_method`. A method that cannot be fitted on some fold
records the reason instead of a summary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from calibbench.errors import InputError
from calibbench.metrics.summary import answer_summary
from calibbench.recalibration.base import NotApplicable, all_methods, get_method
from calibbench.recalibration.protocol import FIT_ERRORS, best_method


def assign_folds(item_ids: Sequence[str], folds: int, seed: int = 0) -> np.ndarray:
    """(N,) int64 fold in [0, folds) per item, in the order given (see the module docstring).

    Raises InputError for duplicate ids or fewer than two folds.
    """
    ids = [str(i) for i in item_ids]
    if folds < 2:
        raise InputError(f"folds: cross-fitting needs at least 2 folds, got {folds}")
    if len(set(ids)) != len(ids):
        raise InputError("item ids must be unique to be dealt into folds")
    keys = [hashlib.sha256(f"{seed}\0{i}".encode()).hexdigest() for i in ids]
    order = np.argsort(np.array(keys), kind="stable")
    fold = np.empty(len(ids), dtype=np.int64)
    fold[order] = np.arange(len(ids)) % folds
    return fold


def cross_fit_method(
    method: str,
    graded: pd.DataFrame,
    fold: np.ndarray,
    confidence: str = "confidence",
    correct: str = "correct",
    n_bins: int = 15,
) -> tuple[np.ndarray | None, list[dict[str, Any]], str | None]:
    """Out-of-fold predictions (N,) of one method over `graded` (rows with `fold` (N,)), the
    fitted method of each fold (`to_json`), and None; or (None, [], reason) when the method does
    not apply to the signal or a fold cannot be fitted or predicted ("fold k: ...")."""
    cls = get_method(method)
    try:
        cls.inputs(graded, confidence, correct)
    except NotApplicable as exc:
        return None, [], str(exc)
    predicted = np.full(len(graded), np.nan)
    fitted = []
    for k in np.unique(fold):
        held = fold == k
        try:
            x_train, y_train = cls.inputs(graded[~held], confidence, correct)
            x_held, _ = cls.inputs(graded[held], confidence, correct)
            model = cls.for_protocol(n_bins).fit(x_train, y_train)
            predicted[held] = model.predict(x_held)
        except FIT_ERRORS as exc:
            return None, [], f"fold {k}: {str(exc) or type(exc).__name__}"
        fitted.append(model.to_json())
    return predicted, fitted, None


def cross_fit(
    graded: pd.DataFrame,
    confidence: str = "confidence",
    correct: str = "correct",
    folds: int = 5,
    seed: int = 0,
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    methods: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every method (default: all registered) cross-fitted on the graded rows (one per item,
    with item_id, `confidence` and `correct`) and summarised out of fold.

    Returns a JSON-ready dict: confidence, correct, n, n_missing_confidence (rows without the
    signal, left out), folds, settings, `methods` {name: {summary, fitted (per fold)} or
    {error}} and `best` (see `best_method`). Raises InputError for a column the rows lack or
    duplicate item ids.
    """
    for column in ("item_id", confidence, correct):
        if column not in graded.columns:
            raise InputError(f"graded items: no column {column!r} (columns: {list(graded)})")
    usable = graded.dropna(subset=[confidence]).reset_index(drop=True)
    fold = assign_folds(usable["item_id"], folds, seed)
    y = usable[correct].to_numpy(bool)
    names = list(all_methods()) if methods is None else list(methods)
    entries: dict[str, dict[str, Any]] = {}
    for name in names:
        predicted, fitted, error = cross_fit_method(name, usable, fold, confidence, correct, n_bins)
        if predicted is None:
            entries[name] = {"error": error}
            continue
        summary = answer_summary(
            predicted, y, n_bins=n_bins, n_resamples=n_resamples, level=level, seed=seed
        )
        entries[name] = {"summary": summary, "fitted": fitted}
    return {
        "confidence": confidence,
        "correct": correct,
        "n": len(usable),
        "n_missing_confidence": len(graded) - len(usable),
        "folds": folds,
        "settings": {"n_bins": n_bins, "n_resamples": n_resamples, "level": level, "seed": seed},
        "methods": entries,
        "best": best_method(entries),
    }
