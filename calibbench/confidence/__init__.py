"""Confidence scores for generated answers, as pure functions of per-token log-probs and samples.

Sign convention everywhere: a confidence is a probability-like number in [0, 1], higher = more
confident.
"""

from calibbench.confidence.sequence import (
    geometric_mean_probability,
    mean_token_probability,
    min_token_probability,
    p_true,
    sampling_agreement,
    token_signals,
)

__all__ = [
    "geometric_mean_probability",
    "mean_token_probability",
    "min_token_probability",
    "p_true",
    "sampling_agreement",
    "token_signals",
]
