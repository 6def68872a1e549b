"""Requests, results, the interface every model runtime implements, and the request logic the
runtimes share.

`LanguageModel` is the interface. `ModelRuntime` (after lm-evaluation-harness's `TemplateLM`)
checks requests and accumulators once for every runtime; `LocalRuntime` adds what runtimes with
their own tokenizer share: the lm-eval split of (context, continuation), length checks and prompt
encoding. A runtime implements only its primitives on token ids (or, for an API, on texts).

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

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration

#: Most alternatives per position a request may ask for (what OpenAI-compatible APIs report).
MAX_TOP_LOGPROBS = 20


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
    of the result's text; the log-probs of its tokens are kept, see `Completion`) or after
    `max_tokens`. `top_logprobs` alternatives (0..MAX_TOP_LOGPROBS) are
    kept per generated position. With `chat`, `prompt` is one user message: the runtime applies
    the model's chat template (with the assistant turn opened) and continues that; a model
    without a chat template raises InputError.

    `logprobs`: whether the caller uses the completion's tokens and log-probs. With False, an API
    runtime asks its server for no log-probs and returns the text alone (empty `tokens`,
    `token_logprobs` and `top_logprobs`, as for an API model with `logprobs: false`), which
    spares servers that compute them slowly; a local runtime may still return them (they cost it
    nothing extra), so a caller that sets False must not read them."""

    prompt: str
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()
    top_logprobs: int = 5
    chat: bool = False
    logprobs: bool = True


@dataclass(frozen=True)
class Completion:
    """One generated continuation.

    text: the generated text, cut where the first stop sequence starts (the stop text and an
    end-of-sequence token are not part of it). tokens: the generated tokens' texts, n of them,
    through the token that ended generation: the one that completed a stop sequence or the
    end-of-sequence token, so that a completion that stopped at once (empty text) still has
    one; `text` is therefore a prefix of "".join(tokens), not always equal to it. token_ids:
    their ids (n), or None where the runtime does not expose ids (APIs). token_logprobs: log p
    (nats) of each of the n tokens. top_logprobs: per position (n), the most likely
    alternatives as (token text, log p), best first. finish_reason: "stop" (a stop sequence or
    end-of-sequence token) or "length" (max_tokens reached; nothing is dropped then).

    Every local runtime gives n >= 1. An API gives what its server reports: servers that drop
    the stop sequence's tokens leave them out, and then an immediate stop has n = 0; an API
    model asked for no log-probs (`logprobs: false`), or answering a request with `logprobs`
    False, gives n = 0 always, the text alone.
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
    where known; logprob_source: "full" (log-softmax of the full logits), "top-k" (an API's
    top-k log-probs: token-level metrics are top-k approximations) or "none" (an API model
    asked for no log-probs: no token-level signal).
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


def split_pair(context: str, continuation: str) -> tuple[str, str]:
    """Move trailing whitespace of `context` to the start of `continuation`, as lm-evaluation-
    harness does before encoding a pair (so " Paris" is scored as one token, not " " + "Paris")."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Character offset in `text` where the earliest of `stops` (non-empty strings) starts, or
    None when none occurs."""
    found = [p for p in (text.find(s) for s in stops) if p >= 0]
    return min(found) if found else None


def check_generation(i: int, request: GenerationRequest) -> None:
    """Raise InputError naming `requests[i]` and the field when a field of `request` has the
    wrong type or range (stop strings must be non-empty)."""
    where = f"requests[{i}]"
    if not isinstance(request.prompt, str):
        raise InputError(f"{where}.prompt: expected a string, got {type(request.prompt).__name__}")
    if not isinstance(request.max_tokens, int) or request.max_tokens < 1:
        raise InputError(
            f"{where}.max_tokens: expected an integer >= 1, got {request.max_tokens!r}"
        )
    if not (request.temperature >= 0 and request.temperature < float("inf")):
        raise InputError(
            f"{where}.temperature: expected a finite number >= 0 (0 = greedy), got "
            f"{request.temperature!r}"
        )
    if not 0 < request.top_p <= 1:
        raise InputError(f"{where}.top_p: expected 0 < top_p <= 1, got {request.top_p!r}")
    if not isinstance(request.n, int) or request.n < 1:
        raise InputError(f"{where}.n: expected an integer >= 1, got {request.n!r}")
    if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
        raise InputError(
            f"{where}.top_logprobs: expected 0..{MAX_TOP_LOGPROBS}, got {request.top_logprobs!r}"
        )
    if not isinstance(request.chat, bool):
        raise InputError(f"{where}.chat: expected true or false, got {request.chat!r}")
    if not isinstance(request.logprobs, bool):
        raise InputError(f"{where}.logprobs: expected true or false, got {request.logprobs!r}")
    if isinstance(request.stop, str) or not all(isinstance(s, str) and s for s in request.stop):
        raise InputError(
            f"{where}.stop: expected a tuple of non-empty strings, got {request.stop!r}"
        )


class ModelRuntime(LanguageModel):
    """The request checks every runtime shares; a runtime implements `_loglikelihood`,
    `_score_text` and `_generate` on checked input, and says what accumulators it feeds
    (`_accumulator_spec`).

    Raises InputError, naming the request or field, for invalid generation requests (see
    `check_generation`), one string where a sequence of texts is expected, and an accumulator
    that does not match the runtime's next-token distributions.
    """

    def loglikelihood(
        self,
        requests: Sequence[LoglikelihoodRequest],
        accumulator: TokenCalibration | None = None,
    ) -> list[LoglikelihoodResult]:
        self._check_accumulator(accumulator)
        return self._loglikelihood(requests, accumulator)

    def score_text(
        self, texts: Sequence[str], accumulator: TokenCalibration | None = None
    ) -> list[ScoredText]:
        if isinstance(texts, str):
            raise InputError("texts: expected a sequence of strings, got one string; pass [text]")
        self._check_accumulator(accumulator)
        return self._score_text(texts, accumulator)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        for i, request in enumerate(requests):
            check_generation(i, request)
        return self._generate(requests)

    def _check_accumulator(self, accumulator: TokenCalibration | None) -> None:
        if accumulator is None:
            return
        vocab_size, approximation, create = self._accumulator_spec()
        if (accumulator.vocab_size, accumulator.approximation) != (vocab_size, approximation):
            raise InputError(
                f"accumulator: vocab_size {accumulator.vocab_size} and approximation "
                f"{accumulator.approximation!r} do not match this model's next-token "
                f"distributions (vocab_size {vocab_size}, approximation {approximation!r}); "
                f"create it with {create}"
            )

    @abstractmethod
    def _accumulator_spec(self) -> tuple[int, str | None, str]:
        """(vocab_size, approximation label or None for full distributions, the call that
        creates such an accumulator) of the accumulators this runtime feeds."""

    @abstractmethod
    def _loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], accumulator: TokenCalibration | None
    ) -> list[LoglikelihoodResult]:
        """`loglikelihood` once `accumulator` is checked."""

    @abstractmethod
    def _score_text(
        self, texts: Sequence[str], accumulator: TokenCalibration | None
    ) -> list[ScoredText]:
        """`score_text` once `texts` and `accumulator` are checked."""

    @abstractmethod
    def _generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """`generate` once every request is checked (stop strings are non-empty)."""


class LocalRuntime(ModelRuntime):
    """A runtime with its own tokenizer and the full next-token distributions (llama.cpp,
    transformers): requests are encoded and length-checked here, and the runtime implements
    `tokenize`, `_length_limit` and the three primitives on token ids.

    Subclasses set `vocab_size` (V, the width of the logits) and `_prefix`, the token an empty
    context or prompt stands for (lm-eval's prefix token: BOS, or EOS where there is none).
    Raises InputError naming the request or text when it has more tokens than the limit.
    """

    vocab_size: int
    _prefix: int

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as the model sees it: BOS first where the model uses one."""

    def chat_ids(self, message: str) -> list[int]:
        """Token ids of `message` as the one user turn of the model's chat template, the
        assistant's turn opened (BOS first where the model uses one). InputError where the model
        has no chat template."""
        raise InputError(
            f"{type(self).__name__}: this runtime applies no chat template; a chat request needs "
            "an instruction-tuned model on a runtime that has one (llamacpp, hf)"
        )

    @abstractmethod
    def _length_limit(self) -> tuple[str, int]:
        """(option name, value) of the most tokens a sequence may have, e.g. ("n_ctx", 2048)."""

    @abstractmethod
    def _loglikelihood_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]], accumulator: TokenCalibration | None
    ) -> list[LoglikelihoodResult]:
        """Score (context ids, continuation ids) pairs; both are non-empty and fit the limit."""

    @abstractmethod
    def _score_tokens(
        self, encoded: Sequence[list[int]], accumulator: TokenCalibration | None
    ) -> list[ScoredText]:
        """Teacher-forced scores of token sequences that fit the limit (any may be empty)."""

    @abstractmethod
    def _generate_tokens(
        self, requests: Sequence[GenerationRequest], prompts: Sequence[list[int]]
    ) -> list[GenerationResult]:
        """Generate from checked requests; prompts[i] (non-empty) encodes requests[i].prompt
        and leaves room for its max_tokens."""

    def _accumulator_spec(self) -> tuple[int, str | None, str]:
        return self.vocab_size, None, f"TokenCalibration({self.vocab_size}) (info().vocab_size)"

    def _check_length(self, where: str, n_tokens: int) -> None:
        option, limit = self._length_limit()
        if n_tokens > limit:
            raise InputError(
                f"{where}: {n_tokens} tokens exceed {option}={limit}; shorten it or raise "
                f"{option} (nothing is truncated silently)"
            )

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context ids (the prefix token if the context has none) and continuation ids: those of
        the whole text after the context's, once `split_pair` has moved trailing whitespace."""
        context, continuation = split_pair(context, continuation)
        whole, context_ids = self.tokenize(context + continuation), self.tokenize(context)
        return context_ids or [self._prefix], whole[len(context_ids) :]

    def _loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], accumulator: TokenCalibration | None
    ) -> list[LoglikelihoodResult]:
        pairs = []
        for i, request in enumerate(requests):
            context, continuation = self._encode_pair(request.context, request.continuation)
            if not continuation:
                raise InputError(f"requests[{i}].continuation: no tokens to score; pass some text")
            self._check_length(f"requests[{i}]", len(context) + len(continuation))
            pairs.append((context, continuation))
        return self._loglikelihood_tokens(pairs, accumulator)

    def _score_text(
        self, texts: Sequence[str], accumulator: TokenCalibration | None
    ) -> list[ScoredText]:
        encoded = [self.tokenize(text) for text in texts]
        for i, ids in enumerate(encoded):
            self._check_length(f"texts[{i}]", len(ids))
        return self._score_tokens(encoded, accumulator)

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        prompts = [
            (self.chat_ids(r.prompt) if r.chat else self.tokenize(r.prompt)) or [self._prefix]
            for r in requests
        ]
        for i, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
            self._check_length(
                f"requests[{i}] (prompt + max_tokens)", len(prompt) + request.max_tokens
            )
        return self._generate_tokens(requests, prompts)
