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

Equivalence judged by a model (the evaluated model itself, for answers that normalisation
does not match): `same_meaning_context(question, a, b)` asks whether answer a means the same as
answer b, in the format of Kadavath et al.'s P(True) question, and the scored continuations
`SAME_MEANING_CONTINUATIONS` (" (A)" yes, " (B)" no) give P(yes) = P(A) / (P(A) + P(B));
`judged_equivalence` turns those judgements into `same(a, b)`: equal texts are the same, and
two different texts are when P(yes) > 1/2 asked in both orders (bidirectional, as Kuhn et al.
require entailment both ways).

Entropies and set counts are not probabilities: the recalibration methods fitted on a
calibration split turn them into confidences, never a hand-set formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import logsumexp

from calibbench.errors import InputError

#: Continuations scored after `same_meaning_context`: yes, no.
SAME_MEANING_CONTINUATIONS = (" (A", " (B")


def same_meaning_context(question: str, a: str, b: str) -> str:
    """The judge's question whether answer `a` to `question` means the same as answer `b`,
    ending before the scored continuations `SAME_MEANING_CONTINUATIONS`."""
    return (
        f"Question: {question}\nAnswer 1: {a}\nAnswer 2: {b}\n"
        "Does Answer 1 mean the same as Answer 2, as an answer to the question?\n"
        " (A) Yes\n (B) No\nThe correct option is:"
    )


def judged_equivalence(p_yes: dict[tuple[str, str], float]) -> Callable[[str, str], bool]:
    """`same(a, b)` from judgements `p_yes[(a, b)]` (P(yes) that a means the same as b): true
    for equal texts, else when both orders' P(yes) exceed 1/2. InputError names a pair of
    different texts without a judgement."""

    def same(a: str, b: str) -> bool:
        if a == b:
            return True
        for pair in ((a, b), (b, a)):
            if pair not in p_yes:
                raise InputError(f"judged_equivalence: no judgement of {pair[0]!r} against "
                                 f"{pair[1]!r}")  # fmt: skip
        return p_yes[(a, b)] > 0.5 and p_yes[(b, a)] > 0.5

    return same


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


#: The signals of clustered answers, in table order (see `cluster_signals`).
CLUSTER_SIGNALS = ("largest_cluster_share", "semantic_entropy", "semantic_entropy_weighted",
                   "n_semantic_sets")  # fmt: skip


def cluster_signals(
    labels: Sequence[int] | np.ndarray, logprobs: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Every CLUSTER_SIGNALS value of answers with cluster `labels` (n,) and sequence log-probs
    `logprobs` (n,): the weighted entropy is NaN when any log-prob is missing (not finite, e.g.
    an answer stored without log-probs), the others never are."""
    weighted = (
        semantic_entropy(labels, logprobs)
        if all(math.isfinite(lp) for lp in logprobs)
        else math.nan
    )
    values = (largest_cluster_share(labels), semantic_entropy(labels), weighted,
              float(n_semantic_sets(labels)))  # fmt: skip
    return dict(zip(CLUSTER_SIGNALS, values, strict=True))


def largest_cluster_share(labels: Sequence[int] | np.ndarray) -> float:
    """The largest cluster's share of the answers, in [1/n, 1]."""
    counts = _counts(labels)
    return float(counts.max() / counts.sum())
