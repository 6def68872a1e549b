"""Uncertainty at the level of meaning: sampled answers clustered by an equivalence test, and the
signals of the clusters (Kuhn, Gal and Farquhar 2023, "Semantic uncertainty").

Answers are clustered greedily in sample order: an answer joins the first cluster whose first
member it is equivalent to, both ways (`same(a, b)` and `same(b, a)`), else it starts a new
cluster; labels are 0, 1, ... in order of first appearance. The equivalence is the caller's: a
task's normalised-answer equality, an entailment model's judgement, or programs' equal outputs.

From the labels (n answers, C clusters), with p_c the share of cluster c:

- `semantic_entropy`: -sum_c p_c log p_c in nats. Discrete: p_c = n_c / n. Weighted by sequence
  probability (given the answers' sequence log-probs l_i): p_c = sum_{i in c} exp(l_i) /
  sum_i exp(l_i), computed with log-sum-exp.
- `n_semantic_sets`: C.
- `largest_cluster_share`: max_c n_c / n, a confidence in [1/n, 1].

Entropies and set counts are not probabilities: the recalibration methods fitted on a
calibration split turn them into confidences, never a hand-set formula.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import logsumexp

from calibbench.errors import InputError


def cluster_answers(
    answers: Sequence[str], same: Callable[[str, str], bool] | None = None
) -> np.ndarray:
    """Cluster labels (n,) int64 of `answers` (see the module docstring); `same` defaults to
    exact equality. InputError for no answers."""
    if len(answers) == 0:
        raise InputError("cluster_answers: no answers to cluster (no samples)")
    equal = same or (lambda a, b: a == b)
    heads: list[str] = []
    labels = np.empty(len(answers), dtype=np.int64)
    for i, answer in enumerate(answers):
        for c, head in enumerate(heads):
            if equal(answer, head) and equal(head, answer):
                labels[i] = c
                break
        else:
            labels[i] = len(heads)
            heads.append(answer)
    return labels


def _counts(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise InputError("semantic signals: labels must be a non-empty 1-D array (no samples?)")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise InputError("semantic signals: labels must be non-negative integers")
    counts = np.bincount(labels)
    return counts[counts > 0]


def semantic_entropy(
    labels: Sequence[int] | np.ndarray, logprobs: Sequence[float] | np.ndarray | None = None
) -> float:
    """Entropy (nats) of the answers' distribution over clusters: discrete, or weighted by the
    sequence probabilities exp(logprobs) (n,) when given (see the module docstring)."""
    counts = _counts(labels)
    if logprobs is None:
        p = counts / counts.sum()
    else:
        lp = np.asarray(logprobs, dtype=np.float64)
        labels = np.asarray(labels)
        if lp.shape != labels.shape:
            raise InputError(
                f"semantic_entropy: {lp.size} log-probs for {labels.size} answers; give one each"
            )
        if not np.all(np.isfinite(lp)):
            raise InputError("semantic_entropy: log-probs must be finite (an answer without one?)")
        per_cluster = np.array([logsumexp(lp[labels == c]) for c in np.unique(labels)])
        p = np.exp(per_cluster - logsumexp(per_cluster))
    p = p[p > 0]
    return float(max(0.0, -np.sum(p * np.log(p))))


def n_semantic_sets(labels: Sequence[int] | np.ndarray) -> int:
    """The number of clusters among the answers."""
    return int(_counts(labels).size)


def largest_cluster_share(labels: Sequence[int] | np.ndarray) -> float:
    """The largest cluster's share of the answers, in [1/n, 1]."""
    counts = _counts(labels)
    return float(counts.max() / counts.sum())
