"""The answer-level summary every table row comes from: each metric equals its own function on
the same data, the point-only metrics carry no interval and say why, and a score gets only the
ranking metrics."""

from __future__ import annotations

import numpy as np
import pytest

from calibbench.metrics.binned import adaptive_calibration_error, helm_ece, rms_calibration_error
from calibbench.metrics.rejection import aurac, prr
from calibbench.metrics.smooth import smooth_ece
from calibbench.metrics.summary import POINT_METRICS, RANKING_METRICS, answer_summary


def _data(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n)
    c = (0.3 + i * (np.sqrt(5) - 1) / 2) % 1.0
    return c, (i * np.sqrt(2)) % 1.0 < c * 0.8


def test_every_metric_is_its_function_and_intervals_bracket_it():
    c, y = _data()
    metrics = answer_summary(c, y, n_bins=15, n_resamples=200)["metrics"]
    expected = {"aurac": aurac(c, y), "prr": prr(c, y), "ace": adaptive_calibration_error(c, y, 15),
                "rmsce": rms_calibration_error(c, y), "ece_helm": helm_ece(c, y, 10),
                "smooth_ece": smooth_ece(c, y)}  # fmt: skip
    for name, value in expected.items():
        assert metrics[name]["estimate"] == pytest.approx(value, abs=1e-12), name
    for name in ("aurac", "ace", "rmsce", "ece_helm"):
        assert metrics[name]["low"] <= metrics[name]["estimate"] <= metrics[name]["high"], name
    for name in POINT_METRICS:
        assert metrics[name]["low"] is None and metrics[name]["high"] is None
        assert "not bootstrapped" in metrics[name]["reason"]


def test_a_score_gets_the_ranking_metrics_only():
    c, y = _data()
    metrics = answer_summary(np.exp(-5 * c), y, n_resamples=50, ranking_only="a score")["metrics"]
    for name, entry in metrics.items():
        if name in RANKING_METRICS:
            assert entry["estimate"] is not None, name
        else:
            assert entry["estimate"] is None and entry["reason"] == "a score", name
    # ranking metrics of a monotone map are those of the score's order (here decreasing in c)
    assert metrics["aurac"]["estimate"] == pytest.approx(aurac(-c, y), abs=1e-12)
