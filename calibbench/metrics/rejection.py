"""Rejection metrics of confidence signals that need not be probabilities: the area under the
accuracy-rejection curve (AURAC) and the prediction-rejection ratio (PRR).

Inputs are `score` (any finite real number; higher = more confident, e.g. a negated entropy or a
cluster count) and `correct` (bool), both of shape (..., N): the last axis holds N predictions and
leading axes are independent batches. 1-D input gives a Python float, batched input an ndarray of
shape (...). Only the order of the scores matters, so no mapping to [0, 1] is needed.

Rejecting the r least confident answers leaves k = N - r; acc(k) is the accuracy of the k most
confident answers. Tied scores take the expectation over random tie-breaking (as in `aurc`), so the
result does not depend on the input order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from calibbench.errors import InputError
from calibbench.metrics.scores import aurc
from calibbench.validation import as_correct, check_same_shape, scalar_or_array


def _as_score_pair(score: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate (score, correct) of equal shape (..., N); scores finite, any range."""
    try:
        s = np.asarray(score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"score: expected numbers, got {type(score).__name__} ({exc})") from None
    if s.ndim == 0 or s.shape[-1] == 0:
        raise InputError(f"score: expected a non-empty array, got shape {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        first = tuple(np.argwhere(bad)[0])
        raise InputError(
            f"score: {int(bad.sum())} NaN or infinite value(s), first at index {first}; give "
            "answers without a signal an explicit value, or leave them out, before scoring"
        )
    y = as_correct(correct)
    check_same_shape(s, y, ("score", "correct"))
    return s, y


def _aurac(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AURAC of validated arrays: 1 - AURC of the scores' ranks (AURC depends only on order)."""
    ranks = rankdata(s, axis=-1) / s.shape[-1]  # in (0, 1], ties share a rank
    return 1.0 - np.asarray(aurc(ranks, y))


def aurac(score: ArrayLike, correct: ArrayLike) -> float | np.ndarray:
    """Area under the accuracy-rejection curve, (1/N) Σ_{k=1..N} acc(k), in [0, 1]; higher is
    better.

    acc(k) is the accuracy of the k answers with the highest score, so the curve runs from
    rejecting nothing (k = N, the overall accuracy) to keeping only the most confident answer.
    Equals 1 - `aurc` on the same ordering, HELM's `selective_cov_acc_area` and lm-polygraph's
    `PredictionRejectionArea` (max_rejection 1) with 0/1 correctness as the quality (their sorts
    break ties arbitrarily; here ties take the expectation over tie-breaking).
    Raises InputError for non-finite scores, non-binary outcomes or mismatched shapes.
    """
    s, y = _as_score_pair(score, correct)
    return scalar_or_array(_aurac(s, y))


def prr(score: ArrayLike, correct: ArrayLike) -> float | np.ndarray:
    """Prediction-rejection ratio: AURAC normalised between a random and the oracle ordering.

    PRR = (AURAC - AURAC_random) / (AURAC_oracle - AURAC_random), as lm-polygraph defines it
    (`PredictionRejectionArea` normalised by `normalize_metric` in `UEManager`, with 0/1
    correctness as the quality). AURAC_random is the accuracy a (the exact expectation over random
    orderings; lm-polygraph averages 1000 seeded shuffles instead), and the oracle ranks every
    correct answer first: with C correct of N, AURAC_oracle = (C/N)·(1 + H_N - H_C), H_n the n-th
    harmonic number. PRR is 1 for the oracle ordering, 0 in expectation for a random one, and
    negative when confidence is anti-correlated with correctness (the reversed oracle gives
    (AURAC_reversed - a) / (AURAC_oracle - a) < 0).

    Undefined when all answers are correct or all wrong (the oracle is then no better than
    random): 1-D input raises InputError, and in batched input such rows are NaN. Also raises
    InputError for non-finite scores, non-binary outcomes or mismatched shapes.
    """
    s, y = _as_score_pair(score, correct)
    n = s.shape[-1]
    n_correct = y.sum(axis=-1)
    defined = (n_correct > 0) & (n_correct < n)
    if s.ndim == 1 and not defined:
        raise InputError(
            f"prr: undefined because all {n} answers are "
            f"{'correct' if n_correct == n else 'wrong'}, so no ordering beats a random one; it "
            "needs at least one correct and one wrong answer"
        )
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])
    acc = n_correct / n
    oracle = acc * (1.0 + harmonic[n] - harmonic[n_correct])
    gain = np.where(defined, oracle - acc, 1.0)
    return scalar_or_array(np.where(defined, (_aurac(s, y) - acc) / gain, np.nan))
