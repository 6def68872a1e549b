"""Calibration metrics: answer-level (binned, scores, bootstrap) and token-level (streamed).

Conventions (pinned in tests): B equal-width bins on [0, 1], bin b holds b/B <= p < (b+1)/B,
p == 1.0 in the last bin; equal-mass bins put the interior edges at the confidence quantiles;
counts are int64; NLL in nats; higher confidence = more confident.
"""

from calibbench.metrics.binned import (
    Reliability,
    adaptive_calibration_error,
    classwise_ece,
    ece,
    helm_ece,
    mce,
    reliability,
    rms_calibration_error,
    top_label_ece,
)
from calibbench.metrics.bootstrap import BootstrapCI, bootstrap_ci
from calibbench.metrics.rejection import aurac, prr
from calibbench.metrics.scores import (
    accuracy,
    aurc,
    auroc,
    brier,
    multiclass_brier,
    multiclass_nll,
    nll,
    overconfidence,
)
from calibbench.metrics.smooth import smooth_ece
from calibbench.metrics.summary import answer_summary
from calibbench.metrics.token import TokenCalibration, TokenMetrics, full_ece

__all__ = [
    "BootstrapCI",
    "Reliability",
    "TokenCalibration",
    "TokenMetrics",
    "accuracy",
    "adaptive_calibration_error",
    "answer_summary",
    "aurac",
    "aurc",
    "auroc",
    "bootstrap_ci",
    "brier",
    "classwise_ece",
    "ece",
    "full_ece",
    "helm_ece",
    "mce",
    "multiclass_brier",
    "multiclass_nll",
    "nll",
    "overconfidence",
    "prr",
    "reliability",
    "rms_calibration_error",
    "smooth_ece",
    "top_label_ece",
]
