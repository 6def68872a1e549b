"""Recalibration methods, fitted on the calibration split and applied to the test split.

Temperature scaling rescales logits (an item's option log-likelihoods, or next-token logits from
one streamed pass). Scalar calibrators map one confidence per item to a calibrated probability
of being correct: Platt scaling, isotonic regression, histogram binning and beta calibration.
`compare_methods` runs the protocol: fit on calibration items, score on test items, pick the
best. Importing this package registers every method in `REGISTRY`, which
`Recalibrator.from_json` and the protocol look methods up in by name.
"""

from calibbench.recalibration.base import REGISTRY, Recalibrator, ScalarCalibrator
from calibbench.recalibration.beta import BetaCalibrator
from calibbench.recalibration.histogram import HistogramBinningCalibrator
from calibbench.recalibration.isotonic import IsotonicCalibrator
from calibbench.recalibration.platt import PlattScaler
from calibbench.recalibration.protocol import METHODS, compare_methods
from calibbench.recalibration.sweep import DEFAULT_TEMPERATURES, answer_sweep, token_sweep
from calibbench.recalibration.temperature import TemperatureScaler

__all__ = [
    "DEFAULT_TEMPERATURES",
    "METHODS",
    "REGISTRY",
    "BetaCalibrator",
    "HistogramBinningCalibrator",
    "IsotonicCalibrator",
    "PlattScaler",
    "Recalibrator",
    "ScalarCalibrator",
    "TemperatureScaler",
    "answer_sweep",
    "compare_methods",
    "token_sweep",
]
