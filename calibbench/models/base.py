"""Requests, results and the interface every model runtime implements.

Conventions: log-probabilities are natural logs (nats) of the model's own next-token
distribution at temperature 1 (sampling temperature changes which tokens are chosen, not the
reported log-probs), unless a runtime cannot give them and says so in `ModelInfo.logprob_source`.
Token ids index the model's vocabulary; `vocab_size` is the width of its logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from calibbench.metrics.token import TokenCalibration


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score `continuation` given `context` (the text is context + continuation, split as lm-eval
    does: the context's tokens are those of `context` alone, the rest belong to the
    continuation)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    """logprob: sum of the continuation's token log-probs (nats). is_greedy: every continuation
    token is the argmax of its next-token distribution. token_ids / token_logprobs: per
    continuation token. n_context_tokens: tokens before the continuation (BOS included)."""

    logprob: float
    is_greedy: bool
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    n_context_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    """Continue `prompt`. temperature 0 means greedy; `n` samples share the prompt and are drawn
    with seeds seed, seed + 1, ...; generation stops at any of `stop` (the stop text is not part
    of the result) or after `max_tokens`. `top_logprobs` alternatives (0..20) are kept per
    generated position."""

    prompt: str
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()
    top_logprobs: int = 5


@dataclass(frozen=True)
class Completion:
    """One generated continuation.

    tokens: the generated tokens' texts; token_ids: their ids, or None where the runtime does not
    expose ids (APIs). token_logprobs: log p of each generated token. top_logprobs: per position,
    the most likely alternatives as (token text, log p), best first. finish_reason: "stop" (a stop
    sequence or end-of-sequence token) or "length" (max_tokens reached).
    """

    text: str
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...] | None
    token_logprobs: tuple[float, ...]
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...]
    finish_reason: str


@dataclass(frozen=True)
class GenerationResult:
    """The `n` completions of one `GenerationRequest`, in seed order."""

    completions: tuple[Completion, ...]


@dataclass(frozen=True)
class ScoredText:
    """Teacher-forced scores of one text.

    token_ids: every token of the text as the model sees it (BOS first where the model uses one).
    token_logprobs: log p(token_i | tokens before i) for i = 1 .. len(token_ids) - 1.
    """

    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What the paper needs to cite a model and reproduce its numbers.

    name: calibbench's name for it; family: e.g. "smollm2", "gemma3", "llama"; runtime: "hf",
    "llamacpp" or "openai"; source: file path, hub id or endpoint URL; sha256 of the weights
    file where there is one; revision: hub revision or server-reported model id; n_parameters
    where known; logprob_source: "full" (log-softmax of the full logits) or "top-k" (an API's
    top-k log-probs: token-level metrics are top-k approximations).
    """

    name: str
    family: str
    runtime: str
    source: str
    vocab_size: int | None
    n_parameters: int | None = None
    sha256: str | None = None
    revision: str | None = None
    quantization: str | None = None
    logprob_source: str = "full"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


class LanguageModel(ABC):
    """A language model runtime. Use as a context manager (or call `close`) to free it."""

    @abstractmethod
    def info(self) -> ModelInfo:
        """Identity and provenance of the model."""

    @abstractmethod
    def loglikelihood(
        self,
        requests: Sequence[LoglikelihoodRequest],
        accumulator: TokenCalibration | None = None,
    ) -> list[LoglikelihoodResult]:
        """Score each request; if `accumulator` is given, the full next-token distributions at
        the continuation positions (with the continuation tokens as targets) are fed into it."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate continuations for each request."""

    @abstractmethod
    def score_text(
        self, texts: Sequence[str], accumulator: TokenCalibration | None = None
    ) -> list[ScoredText]:
        """Teacher-forced log-probs of every token of each text; the full next-token
        distributions (targets: the next tokens) go into `accumulator` when given."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to free by default
        """Free the model's resources."""

    def __enter__(self) -> LanguageModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
