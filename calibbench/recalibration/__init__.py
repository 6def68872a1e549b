"""Recalibration methods, fitted on the calibration split and applied to the test split.

Every per-item method follows one contract (`base.Recalibrator`: fit, predict, to_json /
from_json, inputs) and lives in a module of `methods/`, which registers it; `all_methods()` lists
them in table order. Temperature scaling rescales an item's option log-likelihoods; the scalar
calibrators map one confidence per item to a calibrated probability of being correct: Platt
scaling, isotonic regression, histogram binning and beta calibration; `raw` is the unfitted
baseline. `compare_methods` runs the protocol: fit on calibration items, score on test items,
pick the best. Next-token temperatures are fitted from one streamed pass by
`TokenTemperatureScaler`.
"""

from calibbench.recalibration.base import (
    REGISTRY,
    NotApplicable,
    Recalibrator,
    ScalarCalibrator,
    all_methods,
    get_method,
)
from calibbench.recalibration.methods.beta import BetaCalibrator
from calibbench.recalibration.methods.histogram import HistogramBinningCalibrator
from calibbench.recalibration.methods.isotonic import IsotonicCalibrator
from calibbench.recalibration.methods.platt import PlattScaler
from calibbench.recalibration.methods.raw import RawConfidence
from calibbench.recalibration.methods.temperature import TemperatureScaler
from calibbench.recalibration.protocol import compare_methods
from calibbench.recalibration.sweep import DEFAULT_TEMPERATURES, answer_sweep, token_sweep
from calibbench.recalibration.token_temperature import TokenTemperatureScaler

__all__ = [
    "DEFAULT_TEMPERATURES",
    "REGISTRY",
    "BetaCalibrator",
    "HistogramBinningCalibrator",
    "IsotonicCalibrator",
    "NotApplicable",
    "PlattScaler",
    "RawConfidence",
    "Recalibrator",
    "ScalarCalibrator",
    "TemperatureScaler",
    "TokenTemperatureScaler",
    "all_methods",
    "answer_sweep",
    "compare_methods",
    "get_method",
    "token_sweep",
]
