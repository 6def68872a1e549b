"""The evaluation protocol: fit on the calibration split, score on the test split, pick the best.

For one task's graded items (one row per item), one confidence signal and the item split:

1. every method is fitted on the calibration items only (temperature scaling on the options'
   log-likelihoods, when the task has them; the scalar methods on the confidence column);
2. every method, and the raw confidence, is scored on the test items only, each metric with a
   percentile bootstrap interval (`calibbench.metrics.summary.answer_summary`);
3. the best method is the one with the lowest test ECE among those whose ECE interval lies
   entirely below the raw confidence's interval; when none does, the answer is "none
   significantly better" rather than the noisiest winner.

A method that cannot be fitted on these data (too few items, no option log-likelihoods) is
reported with the reason instead of failing the whole comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from calibbench.errors import InputError
from calibbench.metrics.summary import answer_summary
from calibbench.recalibration.base import REGISTRY, ScalarCalibrator
from calibbench.recalibration.temperature import TemperatureScaler
from calibbench.splits import CALIBRATION, TEST

#: Every method, by name: the raw confidence, then the fitted ones.
METHODS = ("raw", "temperature", "platt", "isotonic", "histogram", "beta")
NONE_BETTER = "none significantly better"


def _sides(
    graded: pd.DataFrame, split: pd.DataFrame, columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    for column in columns:
        if column not in graded.columns:
            raise InputError(f"graded items: no column {column!r} (columns: {list(graded)})")
    merged = graded.merge(split[["item_id", "split"]], on="item_id", how="left")
    if merged["split"].isna().any():
        missing = merged.loc[merged["split"].isna(), "item_id"].iloc[0]
        raise InputError(f"split: item {missing!r} is in the graded items but not in the split")
    usable = merged.dropna(subset=list(columns))
    return usable[usable["split"] == CALIBRATION], usable[usable["split"] == TEST]


def evaluate_method(
    method: str,
    graded: pd.DataFrame,
    split: pd.DataFrame,
    confidence: str = "confidence",
    correct: str = "correct",
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Fit one method on the calibration items and score it on the test items.

    Returns a JSON-ready entry (counts, settings, and the test `summary` with the `fitted`
    state, or the `error` that prevented fitting) and the test predictions (item_id, confidence
    after the method, correct), or None when the method could not be fitted. Items whose
    confidence is missing (e.g. an empty answer's pavg) are left out and counted.
    """
    if method not in METHODS:
        raise InputError(f"unknown recalibration method {method!r}; methods: {list(METHODS)}")
    cal, test = _sides(graded, split, [confidence, correct])
    if len(test) == 0:
        raise InputError("the test split holds no items with this confidence")
    entry: dict[str, Any] = {
        "method": method,
        "confidence": confidence,
        "n_calibration": len(cal),
        "n_test": len(test),
        "n_missing_confidence": int(graded[confidence].isna().sum()),
        "settings": {"n_bins": n_bins, "n_resamples": n_resamples, "level": level, "seed": seed},
    }
    y_test = test[correct].to_numpy(bool)
    try:
        y_cal = cal[correct].to_numpy(bool)
        calibrated, fitted = _apply(method, cal, test, confidence, y_cal, n_bins)
    except InputError as exc:
        return entry | {"error": str(exc)}, None
    if fitted is not None:
        entry["fitted"] = fitted
    entry["summary"] = answer_summary(
        calibrated, y_test, n_bins=n_bins, n_resamples=n_resamples, level=level, seed=seed
    )
    predictions = pd.DataFrame(
        {"item_id": test["item_id"].to_numpy(), "confidence": calibrated, "correct": y_test}
    )
    return entry, predictions


def compare_methods(
    graded: pd.DataFrame,
    split: pd.DataFrame,
    confidence: str = "confidence",
    correct: str = "correct",
    methods: Sequence[str] = METHODS,
    **settings: Any,
) -> dict[str, Any]:
    """`evaluate_method` for each of `methods` and the `best` one (see the module docstring)."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise InputError(f"unknown recalibration methods {unknown}; methods: {list(METHODS)}")
    entries = {
        m: evaluate_method(m, graded, split, confidence, correct, **settings)[0] for m in methods
    }
    first = next(iter(entries.values()))
    common = {k: first[k] for k in ("confidence", "n_calibration", "n_test",
                                    "n_missing_confidence", "settings")}  # fmt: skip
    methods_out = {
        m: {k: v for k, v in e.items() if k not in common and k != "method"}
        for m, e in entries.items()
    }
    return common | {"methods": methods_out, "best": best_method(methods_out)}


def _apply(
    name: str,
    cal: pd.DataFrame,
    test: pd.DataFrame,
    confidence: str,
    y_cal: np.ndarray,
    n_bins: int,
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Test-split confidences after method `name` fitted on the calibration split (histogram
    binning uses the metrics' `n_bins`)."""
    if name == "raw":
        return test[confidence].to_numpy(np.float64), None
    if name == "temperature":
        if "option_logprobs" not in cal.columns or confidence != "confidence":
            raise InputError(
                "temperature scaling needs the options' log-likelihoods (multiple-choice tasks, "
                "primary confidence)"
            )
        options, gold = list(cal["option_logprobs"]), cal["gold"].to_numpy(np.int64)
        scaler = TemperatureScaler().fit(options, gold)
        return scaler.confidence(list(test["option_logprobs"])), scaler.to_json()
    kwargs = {"n_bins": n_bins} if name == "histogram" else {}
    method: ScalarCalibrator = REGISTRY[name](**kwargs)  # type: ignore[assignment]
    method.fit(cal[confidence].to_numpy(np.float64), y_cal)
    return method.transform(test[confidence].to_numpy(np.float64)), method.to_json()


def best_method(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fitted method with the lowest test ECE whose bootstrap interval lies entirely below
    the raw confidence's, or NONE_BETTER. Methods whose test ECE ties (to 1e-12; e.g. several
    falling back to the same constant on a one-sided calibration split) are named together in
    the reason, and the first of them in METHODS order (the simplest) is the method."""
    raw = results.get("raw", {}).get("summary", {}).get("metrics", {}).get("ece")
    if raw is None or raw["low"] is None:
        return {"method": None, "reason": "no raw confidence to compare with"}
    better = []
    for name, entry in results.items():
        metric = entry.get("summary", {}).get("metrics", {}).get("ece")
        if name == "raw" or metric is None or metric["high"] is None:
            continue
        if metric["high"] < raw["low"]:
            better.append((metric["estimate"], name))
    if not better:
        return {"method": None, "reason": NONE_BETTER}
    lowest = min(estimate for estimate, _ in better)
    position = {name: i for i, name in enumerate(results)}
    tied = sorted(
        (name for estimate, name in better if estimate - lowest <= 1e-12),
        key=lambda name: METHODS.index(name) if name in METHODS else len(METHODS) + position[name],
    )
    reason = f"test ECE {lowest:.4f}, interval below raw's"
    if len(tied) > 1:
        reason += f"; tied with {', '.join(tied[1:])}"
    return {"method": tied[0], "reason": reason}
