"""What the workflow asks the package about a model x task pair: whether its answers get a
review round and a scored follow-up, whether its collection accumulates token-level
statistics, and which confidence signals its graded table carries. The rules only wire these
answers together.
"""

from __future__ import annotations

from typing import Any

from calibbench.confidence.signals import SIGNALS, signals
from calibbench.models.registry import runtime_of
from calibbench.tasks import Task


def scores_prompts(model: str, spec: dict[str, Any]) -> bool:
    """Whether model `model` (its configuration `spec`) can score given text."""
    return runtime_of(model, spec).scores_prompts(spec)


def has_followup(model: str, spec: dict[str, Any], task: Task) -> bool:
    """A follow-up request after the answers (P(True) on QA), which the model must score."""
    followup = (s for s in SIGNALS if s.needs_prompt_scores)
    return any(task.kind in s.kinds for s in followup) and scores_prompts(model, spec)


def has_review(model: str, spec: dict[str, Any], task: Task) -> bool:
    """A review round after the answers (generated replies about them: two-stage verbalized
    confidence, self-reflection), which every model can answer."""
    return task.has_review


def accumulates(model: str, spec: dict[str, Any], task: Task) -> bool:
    """Token-level statistics (Full-ECE, the temperature sweep): whole next-token distributions
    of a local runtime, on the task's scored text."""
    return task.scores_prompts and runtime_of(model, spec).full_distributions


def pair_signals(model: str, spec: dict[str, Any], task: Task) -> list[str]:
    """The confidence signals of the pair's graded table, in table order (without the
    token-level ones for a model that returns no token log-probs)."""
    logprobs = runtime_of(model, spec).returns_logprobs(spec)
    return signals(task.kind, scores_prompts(model, spec), task, logprobs=logprobs)
