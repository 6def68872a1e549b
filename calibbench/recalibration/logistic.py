"""Maximum-likelihood logistic regression with betacal's tiny ridge: the fit behind Platt
scaling and beta calibration.

Minimises Σ_i [log(1 + e^{z_i}) - t_i z_i] + ridge · |coef|² / 2 with z = features @ coef +
intercept, by Newton's method with a backtracking line search. The ridge 1e-11 on the
coefficients (not the intercept) is the one the betacal package uses (scikit-learn C = 1e11): it
moves an ordinary fit by a relative ~1e-11 and keeps the optimum finite when the features
separate the outcomes, fully or partly (a signal that takes few values, such as sampling
agreement in {0, 1/2, 1}, often does). There the objective is flat along the separating
direction and Newton's steps stop shrinking before they reach the float noise: the fit then ends
where no step lowers the objective any more, or after `MAX_NEWTON_STEPS`, at the lowest
objective reached (the numerical optimum), instead of failing.

Why not scikit-learn's `LogisticRegression(C=1e11)`: on 600 random calibration sets (3-valued,
4-valued and continuous confidences, 4-60 items; `bench/sklearn_reference.py`,
bench/results/sklearn_reference.md) its `newton-cholesky` and `lbfgs` solvers stopped above
this fit's objective on 74 and 65 of them (by up to 5e-10 and 3e-8 relative; never below), with
slopes up to 13 % and 290 % away, because they stop on a gradient tolerance while the objective
is still falling along a flat direction; they also took 4 and 160 times as long per fit.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from calibbench.errors import InputError

#: Ridge on the coefficients, as in betacal (scikit-learn C = 1e11).
RIDGE = 1e-11
#: Newton stops once no parameter moves by more than this, relative to 1 + max |w|.
STEP_TOL = 1e-10
MAX_NEWTON_STEPS = 200


def cross_entropy(
    z: np.ndarray, targets: np.ndarray, coef: np.ndarray, ridge: float = RIDGE
) -> float:
    """The penalised objective at logits z (N,) for targets (N,) and coefficients coef (K,)."""
    return float(np.sum(np.logaddexp(0.0, z) - targets * z) + 0.5 * ridge * coef @ coef)


def fit_logistic(features: np.ndarray, targets: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Logistic regression with an intercept (see the module docstring).

    features: (N, K) floats; targets: (N,) in [0, 1] (0/1 outcomes, or soft targets). Returns
    (K + 1,) = (coef..., intercept). Always returns: the objective is strictly convex, and a
    step that cannot lower it any further ends the fit.
    """
    n, k = features.shape
    design = np.column_stack([features, np.ones(n)])
    penalty = np.r_[np.full(k, ridge), 0.0]
    w = np.zeros(k + 1)
    z = design @ w
    loss = cross_entropy(z, targets, w[:k], ridge)
    for _ in range(MAX_NEWTON_STEPS):
        # sigmoid(z) - t, without cancelling 1 - 1 where both are near 1
        residual = (1.0 - targets) * expit(z) - targets * expit(-z)
        grad = design.T @ residual + penalty * w
        hess = (design.T * (expit(z) * expit(-z))) @ design + np.diag(penalty)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:  # flat in some direction: the least-squares step
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        if np.max(np.abs(step)) <= STEP_TOL * (1.0 + np.max(np.abs(w))):
            return w - step
        t = 1.0
        while True:
            trial = w - t * step
            z_trial = design @ trial
            trial_loss = cross_entropy(z_trial, targets, trial[:k], ridge)
            # Armijo decrease, with slack for rounding once the steps reach the noise floor.
            if trial_loss <= loss - 1e-4 * t * (grad @ step) + 1e-13 * (1.0 + abs(loss)):
                break
            t *= 0.5
            if t < 1e-10:
                return w  # no step lowers the objective: the numerical optimum
        w, z, loss = trial, z_trial, trial_loss
    return w  # the objective fell at every step: w has the lowest one


def check_eps(name: str, eps: float) -> None:
    """Raise InputError unless 0 < eps < 0.5 (the clip of confidences before logs)."""
    if not isinstance(eps, (float, int)) or not 0.0 < eps < 0.5:
        raise InputError(f"{name}: eps must be a number in (0, 0.5), got {eps!r}")
