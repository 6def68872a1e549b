"""The raw confidence, unfitted: the baseline every method is compared with (as method `raw` of
each confidence signal: an option probability, pavg, P(True), ...)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from calibbench.recalibration.base import ScalarCalibrator

T = TypeVar("T", bound="RawConfidence")


class RawConfidence(ScalarCalibrator):
    """The identity map: `predict(c)` is c. Learns nothing, so it needs no calibration items."""

    name = "raw"
    order: ClassVar[int] = 0
    min_items: ClassVar[int] = 0

    def _params(self) -> dict[str, Any]:
        return {}

    def fit(self: T, X: ArrayLike, y: ArrayLike) -> T:
        return self

    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        return None

    def _predict(self, confidence: np.ndarray) -> np.ndarray:
        return confidence
