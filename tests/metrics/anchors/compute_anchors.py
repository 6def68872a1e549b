"""Reference values for tests/metrics/test_rejection.py and test_binned_variants.py.

Run in a throwaway venv, never the project's (these packages pull heavy dependencies):

    python -m venv /tmp/anchors-venv
    /tmp/anchors-venv/bin/pip install lm-polygraph==0.7.0 uncertainty-calibration==0.1.4
    /tmp/anchors-venv/bin/python -m pip install "pip<24.1"   # 0.0.81's metadata needs it
    /tmp/anchors-venv/bin/python -m pip install --no-deps uncertainty-metrics==0.0.81
    /tmp/anchors-venv/bin/python tests/metrics/anchors/compute_anchors.py

It prints one JSON object; the tests pin those numbers. The inputs come from `anchor_inputs`,
which the tests import, so both sides score the same arrays (no random generator involved).
"""

from __future__ import annotations

import json
import math

import numpy as np


def anchor_inputs(case: str) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (confidence, correct) pairs: "distinct" (N = 200, no ties), "tied" (N = 157,
    confidences rounded to 0.05, ties straddle equal-mass splits), "overconfident" (N = 1000)."""
    golden, root2 = (math.sqrt(5) - 1) / 2, math.sqrt(2)
    if case == "distinct":
        i = np.arange(200)
        c = (0.5 + i * golden) % 1.0
        return c, (i * root2 + 0.1) % 1.0 < c
    if case == "tied":
        i = np.arange(157)
        c = np.round(((0.3 + i * golden) % 1.0) * 20) / 20
        return c, (i * root2) % 1.0 < c
    if case == "overconfident":
        i = np.arange(1000)
        c = 0.5 + 0.5 * ((i * golden) % 1.0)
        return c, (i * root2 + 0.3) % 1.0 < c - 0.15
    raise ValueError(case)


def main() -> None:
    from importlib.metadata import version

    import calibration as cal  # uncertainty-calibration, what HELM calls
    from lm_polygraph.ue_metrics.pred_rej_area import PredictionRejectionArea
    from lm_polygraph.ue_metrics.ue_metric import get_random_scores, normalize_metric
    from uncertainty_metrics.numpy.general_calibration_error import (
        GeneralCalibrationError,
        get_adaptive_bins,
    )

    out: dict = {
        "versions": {
            p: version(p)
            for p in ("lm-polygraph", "uncertainty-calibration", "uncertainty-metrics", "numpy")
        }
    }
    pra = PredictionRejectionArea()
    for case in ("distinct", "tied", "overconfident"):
        c, y = anchor_inputs(case)
        target = y.astype(float)
        row: dict = {}
        if case != "tied":  # lm-polygraph and HELM break ties arbitrarily (np.argsort)
            score = np.log(c / (1.0 - c + 1e-9)) * 3.0 - 7.0  # not a probability
            # lm-polygraph takes uncertainty (higher = less certain): pass -score.
            area = pra(-score, target)
            oracle = pra(-target, target)
            random = get_random_scores(pra, target)  # 1000 seeded shuffles
            row["lmpg_pra"] = float(area)
            row["lmpg_oracle"] = float(oracle)
            row["lmpg_random"] = float(random)
            row["lmpg_prr"] = float(normalize_metric(area, oracle, random))
            row["helm_selective_cov_acc_area"] = float(cal.get_selective_stats(c, y.astype(int))[0])
        row["helm_ece_10_bin"] = float(cal.get_ece_em(c, y.astype(int), num_bins=10))
        row["helm_ece_7_bin"] = float(cal.get_ece_em(c, y.astype(int), num_bins=7))
        gce = GeneralCalibrationError("adaptive", True, False, "l1")
        for bins in (10, 15):
            ace = gce.get_calibration_error(c, target, get_adaptive_bins(c, bins), "l1", bins)
            row[f"um_ace_{bins}"] = float(ace)
        out[case] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
