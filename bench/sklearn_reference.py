"""calibbench's hand-written pieces against scikit-learn, the field's reference implementation:
the logistic fit of Platt scaling and beta calibration, the bootstrap AUROC, isotonic
regression. calibbench keeps its own code only where this shows it more exact or faster.

- Logistic fit: on 600 random calibration sets (confidences with 3 values, 4 values, or continuous;
  4-60 items; outcomes drawn around the confidence), the penalised objective each fit reaches,
  calibbench's Newton fit (`calibbench.recalibration.logistic.fit_logistic`) against
  `LogisticRegression(C=1e11)` with the `newton-cholesky` and `lbfgs` solvers (tol 1e-10, 1000
  iterations): how often and by how much scikit-learn's objective is higher, and the largest
  relative slope difference.
- AUROC: 1000 bootstrap resamples of N = 500 answers, calibbench's batched rank formula against
  `roc_auc_score` called per resample; seconds and the largest difference.
- Isotonic regression: calibbench's pool-adjacent-violators against `IsotonicRegression`
  (clip, y in [0, 1]): largest difference of the fitted maps and seconds per fit.

    python bench/sklearn_reference.py            # writes bench/results/sklearn_reference.*
    python bench/sklearn_reference.py --quick    # a small smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logit

from calibbench.metrics.scores import auroc
from calibbench.recalibration.logistic import RIDGE, cross_entropy, fit_logistic
from calibbench.recalibration.methods.isotonic import IsotonicCalibrator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, markdown_table, write_results


def calibration_sets(n_sets: int, seed: int = 1) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, confidences, outcomes) with both outcomes and two or more distinct confidences."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n_sets:
        n = int(rng.integers(4, 61))
        kind = ("3-valued", "4-valued", "continuous")[len(out) % 3]
        if kind == "3-valued":
            c = rng.choice([0.0, 0.5, 1.0], size=n)
        elif kind == "4-valued":
            c = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], size=n)
        else:
            c = rng.beta(5, 1.5, size=n)
        y = rng.uniform(size=n) < np.clip(0.8 * c + 0.1, 0, 1)
        if y.all() or not y.any() or np.all(c == c[0]):
            continue
        out.append((kind, c, y))
    return out


def logistic_rows(sets: list) -> list[dict]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rows = []
    fits: dict[str, list] = {"calibbench Newton": [], "newton-cholesky": [], "lbfgs": []}
    seconds = dict.fromkeys(fits, 0.0)
    for _, c, y in sets:
        x = logit(np.clip(c, 1e-12, 1 - 1e-12))[:, None]
        t0 = time.perf_counter()
        fits["calibbench Newton"].append(fit_logistic(x, y.astype(float)))
        seconds["calibbench Newton"] += time.perf_counter() - t0
        for solver in ("newton-cholesky", "lbfgs"):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                lr = LogisticRegression(C=1 / RIDGE, solver=solver, tol=1e-10, max_iter=1000)
                lr.fit(x, y)
            seconds[solver] += time.perf_counter() - t0
            fits[solver].append(np.r_[lr.coef_[0], lr.intercept_])

    def objective(c: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
        return cross_entropy(logit(np.clip(c, 1e-12, 1 - 1e-12)) * w[0] + w[1], y * 1.0, w[:1])

    objectives = {
        name: np.array([objective(c, y, w) for (_, c, y), w in zip(sets, ws, strict=True)])
        for name, ws in fits.items()
    }
    ours = objectives["calibbench Newton"]
    for name, values in objectives.items():
        excess = (values - ours) / (1 + np.abs(ours))
        slopes = np.array([
            abs(w[0] - v[0]) / (1 + abs(v[0]))
            for w, v in zip(fits[name], fits["calibbench Newton"], strict=True)
        ])  # fmt: skip
        rows.append({
            "what": "logistic fit", "method": name, "sets": len(sets),
            "higher objective in": int((excess > 1e-12).sum()),
            "lower objective in": int((excess < -1e-12).sum()),
            "max excess (rel.)": float(excess.max()), "max slope diff (rel.)": float(slopes.max()),
            "ms per fit": 1000 * seconds[name] / len(sets),
        })  # fmt: skip
    return rows


def auroc_rows(n: int, resamples: int) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    c = np.round(rng.beta(4, 2, n), 2)  # ties, as calibrated confidences have
    y = rng.uniform(size=n) < c
    idx = rng.integers(0, n, (resamples, n))
    t0 = time.perf_counter()
    ours = auroc(c[idx], y[idx])
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = np.array([roc_auc_score(y[i], c[i]) for i in idx])
    t_ref = time.perf_counter() - t0
    diff = float(np.nanmax(np.abs(ours - ref)))
    return [
        {"what": "bootstrap AUROC", "method": "calibbench batched", "sets": resamples,
         "seconds": t_ours, "max diff": diff, "ratio": t_ref / t_ours},
        {"what": "bootstrap AUROC", "method": "roc_auc_score loop", "sets": resamples,
         "seconds": t_ref, "max diff": diff, "ratio": 1.0},
    ]  # fmt: skip


def isotonic_rows(sets: list) -> list[dict]:
    from sklearn.isotonic import IsotonicRegression

    grid = np.linspace(0, 1, 501)
    diff, t_ours, t_ref = 0.0, 0.0, 0.0
    for _, c, y in sets:
        t0 = time.perf_counter()
        ours = IsotonicCalibrator().fit(c, y)
        t_ours += time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(c, y.astype(float))
        t_ref += time.perf_counter() - t0
        diff = max(diff, float(np.abs(ours.predict(grid) - ref.predict(grid)).max()))
    return [
        {"what": "isotonic", "method": "calibbench PAV", "sets": len(sets),
         "max diff": diff, "ms per fit": 1000 * t_ours / len(sets)},
        {"what": "isotonic", "method": "IsotonicRegression", "sets": len(sets),
         "max diff": diff, "ms per fit": 1000 * t_ref / len(sets)},
    ]  # fmt: skip


COLUMNS = ("what", "method", "sets", "higher objective in", "lower objective in",
           "max excess (rel.)", "max slope diff (rel.)", "max diff", "ms per fit", "seconds",
           "ratio")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run, writes nothing")
    args = parser.parse_args()
    sets = calibration_sets(60 if args.quick else 600)
    rows = logistic_rows(sets) + auroc_rows(200 if args.quick else 500,
                                            50 if args.quick else 1000)  # fmt: skip
    rows += isotonic_rows(sets)
    table = markdown_table(rows, COLUMNS)
    print(table)
    if not args.quick:
        notes = (
            "calibbench against scikit-learn on the same inputs (one process; see the script's "
            "docstring). 'higher objective in': calibration sets on which the method stopped "
            "above calibbench's Newton fit (relative 1e-12); ratio: roc_auc_score loop time / "
            "calibbench time."
        )
        write_results("sklearn_reference", table, {"machine": machine_info(), "rows": rows}, notes)


if __name__ == "__main__":
    main()
