"""Next-token distributions from top-k log-probs: the k alternatives plus one unseen-mass bucket.

APIs report, per position, only the k most likely tokens' log-probs. Token-level metrics over
them use a (k + 1)-entry distribution: the k reported probabilities, best first, and a last
entry holding the unseen mass 1 - sum of the k. The target is the slot of the reported token, or
the bucket (index k) when it is not among the k. The bucket counts as one token: temperature
scales it as one (metrics away from T = 1 differ from those of the full distribution), and argmax
accuracy counts an unseen target as correct where the bucket holds the most mass. Every
accumulator built here carries an approximation label saying so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration

#: Logit of padding slots (fewer than k alternatives reported) and of an empty bucket: the most
#: negative float32, finite because the token kernel rejects -inf.
PAD_LOGIT = float(np.finfo(np.float32).min)

#: Largest log-prob accepted (rounding can put a near-certain token's log-prob just above 0).
MAX_LOGPROB = 1e-4

#: Two log-probs closer than this (nats) are the same token's: a reported token's log-prob and
#: its entry among the alternatives are the same number.
MATCH_ATOL = 1e-6


def topk_label(k: int) -> str:
    """The approximation label of top-k accumulators, e.g. "top-5 + unseen-mass bucket"."""
    return f"top-{k} + unseen-mass bucket"


def topk_calibration(
    k: int, n_bins: int = 15, temperatures: Sequence[float] = (1.0,)
) -> TokenCalibration:
    """A `TokenCalibration` over (k + 1)-entry top-k distributions, labelled as such."""
    _check_k(k)
    return TokenCalibration(k + 1, n_bins, temperatures, approximation=topk_label(k))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k: expected a positive number of alternatives, got {k!r}")


def topk_bucket_logits(
    top_logprobs: Sequence[Sequence[float]], target_logprobs: Sequence[float], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, k + 1) float64 and targets (N,) int64 of N top-k distributions.

    top_logprobs: per position, the reported alternatives' log-probs (nats) in any order; at most
    the k largest are kept (APIs may add the chosen token as a (k + 1)-th), fewer are padded with
    `PAD_LOGIT` (as is -inf). target_logprobs: log p of the actual next token at each position.
    Row i is [k log-probs best first, log(unseen mass)] with unseen mass 1 - sum exp(top-k), at
    least p(target) when the target is not among the k, and `PAD_LOGIT` when it is 0. The target
    is the first slot whose log-prob equals the target's (within `MATCH_ATOL`), else k.
    """
    _check_k(k)
    if len(top_logprobs) != len(target_logprobs):
        raise InputError(
            f"top_logprobs: {len(top_logprobs)} positions, but target_logprobs has "
            f"{len(target_logprobs)}"
        )
    n = len(top_logprobs)
    logits = np.full((n, k + 1), PAD_LOGIT)
    targets = np.full(n, k, np.int64)
    for i, (row, target) in enumerate(zip(top_logprobs, target_logprobs, strict=True)):
        top = np.sort(np.asarray(row, np.float64))[::-1][:k]
        if not (np.all(top <= MAX_LOGPROB) and target <= MAX_LOGPROB):
            raise InputError(f"top_logprobs: position {i} holds a NaN or positive log-prob")
        logits[i, : len(top)] = np.maximum(top, PAD_LOGIT)
        match = np.flatnonzero(np.abs(top - target) <= MATCH_ATOL)
        unseen = 1.0 - np.exp(top).sum()
        if len(match):
            targets[i] = match[0]
        else:
            unseen = max(unseen, float(np.exp(target)))
        if unseen > 0:
            logits[i, k] = np.log(unseen)
    return logits, targets
