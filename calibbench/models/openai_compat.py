"""Any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, llama.cpp servers) as a `LanguageModel`.

HTTP goes through one `httpx2.Client` per model (a pool of keep-alive connections shared by the
request threads; `close()` closes them). Log-probs are what the server reports: natural logs of
its next-token distribution, of which only the top-k alternatives per position are visible, so
`info().logprob_source` is "top-k" and token-level metrics go into a (k + 1)-entry top-k
accumulator (`calibbench.metrics.topk.topk_calibration`). Tokens are texts; ids are not exposed.

- `generate` posts to /chat/completions (the prompt as one user message) or /completions, one
  request per sample with seeds seed, seed + 1, ... (a greedy request is sent once and repeated).
  A `GenerationRequest` with `logprobs=False` (its caller reads the text only) asks for no
  log-probs and gets the text alone, as with the model option below: log-probs can cost more
  than the generation (llama-cpp-python's server sorts the whole vocabulary in Python per
  token; the default run's API review round took 155 s with them, 85 s without).
- `loglikelihood` and `score_text` post the whole text to /completions with `echo=True`,
  `max_tokens=1` (llama-cpp-python reads 0 as "no limit") and `logprobs=k`, and drop the generated
  token. Before its first echo request the model checks once that the server's echoed log-probs
  are aligned: the echoed top alternatives at the probe text's last token must be those a plain
  completion of the text before that token reports. llama-cpp-python's server fails this for
  models without a BOS token (its echo reports the next position's distribution,
  abetlen/llama-cpp-python#1983) and llama.cpp's own llama-server returns no prompt log-probs;
  both raise `InputError` rather than give wrong numbers.
- 429, 5xx, timeouts and connection failures are retried with exponential backoff (jitter from
  a seeded RNG, `Retry-After` honoured); other 4xx raise `InputError` with the server's message.
- `logprobs=False` (for providers that return none): generation asks for no log-probs and
  returns completions without tokens or log-probs (`Completion` with empty `tokens`,
  `token_logprobs` and `top_logprobs`; the tasks grade their token-level signals as missing),
  and `loglikelihood` / `score_text` raise `InputError`: such a model cannot score given text.
- `concurrency` requests are in flight at once (threads sharing the client's pool of at most
  `concurrency` connections, kept open between requests); answers are put back in request order
  and every request carries its own seed, so results do not depend on the concurrency. The first
  failing request, in request order, raises.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx2
import numpy as np

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.metrics.topk import topk_bucket_logits, topk_label
from calibbench.models.base import (
    MAX_TOP_LOGPROBS,
    Completion,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelInfo,
    ModelRuntime,
    ScoredText,
)

ENV_BASE_URL = "CALIBBENCH_API_BASE"
ENV_MODEL = "CALIBBENCH_API_MODEL"
ENV_API_KEYS = ("CALIBBENCH_API_KEY", "OPENAI_API_KEY")

#: Longest wait between two attempts, in seconds (also caps `Retry-After`).
MAX_RETRY_DELAY_S = 120.0
#: Text of the one-time echo alignment check.
ECHO_PROBE = "The capital of France is Paris"
#: Largest difference (nats) between the echoed and the plain top-1 log-prob of the probe.
PROBE_ATOL = 1e-2
#: Characters of a server's error message quoted in an `InputError`.
MESSAGE_CHARS = 1000
#: Most requests in flight at once.
MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class _Position:
    """One reported token: character offset in the echoed text (None if not reported), text,
    log-prob (None where the server gives none) and alternatives, best first."""

    offset: int | None
    token: str
    logprob: float | None
    top: tuple[tuple[str, float], ...]


class _HTTPStatusError(InputError):
    """A non-retryable HTTP error answer (a 4xx other than 429)."""


class OpenAICompatModel(ModelRuntime):
    """A model behind an OpenAI-compatible API.

    Args:
        base_url: API root ending in /v1, e.g. "http://127.0.0.1:8000/v1"; default from
            CALIBBENCH_API_BASE.
        model: model id sent with each request; default from CALIBBENCH_API_MODEL, else the
            only model the server lists at /models.
        api_key: bearer token; default from CALIBBENCH_API_KEY, then OPENAI_API_KEY (none sent
            when neither is set).
        name, family: calibbench's name for the model (default: the model id) and its family.
        endpoint: "completions" (the prompt is continued as is) or "chat" (the prompt is one
            user message) for `generate`; scoring always uses /completions.
        score_top_logprobs: k, alternatives requested per scored position (1..20); accumulators
            passed to `loglikelihood` / `score_text` must be `topk_calibration(k)`'s (vocab_size
            k + 1 and its approximation label).
        timeout: seconds per HTTP attempt to connect, and to send or receive each part of the
            request and the answer.
        max_retries: further attempts after a 429, 5xx, timeout or connection failure.
        backoff: base delay in seconds; attempt a waits backoff * 2^a * U(0.5, 1), U drawn from
            an RNG seeded with `seed`, unless the server sent `Retry-After`.
        extra_body: fields added to every request body (server-specific options, e.g.
            `calibbench.models.llamacpp_server.PLAIN_SAMPLING`).
        concurrency: requests in flight at once (1..64; within the API's rate limits, which
            429 answers enforce through the retries).
        logprobs: whether to ask for token log-probs. False for a provider that returns none:
            completions then carry no tokens or log-probs and scoring raises `InputError`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        name: str | None = None,
        family: str = "unknown",
        endpoint: str = "completions",
        score_top_logprobs: int = 5,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        seed: int = 0,
        extra_body: Mapping[str, Any] | None = None,
        concurrency: int = 1,
        logprobs: bool = True,
    ):
        base_url = base_url or os.environ.get(ENV_BASE_URL)
        if not base_url:
            raise InputError(
                f"base_url: not given and {ENV_BASE_URL} is not set; pass the API root, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"base_url: expected an http:// or https:// URL, got {base_url!r}")
        if endpoint not in ("chat", "completions"):
            raise InputError(f"endpoint: expected 'chat' or 'completions', got {endpoint!r}")
        if not 1 <= score_top_logprobs <= MAX_TOP_LOGPROBS:
            raise InputError(
                f"score_top_logprobs: expected 1..{MAX_TOP_LOGPROBS}, got {score_top_logprobs!r}"
            )
        if not timeout > 0 or max_retries < 0 or not backoff >= 0:
            raise InputError(
                "timeout must be > 0, max_retries >= 0 and backoff >= 0; got "
                f"{timeout!r}, {max_retries!r}, {backoff!r}"
            )
        if not (isinstance(concurrency, int) and 1 <= concurrency <= MAX_CONCURRENCY):
            raise InputError(f"concurrency: expected 1..{MAX_CONCURRENCY}, got {concurrency!r}")
        if not isinstance(logprobs, bool):
            raise InputError(f"logprobs: expected true or false, got {logprobs!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get(ENV_MODEL) or None
        if api_key is None:
            api_key = next((os.environ[k] for k in ENV_API_KEYS if os.environ.get(k)), None)
        self.api_key = api_key
        self.name = name
        self.family = family
        self.endpoint = endpoint
        self.score_top_logprobs = score_top_logprobs
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        self.concurrency = concurrency
        self.logprobs = logprobs
        self._client = httpx2.Client(
            headers={"Accept": "application/json"},
            # no limit on waiting for a free connection of our own pool: that is not the server's
            timeout=httpx2.Timeout(timeout, pool=None),
            limits=httpx2.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency
            ),
        )
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._served: list[str] | None = None
        self._echo_checked = False

    def _request(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET (no body) or POST `body` as JSON to base_url + path; the decoded JSON answer."""
        url = self.base_url + path
        method = "GET" if body is None else "POST"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = self._client.request(method, url, json=body, headers=headers)
            except httpx2.TimeoutException:
                failure = f"no answer within timeout={self.timeout} s"
            except httpx2.ConnectError as err:
                failure = f"cannot connect ({err})"
            except httpx2.RequestError as err:
                failure = f"connection failed ({err!r})"
            else:
                if response.is_success:
                    return _decode(response.content, url)
                status, message = response.status_code, _server_message(response.content)
                if status != 429 and status < 500:
                    raise _HTTPStatusError(
                        f"{method} {url}: HTTP {status}: {message}"
                        f"{_hint(status, response.headers.get('Location'))}"
                    )
                failure = f"HTTP {status}: {message}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        raise InputError(
            f"{method} {url}: {failure} after {self.max_retries + 1} attempt(s); check that the "
            "server is running and reachable, or raise timeout / max_retries"
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_DELAY_S)
        base = min(self.backoff * 2.0**attempt, MAX_RETRY_DELAY_S)
        with self._rng_lock:
            return base * (0.5 + 0.5 * self._rng.random())

    def _map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """[fn(x) for x in items], `concurrency` at a time, in order."""
        items = list(items)
        if self.concurrency == 1 or len(items) < 2:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _served_models(self) -> list[str] | None:
        """Model ids listed at /models (None when the server has no such endpoint)."""
        if self._served is None:
            try:
                answer = self._request("/models")
            except _HTTPStatusError:
                return None
            self._served = [str(m.get("id")) for m in answer.get("data") or []]
        return self._served

    def _model_id(self) -> str:
        if self.model is None:
            served = self._served_models()
            if not served or len(served) != 1:
                raise InputError(
                    f"model: not given and {ENV_MODEL} is not set, and {self.base_url}/models "
                    f"does not list exactly one model ({served!r}); pass the model id to use"
                )
            self.model = served[0]
        return self.model

    def _body(self, **fields: Any) -> dict[str, Any]:
        return {**self.extra_body, "model": self._model_id(), **fields}

    def info(self) -> ModelInfo:
        """runtime "openai", source = base_url, revision = the matching (or only) model id the
        server lists at /models, vocab_size None, logprob_source "top-k" ("none" with
        logprobs=False); extra records endpoint, score_top_logprobs and logprobs."""
        model = self._model_id()
        served = self._served_models() or []
        revision = model if model in served else served[0] if len(served) == 1 else None
        return ModelInfo(
            name=self.name or model,
            family=self.family,
            runtime="openai",
            source=self.base_url,
            vocab_size=None,
            revision=revision,
            logprob_source="top-k" if self.logprobs else "none",
            extra={
                "endpoint": self.endpoint,
                "score_top_logprobs": self.score_top_logprobs,
                "logprobs": self.logprobs,
            },
        )

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate with per-token log-probs; token_ids are None. The tokens of a stop
        sequence are kept through the one that completed it where the server reports them, and
        are missing where it does not (see `_through_stop`). Raises `InputError` for servers
        that return no log-probs. With logprobs=False, and for a request with logprobs False,
        no log-probs are asked for and completions hold the text only."""
        self._model_id()  # resolved once, before any concurrent request
        sends = [1 if r.temperature == 0 else r.n for r in requests]  # greedy: sent once
        jobs = [(r, r.seed + j) for r, k in zip(requests, sends, strict=True) for j in range(k)]
        done = iter(self._map(lambda job: self._generate_one(*job), jobs))
        return [
            GenerationResult(tuple(next(done) for _ in range(k)) * (r.n // k))
            for r, k in zip(requests, sends, strict=True)
        ]

    def _generate_one(self, request: GenerationRequest, seed: int) -> Completion:
        fields: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": seed,
            "n": 1,
        }
        if request.stop:
            fields["stop"] = list(request.stop)
        chat = self.endpoint == "chat" or request.chat  # a chat request goes to the chat endpoint
        # a caller that does not use them asks for none: they can cost more than the generation
        logprobs = self.logprobs and request.logprobs
        if logprobs:
            fields |= (
                {"logprobs": True, "top_logprobs": request.top_logprobs}
                if chat
                else {"logprobs": request.top_logprobs}
            )
        if chat:
            path = "/chat/completions"
            body = self._body(messages=[{"role": "user", "content": request.prompt}], **fields)
        else:
            path = "/completions"
            body = self._body(prompt=request.prompt, **fields)
        url = self.base_url + path
        choice = _first_choice(self._request(path, body), url)
        text = ((choice.get("message") or {}).get("content") if chat else choice.get("text")) or ""
        finish_reason = str(choice.get("finish_reason") or "")
        if not logprobs:
            return Completion(text, (), None, (), (), finish_reason)
        positions = _chat_positions(choice, url) if chat else _completion_positions(choice, url)
        positions = _through_stop(positions, text, request.stop)
        if any(p.logprob is None for p in positions):
            raise _no_logprobs(url)
        return Completion(
            text=text,
            tokens=tuple(p.token for p in positions),
            token_ids=None,
            token_logprobs=tuple(float(p.logprob) for p in positions),
            top_logprobs=tuple(p.top[: request.top_logprobs] for p in positions),
            finish_reason=finish_reason,
        )

    def _refuse_scoring(self, what: str) -> None:
        if not self.logprobs:
            raise InputError(
                f"{what}: {self.base_url} runs with logprobs: false (no token log-probs), so it "
                "cannot score given text; run generation tasks only on this model, or set "
                "logprobs: true for a server that echoes prompt log-probs"
            )

    def _loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], accumulator: TokenCalibration | None
    ) -> list[LoglikelihoodResult]:
        """Score continuations through echoed prompt log-probs.

        The continuation's tokens are those that reach past the context's last character (a
        token that straddles the boundary belongs to the continuation); n_context_tokens counts
        the echoed tokens before them (a BOS the server does not echo is not counted).
        token_ids is (). is_greedy: each continuation token is the top-1 alternative.
        `accumulator` must be `topk_calibration(score_top_logprobs)`-shaped (see the class);
        it receives the top-k distributions at the continuation positions. Raises InputError
        with logprobs=False.
        """
        self._refuse_scoring("loglikelihood")
        for i, request in enumerate(requests):
            if not request.continuation:
                raise InputError(f"requests[{i}].continuation: empty; nothing to score")
        results, rows, targets = [], [], []
        echoed = self._echo_all([r.context + r.continuation for r in requests])
        for i, (request, positions) in enumerate(zip(requests, echoed, strict=True)):
            start = _continuation_start(positions, len(request.context))
            scored = positions[start:]
            if any(p.logprob is None for p in scored):
                raise InputError(
                    f"requests[{i}].context: the first token of the text has no log-prob, so "
                    "the continuation cannot start it; give a non-empty context"
                )
            logits, slots = self._bucket(scored)
            rows.append(logits)
            targets.append(slots)
            logprobs = tuple(float(p.logprob) for p in scored)
            results.append(
                LoglikelihoodResult(
                    logprob=math.fsum(logprobs),
                    is_greedy=bool(np.all(slots == 0)),
                    token_ids=(),
                    token_logprobs=logprobs,
                    n_context_tokens=start,
                )
            )
        if accumulator is not None and rows:
            accumulator.update(np.concatenate(rows), np.concatenate(targets))
        return results

    def _score_text(
        self, texts: Sequence[str], accumulator: TokenCalibration | None
    ) -> list[ScoredText]:
        """Log-probs of the echoed tokens after the leading ones the server gives none (the
        first token, which has no context, and a BOS where echoed).

        token_ids is () (APIs do not expose ids), so token_logprobs has one entry per scored
        token rather than len(token_ids) - 1 entries. `accumulator`: as in `loglikelihood`, with
        every scored position. Raises InputError with logprobs=False.
        """
        self._refuse_scoring("score_text")
        for i, text in enumerate(texts):
            if not text:
                raise InputError(f"texts[{i}]: empty; nothing to score")
        results, rows, targets = [], [], []
        for i, positions in enumerate(self._echo_all(texts)):
            lead = 0
            while lead < len(positions) and positions[lead].logprob is None:
                lead += 1
            scored = positions[lead:]
            if any(p.logprob is None for p in scored):
                raise InputError(
                    f"texts[{i}]: {self.base_url} returned no log-prob for a token inside the text"
                )
            if scored:
                logits, slots = self._bucket(scored)
                rows.append(logits)
                targets.append(slots)
            results.append(ScoredText((), tuple(float(p.logprob) for p in scored)))
        if accumulator is not None and rows:
            accumulator.update(np.concatenate(rows), np.concatenate(targets))
        return results

    def _accumulator_spec(self) -> tuple[int, str | None, str]:
        k = self.score_top_logprobs
        create = (
            f"calibbench.metrics.topk.topk_calibration({k}) (an API reports only its top-{k} "
            f"log-probs per position: token-level metrics use top-{k} plus the unseen mass)"
        )
        return k + 1, topk_label(k), create

    def _bucket(self, positions: Sequence[_Position]) -> tuple[np.ndarray, np.ndarray]:
        for p in positions:
            if not p.top:
                raise InputError(
                    f"{self.base_url}: the server returned no top alternatives for token "
                    f"{p.token!r}; it must report logprobs={self.score_top_logprobs} per position"
                )
        return topk_bucket_logits(
            [[lp for _, lp in p.top] for p in positions],
            [float(p.logprob) for p in positions],
            self.score_top_logprobs,
        )

    def _echo_all(self, texts: Sequence[str]) -> list[list[_Position]]:
        """The positions of each text as the server echoes them (the generated token dropped);
        the alignment is checked once, before the first."""
        if texts and not self._echo_checked:
            self._check_echo()
        return self._map(self._echo_positions, texts)

    def _echo_positions(self, text: str) -> list[_Position]:
        url = f"{self.base_url}/completions"
        body = self._body(
            prompt=text,
            max_tokens=1,
            temperature=0.0,
            echo=True,
            logprobs=self.score_top_logprobs,
        )
        positions = _completion_positions(
            _first_choice(self._request("/completions", body), url), url
        )
        if any(p.offset is None for p in positions):
            raise InputError(f"{url}: the server's log-probs have no text_offset; cannot score")
        echoed = [p for p in positions if p.offset < len(text)]
        if all(p.logprob is None for p in echoed):
            raise InputError(
                f"{url}: the server returns no log-probabilities for the prompt with echo=True "
                "(llama.cpp's llama-server reports generated tokens only); scoring needs a "
                "server that echoes prompt log-probs, e.g. vLLM"
            )
        return echoed

    def _check_echo(self) -> None:
        """Check once that echoed log-probs are aligned (see the module docstring)."""
        url = f"{self.base_url}/completions"
        echoed = self._echo_positions(ECHO_PROBE)
        last = echoed[-1]
        if len(echoed) < 2 or last.logprob is None or not last.top:
            raise InputError(
                f"{url}: the server returned no log-probs for the echoed probe {ECHO_PROBE!r}; "
                "scoring needs prompt log-probs with echo=True"
            )
        body = self._body(
            prompt=ECHO_PROBE[: last.offset], max_tokens=1, temperature=0.0, logprobs=1
        )
        plain = _completion_positions(_first_choice(self._request("/completions", body), url), url)
        if not plain or not plain[0].top:
            raise InputError(
                f"{url}: could not check the echo alignment: the server generated nothing "
                f"after {ECHO_PROBE[: last.offset]!r}"
            )
        expected, got = plain[0].top[0], last.top[0]
        if expected[0] != got[0] or abs(expected[1] - got[1]) > PROBE_ATOL:
            raise InputError(
                f"{url}: the server's echoed prompt log-probs are off by one position: at the "
                f"last token of {ECHO_PROBE!r} it reports the top alternative {got}, but a plain "
                f"completion of the text before that token reports {expected}. "
                "llama-cpp-python's server does this for models without a BOS token "
                "(abetlen/llama-cpp-python#1983); score such models with calibbench's llama.cpp "
                "runtime instead, or serve them with vLLM"
            )
        self._echo_checked = True


def _decode(raw: bytes, url: str) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(
            f"{url}: the answer is not JSON (starts {raw[:200]!r}); is base_url the API root "
            "ending in /v1?"
        ) from None
    if not isinstance(answer, dict):
        raise InputError(f"{url}: expected a JSON object, got {type(answer).__name__}")
    return answer


def _server_message(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return text[:MESSAGE_CHARS]
    if isinstance(answer, dict):
        error = answer.get("error", answer.get("detail", answer.get("message", answer)))
        if isinstance(error, dict) and "message" in error:
            error = error["message"]
        text = error if isinstance(error, str) else json.dumps(error)
    return text[:MESSAGE_CHARS]


def _hint(status: int, location: str | None = None) -> str:
    if 300 <= status < 400:
        return f" (the server redirects to {location}; give that address as base_url)"
    if status in (401, 403):
        return f" (check api_key, or set {' or '.join(ENV_API_KEYS)})"
    if status == 404:
        return " (check base_url, the API root ending in /v1, and the model id)"
    return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), None if absent."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _first_choice(answer: dict[str, Any], url: str) -> dict[str, Any]:
    choices = answer.get("choices")
    if not choices or not isinstance(choices[0], dict):
        raise InputError(f"{url}: the answer has no choices: {json.dumps(answer)[:MESSAGE_CHARS]}")
    return choices[0]


def _no_logprobs(url: str) -> InputError:
    return InputError(
        f"{url}: the server does not return log-probabilities (the answer has no 'logprobs'); "
        "use a server or model that does (a llama.cpp server must run with --logits_all True)"
    )


def _ranked(alternatives: Any) -> tuple[tuple[str, float], ...]:
    """Alternatives, a {token: log-prob} dict or a list of {"token", "logprob"}, best first."""
    if not alternatives:
        return ()
    if isinstance(alternatives, dict):
        pairs = [(str(t), float(lp)) for t, lp in alternatives.items()]
    else:
        pairs = [(str(a["token"]), float(a["logprob"])) for a in alternatives]
    return tuple(sorted(pairs, key=lambda pair: -pair[1]))


def _completion_positions(choice: dict[str, Any], url: str) -> list[_Position]:
    """Positions from a /completions choice's logprobs (tokens, token_logprobs, top_logprobs,
    text_offset)."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or logprobs.get("token_logprobs") is None:
        raise _no_logprobs(url)
    tokens = logprobs.get("tokens") or []
    values = logprobs["token_logprobs"]
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    offsets = logprobs.get("text_offset") or [None] * len(tokens)
    if not len(tokens) == len(values) == len(tops) == len(offsets):
        raise InputError(f"{url}: the logprobs lists differ in length; not an OpenAI answer")
    return [
        _Position(o, str(t), None if v is None else float(v), _ranked(top))
        for t, v, top, o in zip(tokens, values, tops, offsets, strict=True)
    ]


def _chat_positions(choice: dict[str, Any], url: str) -> list[_Position]:
    """Positions from a /chat/completions choice's logprobs.content."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or "content" not in logprobs:
        raise _no_logprobs(url)
    return [
        _Position(None, str(c["token"]), float(c["logprob"]), _ranked(c.get("top_logprobs")))
        for c in logprobs["content"] or []
    ]


def _through_stop(positions: list[_Position], text: str, stops: Sequence[str]) -> list[_Position]:
    """The reported positions through the token that completed the first stop string, as the
    local runtimes keep them (see `Completion`).

    Servers differ: some report the tokens of the stop text cut from `text`, some drop them.
    When the tokens spell `text` followed by more, the tokens after the one that completed the
    earliest-ending stop string are dropped; otherwise every reported position is kept (a
    server that drops the stop tokens leaves a completion that stopped at once without any).
    """
    joined = "".join(p.token for p in positions)
    if len(joined) <= len(text) or not joined.startswith(text):
        return positions
    ends = [joined.find(s) + len(s) for s in stops if joined.find(s) >= len(text)]
    if not ends:
        return positions
    end, kept, start = min(ends), [], 0
    for p in positions:
        if start >= end:
            break
        kept.append(p)
        start += len(p.token)
    return kept


def _continuation_start(positions: Sequence[_Position], boundary: int) -> int:
    """Index of the first token that reaches past character `boundary` (the context's end).

    A token ends where the next token with a larger offset starts (tokens holding parts of one
    character share an offset); the last run of tokens ends at the end of the text."""
    start, end = len(positions), None
    for i in range(len(positions) - 1, -1, -1):
        if i + 1 < len(positions) and positions[i].offset < positions[i + 1].offset:
            end = positions[i + 1].offset
        if end is not None and end <= boundary:
            break
        start = i
    return start
