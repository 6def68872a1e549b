"""Confidence signals, each declared once: the task kinds whose graded tables carry it, and what
it needs beyond the task's own requests.

A signal is a column of a task's graded table holding, per item, how confident the model is that
its answer is correct (higher = more confident). Every recalibration method is fitted on every
signal a model x task pair has, and the paper compares them. The tasks compute the columns; this
registry is what the workflow and the paper ask which signals a pair has.
"""

from __future__ import annotations

from dataclasses import dataclass

from calibbench.errors import InputError


@dataclass(frozen=True)
class Signal:
    """name: the graded column. kinds: task kinds that grade it. needs_prompt_scores: it comes
    from a follow-up request scored as given text (P(True)), so a model that cannot score prompts
    (a chat API) does not have it. description: what it is."""

    name: str
    kinds: tuple[str, ...]
    description: str
    needs_prompt_scores: bool = False


#: Every signal, in table order; `confidence` is each kind's primary one.
SIGNALS: tuple[Signal, ...] = (
    Signal("confidence", ("multiple_choice", "qa", "code"),
           "the primary confidence: the top option's softmax probability (multiple choice), the "
           "greedy answer's mean token probability, pavg (QA, code)"),
    Signal("confidence_token_norm", ("multiple_choice",),
           "softmax over per-token (length-normalised) option log-likelihoods, at their top"),
    Signal("geometric_mean", ("qa", "code"),
           "exp(mean token log-prob) of the greedy answer"),
    Signal("min_token_prob", ("qa", "code"), "the lowest token probability of the greedy answer"),
    Signal("sampling_agreement", ("qa", "code"),
           "share of sampled answers equal to the greedy one after the task's normalisation"),
    Signal("p_true", ("qa",), "P(True) of the greedy answer, asked in a follow-up request",
           needs_prompt_scores=True),
)  # fmt: skip
BY_NAME = {s.name: s for s in SIGNALS}


def signals(kind: str, scores_prompts: bool = True) -> list[str]:
    """The signals a task of `kind` grades, in table order, for a model that can (or cannot)
    score given text."""
    if kind not in {k for s in SIGNALS for k in s.kinds} | {"language_modelling"}:
        raise InputError(f"unknown task kind {kind!r}")
    return [
        s.name for s in SIGNALS if kind in s.kinds and (scores_prompts or not s.needs_prompt_scores)
    ]
