"""Platt scaling (Platt 1999): p = sigmoid(a · logit(c) + b), fitted by maximum likelihood.

The feature is x = logit(clip(c, eps, 1 - eps)), so confidences of exactly 0 or 1 stay finite.
The fit is `calibbench.recalibration.logistic.fit_logistic`, with betacal's tiny ridge: finite,
and defined, even when confidence separates correct from wrong answers (the map is then close to
a step; Platt's own smoothed targets, `target_smoothing=True`, avoid that).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, logit

from calibbench.recalibration.base import ScalarCalibrator
from calibbench.recalibration.degenerate import CONSTANT, is_degenerate, laplace_accuracy
from calibbench.recalibration.logistic import check_eps, fit_logistic


class PlattScaler(ScalarCalibrator):
    """p = sigmoid(a · logit(clip(c, eps, 1 - eps)) + b), (a, b) by maximum likelihood.

    target_smoothing: fit to Platt's targets (N+ + 1) / (N+ + 2) for correct answers and
    1 / (N- + 2) for wrong ones instead of 1 and 0 (N+ correct, N- wrong); this keeps a finite
    slope on separable data. a may come out negative (confidence anti-correlated with
    correctness); the map is increasing when a > 0. Degenerate data (all correct, all wrong, or a
    single distinct clipped confidence) give the constant (k + 1) / (n + 2), stored as a = 0,
    b = logit of it, with fallback_ = "constant". min_items = 2.
    Learned: a_, b_ (floats), fallback_ ("" or "constant").
    """

    name = "platt"
    order: ClassVar[int] = 2
    min_items: ClassVar[int] = 2
    learned: ClassVar[tuple[str, ...]] = ("a", "b", "fallback")

    def __init__(self, target_smoothing: bool = False, eps: float = 1e-12):
        self.target_smoothing = target_smoothing
        self.eps = eps

    def _params(self) -> dict[str, Any]:
        return {"target_smoothing": self.target_smoothing, "eps": self.eps}

    def _feature(self, confidence: np.ndarray) -> np.ndarray:
        return logit(np.clip(confidence, self.eps, 1.0 - self.eps))

    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        check_eps(self.name, self.eps)
        x = self._feature(confidence)
        if is_degenerate(x, correct):
            self.a_, self.b_ = 0.0, float(logit(laplace_accuracy(correct)))
            self.fallback_ = CONSTANT
            return
        targets = correct.astype(np.float64)
        if self.target_smoothing:
            n_pos = int(np.count_nonzero(correct))
            n_neg = len(correct) - n_pos
            targets = np.where(correct, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        a, b = fit_logistic(x[:, None], targets)
        self.a_, self.b_, self.fallback_ = float(a), float(b), ""

    def _predict(self, confidence: np.ndarray) -> np.ndarray:
        return expit(self.a_ * self._feature(confidence) + self.b_)
