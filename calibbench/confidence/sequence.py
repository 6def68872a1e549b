"""Sequence-level confidence from the log-probs of a generated answer's tokens.

Given the natural-log probabilities l_1..l_n of the n generated tokens:

- pavg (`mean_token_probability`) = (1/n) sum_i exp(l_i): the mean token probability, known to be
  over-optimistic (a long answer of confident filler tokens scores high);
- geometric mean (`geometric_mean_probability`) = exp((1/n) sum_i l_i), i.e. exp(-per-token NLL);
- minimum (`min_token_probability`) = min_i exp(l_i): the weakest link.

A completion keeps the log-prob of the token that ended it (see
`calibbench.models.base.Completion`), so even an empty answer has n >= 1. An empty list means
the log-probs are missing (an API server that drops the stop tokens, or records collected
before that convention): the three scores raise InputError then, and `token_signals`, which
graders call, marks every signal missing ("no signal") rather than returning a NaN by accident.
`sampling_agreement` and `p_true` need other evidence: sampled answers, or the model's own
judgement of its answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import expit

from calibbench.errors import InputError


def _logprobs(token_logprobs: Sequence[float]) -> np.ndarray:
    lp = np.asarray(token_logprobs, dtype=np.float64)
    if lp.ndim != 1:
        raise InputError(f"token_logprobs: expected a 1-D sequence, got shape {lp.shape}")
    if lp.size == 0:
        raise InputError(
            "token_logprobs: empty, so there is no token-level signal; a completion keeps the "
            "log-prob of the token that ended it, so collect the records again with this "
            "version (an API server that drops stop tokens gives none: see token_signals)"
        )
    if np.any(np.isnan(lp)) or np.any(lp > 1e-9):
        raise InputError("token_logprobs: log-probabilities must be <= 0 and not NaN")
    return np.minimum(lp, 0.0)


def mean_token_probability(token_logprobs: Sequence[float]) -> float:
    """pavg = mean_i exp(l_i) in [0, 1]; InputError for an empty list."""
    lp = _logprobs(token_logprobs)
    return float(np.exp(lp).mean())


def geometric_mean_probability(token_logprobs: Sequence[float]) -> float:
    """exp(mean_i l_i) in [0, 1]; InputError for an empty list."""
    lp = _logprobs(token_logprobs)
    return float(np.exp(lp.mean()))


def min_token_probability(token_logprobs: Sequence[float]) -> float:
    """min_i exp(l_i) in [0, 1]; InputError for an empty list."""
    lp = _logprobs(token_logprobs)
    return float(np.exp(lp.min()))


def token_signals(token_logprobs: Sequence[float]) -> dict[str, float]:
    """The token-level signals of a graded answer, by their column names (see
    `calibbench.confidence.signals`): "confidence" (pavg), "geometric_mean" and "min_token_prob".

    An empty list is "no signal": every column is missing (NaN), which the recalibration
    protocol counts as a missing confidence. Graders call this rather than the three functions
    so that only a completion stored without log-probs is missing; bad log-probs raise
    InputError.
    """
    if len(token_logprobs) == 0:
        return dict.fromkeys(("confidence", "geometric_mean", "min_token_prob"), math.nan)
    return {
        "confidence": mean_token_probability(token_logprobs),
        "geometric_mean": geometric_mean_probability(token_logprobs),
        "min_token_prob": min_token_probability(token_logprobs),
    }


def sampling_agreement(
    answer: str, samples: Sequence[str], same: Callable[[str, str], bool] | None = None
) -> float:
    """Fraction of `samples` that agree with `answer` (exact equality unless `same` says).

    Pass a task's own equivalence as `same` (e.g. equality after answer normalisation). NaN when
    there are no samples.
    """
    if not samples:
        return math.nan
    agree = same or (lambda a, b: a == b)
    return sum(bool(agree(answer, s)) for s in samples) / len(samples)


def p_true(yes_logprob: float, no_logprob: float) -> float:
    """P(True) = P(yes) / (P(yes) + P(no)), from the log-probs of the two answer tokens."""
    if math.isnan(yes_logprob) or math.isnan(no_logprob):
        raise InputError("p_true: log-probabilities must not be NaN")
    return float(expit(yes_logprob - no_logprob))
