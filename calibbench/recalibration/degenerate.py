"""The fallback every scalar calibrator shares when its calibration data cannot teach it a map.

Calibration data are degenerate when the outcomes are all correct or all wrong, or when the
confidences take a single distinct value (after the method's own clipping, if any). No map from
confidence to accuracy can be learned then, so the method predicts the Laplace-smoothed accuracy
(k + 1) / (n + 2) (k correct out of n) for every input, and records `fallback_ = "constant"` in
its learned state (`fallback_ = ""` after an ordinary fit) so that tables can say so.
"""

from __future__ import annotations

import numpy as np

#: Value of `fallback_` for a method that predicts the constant Laplace-smoothed accuracy.
CONSTANT = "constant"


def is_degenerate(confidence: np.ndarray, correct: np.ndarray) -> bool:
    """Whether (N,) confidences and bool outcomes are all one class or one distinct confidence."""
    k = int(np.count_nonzero(correct))
    return k in (0, len(correct)) or bool(np.all(confidence == confidence[0]))


def laplace_accuracy(correct: np.ndarray) -> float:
    """(k + 1) / (n + 2) for k correct answers out of n: the constant a degenerate fit predicts."""
    return (int(np.count_nonzero(correct)) + 1) / (len(correct) + 2)
