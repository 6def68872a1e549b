"""The evaluation protocol: fit on the calibration split, score on the test split, pick the best.

For one task's graded items (one row per item), one confidence signal and the item split:

1. every method (`calibbench.recalibration.all_methods()`, the raw confidence among them) reads its
   inputs from the graded rows (`inputs`: the signal's column, or the options' log-likelihoods
   for temperature scaling) and is fitted on the calibration items only;
2. every method is scored on the test items only, each metric with a percentile bootstrap
   interval (`calibbench.metrics.summary.answer_summary`);
3. the best method is the one with the lowest test ECE among those whose ECE interval lies
   entirely below the raw confidence's interval; when none does, the answer is "none
   significantly better" rather than the noisiest winner.

A method that cannot be fitted on these data (too few items, a signal it does not apply to, a
fit that fails numerically) is recorded with the reason ("not fitted") instead of failing the
comparison or the workflow.

A score signal (`calibbench.confidence.signals`: an entropy, a count of clusters) is not a
probability: every method reads its monotone feature in (0, 1] instead of the column, the fitted
methods map that to calibrated probabilities, and a method that learns nothing (`raw`) reports
only the ranking metrics of the score (AUROC, AURC, PRR), never the calibration of the feature
itself. The best method of a score signal is then undetermined ("no raw confidence to compare
with").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from calibbench.confidence.signals import BY_NAME
from calibbench.errors import InputError
from calibbench.metrics.summary import answer_summary
from calibbench.recalibration.base import all_methods, get_method
from calibbench.splits import CALIBRATION, TEST

NONE_BETTER = "none significantly better"
#: What a failed fit can raise besides InputError: numerical trouble in a method's solver.
FIT_ERRORS = (ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError)


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
    correct: str | None = None,
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Fit one method on the calibration items and score it on the test items.

    Returns a JSON-ready entry (counts, settings, and the test `summary` with the `fitted`
    state, or the `error` that kept it from being fitted or scored) and the test predictions
    (item_id, confidence after the method, correct), or None when there are none. Items whose
    confidence is missing (e.g. an empty answer's pavg) are left out and counted. `correct`
    is the outcome column, by default the registry's for the signal (`correct` for most; a
    verbalized confidence predicts its own guess's correctness). Raises only for bad input (an
    unknown method, a signal the graded table does not have).
    """
    cls = get_method(method)
    signal = BY_NAME.get(confidence)
    if correct is None:
        correct = signal.outcome if signal is not None else "correct"
    cal, test = _sides(graded, split, [confidence, correct])
    entry: dict[str, Any] = {
        "method": method,
        "confidence": confidence,
        "n_calibration": len(cal),
        "n_test": len(test),
        "n_missing_confidence": int(graded[confidence].isna().sum()),
        "settings": {"n_bins": n_bins, "n_resamples": n_resamples, "level": level, "seed": seed},
    }
    if len(test) == 0:
        return entry | {"error": "the test split holds no items with this confidence"}, None
    ranking_only = None
    if signal is not None and not signal.probability:
        entry["feature"] = signal.feature_text
        cal, test = (
            side.assign(**{confidence: signal.feature(side[confidence].to_numpy())})
            for side in (cal, test)
        )
        if not cls.learned:  # a method that learns nothing would pass the feature through
            ranking_only = (
                f"{confidence} is a score, not a probability: only its ranking metrics are "
                "reported unfitted"
            )
    y_test = test[correct].to_numpy(bool)
    try:
        x_cal, y_cal = cls.inputs(cal, confidence, correct)
        x_test, _ = cls.inputs(test, confidence, correct)
        fitted = cls.for_protocol(n_bins).fit(x_cal, y_cal)
        calibrated = fitted.predict(x_test)
    except FIT_ERRORS as exc:
        return entry | {"error": str(exc) or type(exc).__name__}, None
    if fitted.learned:
        entry["fitted"] = fitted.to_json()
    entry["summary"] = answer_summary(
        calibrated, y_test, n_bins=n_bins, n_resamples=n_resamples, level=level, seed=seed,
        ranking_only=ranking_only,
    )  # fmt: skip
    predictions = pd.DataFrame(
        {"item_id": test["item_id"].to_numpy(), "confidence": calibrated, "correct": y_test}
    )
    return entry, predictions


def compare_methods(
    graded: pd.DataFrame,
    split: pd.DataFrame,
    confidence: str = "confidence",
    correct: str | None = None,
    methods: Sequence[str] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """`evaluate_method` for each of `methods` (default: all) and the `best` one (see the
    module docstring)."""
    names = list(all_methods()) if methods is None else list(methods)
    entries = {
        m: evaluate_method(m, graded, split, confidence, correct, **settings)[0] for m in names
    }
    first = next(iter(entries.values()))
    common = {k: first[k] for k in ("confidence", "n_calibration", "n_test",
                                    "n_missing_confidence", "settings")}  # fmt: skip
    methods_out = {
        m: {k: v for k, v in e.items() if k not in common and k != "method"}
        for m, e in entries.items()
    }
    return common | {"methods": methods_out, "best": best_method(methods_out)}


def best_method(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fitted method with the lowest test ECE whose bootstrap interval lies entirely below
    the raw confidence's, or NONE_BETTER. Methods whose test ECE ties (to 1e-12; e.g. several
    falling back to the same constant on a one-sided calibration split) are named together in
    the reason, and the first of them in table order (`order`: the simplest) is the method."""
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
    order = list(all_methods())
    position = {name: i for i, name in enumerate(results)}
    tied = sorted(
        (name for estimate, name in better if estimate - lowest <= 1e-12),
        key=lambda name: order.index(name) if name in order else len(order) + position[name],
    )
    reason = f"test ECE {lowest:.4f}, interval below raw's"
    if len(tied) > 1:
        reason += f"; tied with {', '.join(tied[1:])}"
    return {"method": tied[0], "reason": reason}
