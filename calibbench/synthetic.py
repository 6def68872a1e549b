"""Synthetic answer-level records with a known calibration map, for demos and metric checks.

A model states confidence c ~ Beta(a, b); the answer is correct with probability
sigmoid(logit(c) / tau). tau > 1 makes the stated confidences more extreme than the truth
(over-confidence, as with most LLMs), tau = 1 is perfectly calibrated. The records say they are
synthetic in their `source` column, so they can never be mistaken for a model's output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from calibbench.errors import InputError


def true_accuracy(confidence: np.ndarray, tau: float) -> np.ndarray:
    """P(correct | stated confidence c) = sigmoid(logit(c) / tau), elementwise."""
    return expit(logit(confidence) / tau)


def overconfident_answers(
    n: int, seed: int, tau: float = 2.0, a: float = 5.0, b: float = 1.5
) -> pd.DataFrame:
    """`n` records with columns item_id, confidence, correct, p_true, source (seeded)."""
    if n < 1 or tau <= 0 or a <= 0 or b <= 0:
        raise InputError(
            f"synthetic records: need n >= 1 and tau, a, b > 0; got {n}, {tau}, {a}, {b}"
        )
    rng = np.random.default_rng(seed)
    confidence = np.clip(rng.beta(a, b, size=n), 1e-6, 1 - 1e-6)
    p_true = true_accuracy(confidence, tau)
    return pd.DataFrame(
        {
            "item_id": [f"synthetic-{i:06d}" for i in range(n)],
            "confidence": confidence,
            "correct": rng.random(n) < p_true,
            "p_true": p_true,
            "source": f"synthetic(tau={tau:g}, a={a:g}, b={b:g}, seed={seed})",
        }
    )
