"""Beta calibration (Kull, Silva Filho & Flach 2017), the three-parameter "abm" version:
p = sigmoid(a · ln c - b · ln(1 - c) + intercept) with a, b >= 0, c clipped to [eps, 1 - eps].

Fitted as in the authors' betacal package: a logistic regression on the features
[ln c, -ln(1 - c)] (`calibbench.recalibration.logistic.fit_logistic`, with betacal's tiny ridge);
if a coefficient comes out negative, that feature is dropped (a first, when both are) and the
fit repeated on the other. Where betacal stops, this goes one step further: if the remaining
coefficient is negative too, it is dropped as well, leaving the intercept-only fit (the
calibration accuracy). With a, b >= 0 the map is non-decreasing in c.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, logit

from calibbench.recalibration.base import ScalarCalibrator
from calibbench.recalibration.degenerate import CONSTANT, is_degenerate, laplace_accuracy
from calibbench.recalibration.logistic import check_eps, fit_logistic


class BetaCalibrator(ScalarCalibrator):
    """p = sigmoid(a · ln c - b · ln(1 - c) + intercept), a, b >= 0; see the module docstring.

    Degenerate data (all correct, all wrong, or a single distinct clipped confidence) give the
    constant (k + 1) / (n + 2), stored as a = b = 0 and intercept = its logit, with
    fallback_ = "constant". min_items = 3 (three parameters).
    Learned: a_, b_, intercept_ (floats), fallback_ ("" or "constant").
    """

    name = "beta"
    order: ClassVar[int] = 5
    min_items: ClassVar[int] = 3
    learned: ClassVar[tuple[str, ...]] = ("a", "b", "intercept", "fallback")

    def __init__(self, eps: float = 1e-12):
        self.eps = eps

    def _params(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def _features(self, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.clip(confidence, self.eps, 1.0 - self.eps)
        return np.log(c), -np.log1p(-c)

    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        check_eps(self.name, self.eps)
        features = np.column_stack(self._features(confidence))
        if is_degenerate(features[:, 0], correct):
            self.a_, self.b_ = 0.0, 0.0
            self.intercept_ = float(logit(laplace_accuracy(correct)))
            self.fallback_ = CONSTANT
            return
        kept = [0, 1]
        while True:
            w = fit_logistic(features[:, kept], correct.astype(np.float64))
            negative = [j for j, coef in zip(kept, w, strict=False) if coef < 0]
            if not negative:
                break
            kept.remove(negative[0])
        coef = np.zeros(2)
        coef[kept] = w[:-1]
        self.a_, self.b_, self.intercept_ = float(coef[0]), float(coef[1]), float(w[-1])
        self.fallback_ = ""

    def _predict(self, confidence: np.ndarray) -> np.ndarray:
        log_c, minus_log_1mc = self._features(confidence)
        return expit(self.a_ * log_c + self.b_ * minus_log_1mc + self.intercept_)
