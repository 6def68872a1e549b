"""Platt scaling (Platt 1999): p = sigmoid(a · logit(c) + b), fitted by maximum likelihood.

The feature is x = logit(clip(c, eps, 1 - eps)), so confidences of exactly 0 or 1 stay finite.
`fit_logistic` (Newton's method with a backtracking line search) is the maximum-likelihood
logistic regression shared with beta calibration. It adds the tiny ridge 1e-11 · |w|² / 2 on the
coefficients (not the intercept) that the betacal package uses (scikit-learn C = 1e11): it moves
an ordinary fit by a relative ~1e-11, and keeps the fit finite when confidence separates correct
from wrong answers perfectly, where the unpenalised slope would grow without bound (the map is
then close to a step; `target_smoothing=True` avoids that).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, logit

from calibbench.errors import InputError
from calibbench.recalibration.base import ScalarCalibrator
from calibbench.recalibration.degenerate import CONSTANT, is_degenerate, laplace_accuracy

#: Ridge on the coefficients, as in betacal (scikit-learn C = 1e11).
RIDGE = 1e-11
#: Newton stops once no parameter moves by more than this, relative to 1 + max |w|.
STEP_TOL = 1e-10
MAX_NEWTON_STEPS = 200


def _cross_entropy(
    z: np.ndarray, targets: np.ndarray, coef: np.ndarray, ridge: float = RIDGE
) -> float:
    return float(np.sum(np.logaddexp(0.0, z) - targets * z) + 0.5 * ridge * coef @ coef)


def fit_logistic(features: np.ndarray, targets: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Maximum-likelihood logistic regression with an intercept.

    features: (N, K) floats; targets: (N,) in [0, 1] (0/1 outcomes, or soft targets). Minimises
    Σ_i [log(1 + e^{z_i}) - t_i z_i] + ridge · |coef|² / 2 with z = features @ coef + intercept
    and returns (K + 1,) = (coef..., intercept). Raises RuntimeError if Newton's method fails to
    converge (the objective is strictly convex, so this signals a bug, not bad data).
    """
    n, k = features.shape
    design = np.column_stack([features, np.ones(n)])
    penalty = np.r_[np.full(k, ridge), 0.0]
    w = np.zeros(k + 1)
    z = design @ w
    loss = _cross_entropy(z, targets, w[:k], ridge)
    for _ in range(MAX_NEWTON_STEPS):
        # sigmoid(z) - t, without cancelling 1 - 1 where both are near 1
        residual = (1.0 - targets) * expit(z) - targets * expit(-z)
        grad = design.T @ residual + penalty * w
        hess = (design.T * (expit(z) * expit(-z))) @ design + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        if np.max(np.abs(step)) <= STEP_TOL * (1.0 + np.max(np.abs(w))):
            return w - step
        t = 1.0
        while True:
            trial = w - t * step
            z_trial = design @ trial
            trial_loss = _cross_entropy(z_trial, targets, trial[:k], ridge)
            # Armijo decrease, with slack for rounding once the steps reach the noise floor.
            if trial_loss <= loss - 1e-4 * t * (grad @ step) + 1e-13 * (1.0 + abs(loss)):
                break
            t *= 0.5
            if t < 1e-10:
                raise RuntimeError("fit_logistic: line search failed")
        w, z, loss = trial, z_trial, trial_loss
    raise RuntimeError(f"fit_logistic: no convergence in {MAX_NEWTON_STEPS} Newton steps")


def check_eps(name: str, eps: float) -> None:
    """Raise InputError unless 0 < eps < 0.5 (the clip of confidences before logs)."""
    if not isinstance(eps, (float, int)) or not 0.0 < eps < 0.5:
        raise InputError(f"{name}: eps must be a number in (0, 0.5), got {eps!r}")


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

    def _transform(self, confidence: np.ndarray) -> np.ndarray:
        return expit(self.a_ * self._feature(confidence) + self.b_)
