"""Confidence signals, each declared once: the task kinds whose graded tables carry it, and what
it needs beyond the task's own requests.

A signal is a column of a task's graded table holding, per item, how confident the model is that
its answer is correct. Most are probabilities (in [0, 1], higher = more confident). Some are
scores in their own units (`probability` False: an entropy in nats, a count of answer
clusters), some of them higher = less confident: for those `feature` maps the column to a value
in (0, 1] that rises with confidence (a fixed monotone map, so ranking metrics of the feature
are those of the score), which the fitted recalibration methods take as their input; the
unfitted `raw` method reports only ranking metrics for them, never a calibration error of a
hand-set mapping. Every recalibration method is fitted on every signal a model x task pair has,
and the paper compares them. The tasks compute the columns; this registry is what the workflow
and the paper ask which signals a pair has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibbench.errors import InputError


@dataclass(frozen=True)
class Signal:
    """name: the graded column. kinds: task kinds that grade it. needs_prompt_scores: it comes
    from a follow-up request scored as given text (P(True)), so a model that cannot score prompts
    (a chat API) does not have it. needs_logprobs: it is computed from the log-probs of the
    answer's tokens (or the options' scores), so a model that returns none (an API entry with
    `logprobs: false`) does not have it. description: what it is. feature: None for a probability,
    else the monotone map of a score column (float64 array) to (0, 1], rising with confidence,
    and `feature_text` says which. outcome: the graded column the signal predicts, "correct"
    (the graded answer) unless the signal comes with an answer of its own."""

    name: str
    kinds: tuple[str, ...]
    description: str
    needs_prompt_scores: bool = False
    needs_logprobs: bool = False
    feature: Callable[[np.ndarray], np.ndarray] | None = None
    feature_text: str = ""
    outcome: str = "correct"
    option: str | None = None

    @property
    def probability(self) -> bool:
        """Whether the column is a probability (else a score, see `feature`)."""
        return self.feature is None


def _neg_exp(entropy: np.ndarray) -> np.ndarray:
    return np.exp(-np.asarray(entropy, dtype=np.float64))


def _reciprocal(count: np.ndarray) -> np.ndarray:
    return 1.0 / np.asarray(count, dtype=np.float64)


#: Every signal, in table order; `confidence` is each kind's primary one.
SIGNALS: tuple[Signal, ...] = (
    Signal("confidence", ("multiple_choice", "qa", "code"),
           "the primary confidence: the top option's softmax probability (multiple choice), the "
           "greedy answer's mean token probability, pavg (QA, code)", needs_logprobs=True),
    Signal("confidence_token_norm", ("multiple_choice",),
           "softmax over per-token (length-normalised) option log-likelihoods, at their top",
           needs_logprobs=True),
    Signal("geometric_mean", ("qa", "code"),
           "exp(mean token log-prob) of the greedy answer", needs_logprobs=True),
    Signal("min_token_prob", ("qa", "code"), "the lowest token probability of the greedy answer",
           needs_logprobs=True),
    Signal("sampling_agreement", ("qa", "code"),
           "share of sampled answers equal to the greedy one after the task's normalisation"),
    Signal("p_true", ("qa",), "P(True) of the greedy answer, asked in a follow-up request",
           needs_prompt_scores=True),
    Signal("largest_cluster_share", ("qa", "code"),
           "share of the sampled answers in their largest meaning cluster (meaning: normalised-"
           "answer equality on QA, functional equivalence on code)"),
    Signal("semantic_entropy", ("qa", "code"),
           "entropy (nats) of the sampled answers over meaning clusters (normalised-answer "
           "equality on QA, functional equivalence on code), each sample counted once (discrete "
           "semantic entropy)", feature=_neg_exp, feature_text="exp(-entropy)"),
    Signal("semantic_entropy_weighted", ("qa", "code"),
           "entropy (nats) over meaning clusters (normalised-answer equality on QA, functional "
           "equivalence on code) weighted by the samples' sequence probabilities",
           needs_logprobs=True, feature=_neg_exp, feature_text="exp(-entropy)"),
    Signal("n_semantic_sets", ("qa", "code"),
           "number of meaning clusters among the sampled answers (normalised-answer equality on "
           "QA, functional equivalence on code)", feature=_reciprocal, feature_text="1 / count"),
    Signal("verbalized", ("qa",),
           "the probability the model states with its own guess (one-stage verbalized, Tian et "
           "al. 2023); predicts whether that guess is correct", outcome="verbalized_correct",
           option="verbalized"),
    Signal("verbalized_two_stage", ("qa",),
           "the probability the model states that its greedy answer is correct, asked after it "
           "(two-stage verbalized, Tian et al. 2023)", option="two_stage"),
    Signal("p_true_reflection", ("qa",),
           "P(True) of the greedy answer asked after the model's own step-by-step review of it "
           "(self-reflection)", needs_prompt_scores=True, option="reflection"),
)  # fmt: skip
BY_NAME = {s.name: s for s in SIGNALS}
#: The signals that are probabilities of the graded answer being correct (not scores such as an
#: entropy, nor confidences in an answer of their own): what a calibration over time compares.
OF_GRADED_ANSWER = tuple(s.name for s in SIGNALS if s.probability and s.outcome == "correct")


def signals(
    kind: str, scores_prompts: bool = True, task: object = None, *, logprobs: bool = True
) -> list[str]:
    """The signals a task of `kind` grades, in table order, for a model that can (or cannot)
    score given text and that returns (or does not return) its tokens' log-probs; with `task`
    (the task object), only the optional signals it switches on."""
    if kind not in {k for s in SIGNALS for k in s.kinds} | {"language_modelling"}:
        raise InputError(f"unknown task kind {kind!r}")
    return [
        s.name
        for s in SIGNALS
        if kind in s.kinds
        and (scores_prompts or not s.needs_prompt_scores)
        and (logprobs or not s.needs_logprobs)
        and (s.option is None or task is None or getattr(task, s.option, False))
    ]
