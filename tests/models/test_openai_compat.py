"""OpenAICompatModel against a real llama.cpp server (llama-cpp-python) serving SmolLM2-135M,
pinned to the same model run in-process by llama.cpp; retries and errors against a real stub
HTTP server on 127.0.0.1.

Two servers run: the model as shipped (no BOS token; its echoed prompt log-probs are off by one,
abetlen/llama-cpp-python#1983, which the model must refuse) and the same file with the BOS token
switched on through a GGUF key override, whose echo is aligned and is checked for scoring.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import llama_cpp
import numpy as np
import pandas as pd
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from scipy.special import log_softmax

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.metrics.topk import topk_calibration
from calibbench.models.base import GenerationRequest, LoglikelihoodRequest
from calibbench.models.builtin import gguf_path
from calibbench.models.llamacpp_server import PLAIN_SAMPLING, LlamaCppServer, free_port
from calibbench.models.openai_compat import OpenAICompatModel, _Position, _through_stop

pytestmark = pytest.mark.model

THREADS = 1
N_CTX = 512
ATOL = 1e-3
BOS_ON = ("--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true")


@pytest.fixture(scope="module")
def gguf():
    return gguf_path("smollm2-135m")


@pytest.fixture(scope="module")
def server(gguf):
    with LlamaCppServer(gguf, n_ctx=N_CTX, n_threads=THREADS, n_threads_batch=THREADS) as srv:
        yield srv


@pytest.fixture(scope="module")
def bos_server(gguf):
    with LlamaCppServer(
        gguf, n_ctx=N_CTX, n_threads=THREADS, n_threads_batch=THREADS, extra_args=BOS_ON
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def direct(gguf):
    llm = llama_cpp.Llama(
        str(gguf),
        logits_all=True,
        n_ctx=N_CTX,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )
    yield llm
    llm.close()


def token_ids(llm: llama_cpp.Llama, text: str, bos: bool) -> list[int]:
    return [llm.token_bos()] * bos + llm.tokenize(text.encode(), add_bos=False, special=True)


def direct_logprobs(llm: llama_cpp.Llama, ids: list[int]) -> np.ndarray:
    """(len(ids), V) float64; row i is log p(. | ids[: i + 1])."""
    llm.reset()
    llm.eval(ids)
    return log_softmax(np.asarray(llm.scores[: len(ids)], np.float64), axis=1)


def direct_greedy(llm: llama_cpp.Llama, ids: list[int], max_tokens: int):
    """Argmax continuation of `ids` until an end-of-generation token: ids, log-probs, rows."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.reset()
    llm.eval(ids)
    out, logprobs, rows = [], [], []
    for _ in range(max_tokens):
        row = log_softmax(np.asarray(llm.scores[llm.n_tokens - 1], np.float64))
        token = int(np.argmax(row))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        out.append(token)
        logprobs.append(row[token])
        rows.append(row)
        llm.eval([token])
    return out, np.array(logprobs), rows


def check_against_greedy(completion, llm, ids, max_tokens, k):
    out, logprobs, rows = direct_greedy(llm, ids, max_tokens)
    assert completion.text == llm.detokenize(out, prev_tokens=ids).decode()
    assert "".join(completion.tokens) == completion.text
    assert len(completion.tokens) == len(out)
    assert np.abs(np.array(completion.token_logprobs) - logprobs).max() < ATOL
    for top, row in zip(completion.top_logprobs, rows, strict=True):
        np.testing.assert_allclose([lp for _, lp in top], np.sort(row)[::-1][:k], atol=ATOL)
    assert completion.finish_reason == ("length" if len(out) == max_tokens else "stop")
    assert completion.token_ids is None


# -- generation ------------------------------------------------------------------------------


def test_greedy_completions_match_llama_cpp(server, direct):
    model = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING)
    prompts = ["The capital of France is", "def fibonacci(n):\n"]
    results = model.generate([GenerationRequest(p, max_tokens=12, top_logprobs=4) for p in prompts])
    for prompt, result in zip(prompts, results, strict=True):
        (completion,) = result.completions
        check_against_greedy(completion, direct, token_ids(direct, prompt, False), 12, 4)


def test_greedy_chat_matches_llama_cpp_on_the_rendered_template(server, direct):
    model = OpenAICompatModel(server.base_url, endpoint="chat", extra_body=PLAIN_SAMPLING)
    (result,) = model.generate([GenerationRequest("What is 2 + 2?", max_tokens=10)])
    eos, bos = direct.token_eos(), direct.token_bos()
    rendered = Jinja2ChatFormatter(
        direct.metadata["tokenizer.chat_template"],
        eos_token=direct.detokenize([eos], special=True).decode(),
        bos_token=direct.detokenize([bos], special=True).decode(),
    )(messages=[{"role": "user", "content": "What is 2 + 2?"}])
    ids = direct.tokenize(rendered.prompt.encode(), add_bos=False, special=True)
    check_against_greedy(result.completions[0], direct, ids, 10, 5)


def test_a_chat_request_is_the_rendered_template_on_every_runtime(server, direct):
    """`chat=True`: the prompt is one user message in the model's chat template. The API model
    (completions endpoint) sends it to the chat endpoint, llama.cpp renders the GGUF template and
    transformers its tokenizer's: the same token ids as llama-cpp-python's own rendering, and
    the same greedy tokens as llama.cpp continuing them."""
    from calibbench.models.hf import HFModel
    from calibbench.models.llamacpp import LlamaCppModel

    message = "Write a Python function that adds two numbers."
    rendered = Jinja2ChatFormatter(
        direct.metadata["tokenizer.chat_template"],
        eos_token=direct.detokenize([direct.token_eos()], special=True).decode(),
        bos_token=direct.detokenize([direct.token_bos()], special=True).decode(),
    )(messages=[{"role": "user", "content": message}])
    ids = direct.tokenize(rendered.prompt.encode(), add_bos=False, special=True)
    request = GenerationRequest(message, max_tokens=10, chat=True)
    api = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING)
    (result,) = api.generate([request])
    check_against_greedy(result.completions[0], direct, ids, 10, 5)
    out, _, _ = direct_greedy(direct, ids, 10)
    with LlamaCppModel.builtin("smollm2-135m", n_ctx=512) as local:
        assert local.chat_ids(message) == ids
        (result,) = local.generate([request])
        assert list(result.completions[0].token_ids) == out
        template = local._llm.metadata.pop("tokenizer.chat_template")
        with pytest.raises(InputError, match="no chat template"):
            local.chat_ids(message)
        local._llm.metadata["tokenizer.chat_template"] = template
        # a plain request of the same text is not templated
        assert (
            local.generate([GenerationRequest(message, max_tokens=3)])[0].completions[0]
            != (result.completions[0])
        )
    with HFModel.builtin("smollm2-135m", device="cpu") as hf:
        assert hf.chat_ids(message) == ids
    with pytest.raises(InputError, match=r"requests\[0\]\.chat"):
        api.generate([GenerationRequest(message, chat="yes")])


def test_stop_sequence_is_cut_from_the_text_and_its_tokens_are_kept(server, direct):
    """This llama.cpp server reports the stop sequence's tokens: they are kept, with their
    log-probs, through the one that completed it (as the local runtimes keep them)."""
    model = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING)
    prompt = "The capital of France is"
    (result,) = model.generate([GenerationRequest(prompt, max_tokens=12, stop=("\n",))])
    ids = token_ids(direct, prompt, False)
    out, logprobs, _ = direct_greedy(direct, ids, 12)
    pieces = [direct.detokenize([t], prev_tokens=ids + out[:i]).decode() for i, t in enumerate(out)]
    full = "".join(pieces)
    assert "\n" in full
    text = full[: full.index("\n")]
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    completed = int(np.sum(starts < len(text) + 1))
    completion = result.completions[0]
    assert completion.text == text
    assert completion.tokens == tuple(pieces[:completed])
    assert np.abs(np.array(completion.token_logprobs) - logprobs[:completed]).max() < ATOL
    assert completion.finish_reason == "stop"


@pytest.mark.parametrize(
    ("tokens", "text", "stops", "kept"),
    [
        # the server reports the stop's tokens: kept through the one that completed it
        ([" Paris", ".", "\n", "The"], " Paris.", ("\n",), 3),
        # a stop spread over two tokens, one sharing a token with the text
        ([" a", "b<", "/s", ">x"], " ab", ("</s>", "never"), 4),
        # the earliest-ending stop decides, as the local runtimes stop at it
        ([" a", "\n", "\n\n", "z"], " a", ("\n\n\n", "\n"), 2),
        # an immediate stop
        (["\n", "x"], "", ("\n",), 1),
        # a server that drops the stop's tokens: what it reported is kept
        ([" Paris", "."], " Paris.", ("\n",), 2),
        ([], "", ("\n",), 0),
        # tokens that do not spell the text (e.g. a chat template's): kept as reported
        (["<x>", "b"], "ab", ("\n",), 2),
    ],
)
def test_reported_positions_are_kept_through_the_stop(tokens, text, stops, kept):
    positions = [_Position(None, t, -0.5, ()) for t in tokens]
    assert _through_stop(positions, text, stops) == positions[:kept]


def test_seeded_samples_are_reproducible_and_differ_across_seeds(server):
    model = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING)
    request = GenerationRequest("Once upon a time", max_tokens=8, temperature=1.0, n=2, seed=11)
    (first,), (second,) = model.generate([request]), model.generate([request])
    for a, b in zip(first.completions, second.completions, strict=True):
        assert a.text == b.text
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=ATOL)
    assert first.completions[0].text != first.completions[1].text


@pytest.mark.parametrize(
    ("field", "value"),
    [("top_logprobs", 21), ("max_tokens", 0), ("n", 0), ("temperature", -1.0), ("top_p", 0.0)],
)
def test_invalid_generation_requests_raise(field, value):
    model = OpenAICompatModel("http://127.0.0.1:9/v1", model="m")
    with pytest.raises(InputError, match=r"requests\[0\]"):
        model.generate([GenerationRequest("x", **{field: value})])


# -- scoring ---------------------------------------------------------------------------------


def test_echo_off_by_one_server_is_refused(server):
    model = OpenAICompatModel(server.base_url)
    with pytest.raises(InputError, match=r"off by one.*#1983"):
        model.score_text(["The quick brown fox"])
    with pytest.raises(InputError, match="off by one"):
        model.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])


def test_score_text_matches_llama_cpp(bos_server, direct):
    model = OpenAICompatModel(bos_server.base_url)
    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Calibration: predicted probabilities should match observed frequencies.",
    ]
    for text, scored in zip(texts, model.score_text(texts), strict=True):
        ids = token_ids(direct, text, bos=True)
        logp = direct_logprobs(direct, ids)
        want = logp[np.arange(len(ids) - 1), ids[1:]]
        # the server gives the first text token (after the BOS it does not echo) no log-prob
        assert scored.token_ids == ()
        assert len(scored.token_logprobs) == len(ids) - 2
        assert np.abs(np.array(scored.token_logprobs) - want[1:]).max() < ATOL


LL_REQUESTS = [
    LoglikelihoodRequest("The capital of France is", " Paris"),
    LoglikelihoodRequest("The capital of France is", " the city of London"),
    LoglikelihoodRequest("Question: what is 2 + 2?\nAnswer:", " 4"),
]


def test_loglikelihood_matches_llama_cpp(bos_server, direct):
    model = OpenAICompatModel(bos_server.base_url)
    results = model.loglikelihood(LL_REQUESTS)
    for request, result in zip(LL_REQUESTS, results, strict=True):
        context = token_ids(direct, request.context, bos=True)
        whole = token_ids(direct, request.context + request.continuation, bos=True)
        assert whole[: len(context)] == context  # the lm-eval split is clean for these
        logp = direct_logprobs(direct, whole)
        positions = np.arange(len(context) - 1, len(whole) - 1)
        want = logp[positions, whole[len(context) :]]
        assert np.abs(np.array(result.token_logprobs) - want).max() < ATOL
        assert result.logprob == pytest.approx(want.sum(), abs=ATOL)
        assert result.is_greedy == bool(
            np.all(logp[positions].argmax(axis=1) == whole[len(context) :])
        )
        assert result.n_context_tokens == len(context) - 1  # the BOS is not echoed
    assert {r.is_greedy for r in results} == {True, False}


def test_a_token_straddling_the_boundary_belongs_to_the_continuation(bos_server, direct):
    model = OpenAICompatModel(bos_server.base_url)
    (result,) = model.loglikelihood([LoglikelihoodRequest("Hello wor", "ld")])
    ids = token_ids(direct, "Hello world", bos=True)
    assert [direct.detokenize([t]).decode() for t in ids[1:]] == ["Hello", " world"]
    logp = direct_logprobs(direct, ids)
    assert result.n_context_tokens == 1
    assert result.token_logprobs == pytest.approx([logp[1, ids[2]]], abs=ATOL)


def test_accumulator_gets_the_top_k_distributions(bos_server, direct):
    k = 5
    model = OpenAICompatModel(bos_server.base_url, score_top_logprobs=k)
    acc = topk_calibration(k)
    model.loglikelihood(LL_REQUESTS, accumulator=acc)
    nll = brier = 0.0
    n = 0
    for request in LL_REQUESTS:
        context = token_ids(direct, request.context, bos=True)
        whole = token_ids(direct, request.context + request.continuation, bos=True)
        logp = direct_logprobs(direct, whole)
        for j in range(len(context), len(whole)):
            row = logp[j - 1]
            order = np.argsort(-row)[:k]
            q = np.append(np.exp(row[order]), 1.0 - np.exp(row[order]).sum())
            slot = int(np.flatnonzero(order == whole[j])[0]) if whole[j] in order else k
            nll -= np.log(q[slot])
            brier += ((q - np.eye(k + 1)[slot]) ** 2).sum()
            n += 1
    metrics = acc.compute()
    assert metrics.n_positions == n
    assert metrics.nll[0] == pytest.approx(nll / n, abs=ATOL)
    assert metrics.brier[0] == pytest.approx(brier / n, abs=ATOL)
    assert metrics.approximation == "top-5 + unseen-mass bucket"


@pytest.mark.parametrize(
    "accumulator",
    [TokenCalibration(49152), TokenCalibration(6), topk_calibration(20)],
    ids=["full-vocab", "unlabelled", "other-k"],
)
def test_accumulators_that_are_not_top_k_shaped_are_rejected(accumulator):
    model = OpenAICompatModel("http://127.0.0.1:9/v1", model="m", score_top_logprobs=5)
    with pytest.raises(InputError, match=r"accumulator: .*topk_calibration\(5\)"):
        model.score_text(["Hello world"], accumulator=accumulator)


# -- identity and configuration ----------------------------------------------------------------


def test_info_reports_the_served_model(server, gguf):
    info = OpenAICompatModel(server.base_url, name="smollm2-api", family="smollm2").info()
    assert (info.name, info.family, info.runtime) == ("smollm2-api", "smollm2", "openai")
    assert info.source == server.base_url
    assert info.revision == str(gguf)  # llama-cpp-python lists the model by its path
    assert info.vocab_size is None and info.logprob_source == "top-k"


def test_configuration_from_the_environment(server, gguf, monkeypatch):
    monkeypatch.setenv("CALIBBENCH_API_BASE", server.base_url)
    monkeypatch.delenv("CALIBBENCH_API_MODEL", raising=False)
    monkeypatch.delenv("CALIBBENCH_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    model = OpenAICompatModel()
    assert model.info().name == str(gguf)  # the only model the server lists
    assert model.api_key == "sk-openai"
    monkeypatch.setenv("CALIBBENCH_API_KEY", "sk-calibbench")
    assert OpenAICompatModel().api_key == "sk-calibbench"
    monkeypatch.delenv("CALIBBENCH_API_BASE")
    with pytest.raises(InputError, match="CALIBBENCH_API_BASE"):
        OpenAICompatModel()


# -- a stub server for retries and errors ------------------------------------------------------

CANNED = {
    "choices": [
        {
            "index": 0,
            "text": " Paris",
            "finish_reason": "length",
            "logprobs": {
                "tokens": [" Paris"],
                "token_logprobs": [-0.25],
                "top_logprobs": [{" the": -2.5, " Paris": -0.25}],
                "text_offset": [24],
            },
        }
    ]
}


class StubHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.answer(None)

    def do_POST(self) -> None:
        self.answer(self.rfile.read(int(self.headers["Content-Length"])))

    def answer(self, body: bytes | None) -> None:
        stub: Stub = self.server
        stub.seen.append((self.path, dict(self.headers)))
        stub.clients.add(self.client_address)
        if body is not None:
            stub.bodies.append(body)
        if stub.script:
            status, headers, payload = stub.script.pop(0)
        else:
            time.sleep(stub.delay)
            canned = stub.canned(json.loads(body)) if callable(stub.canned) else stub.canned
            status, headers, payload = 200, {}, json.dumps(canned).encode()
            if stub.upstream:
                request = urllib.request.Request(
                    stub.upstream + self.path,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    method=self.command,
                )
                with urllib.request.urlopen(request) as response:
                    payload = response.read()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class KeepAliveHandler(StubHandler):
    protocol_version = "HTTP/1.1"  # a connection stays open for the next request
    disable_nagle_algorithm = True  # else each answer's body waits 40 ms for a delayed ACK


class Stub(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1: answers the scripted (status, headers, body) replies in
    order, then forwards to `upstream` (an origin) or returns `canned` (a JSON object, or a
    function of the request's), after `delay` seconds. HTTP/1.0 (a connection per request)
    unless `keep_alive`; `clients` holds the (host, port) of every connection that sent one."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, script=(), upstream=None, canned=None, delay=0.0, keep_alive=False):
        super().__init__(("127.0.0.1", 0), KeepAliveHandler if keep_alive else StubHandler)
        self.clients: set[tuple[str, int]] = set()
        self.script = list(script)
        self.upstream = upstream
        self.canned = CANNED if canned is None else canned
        self.delay = delay
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.bodies: list[bytes] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def attempts(self, path: str = "/v1/completions") -> int:
        return sum(p == path for p, _ in self.seen)

    def handle_error(self, request, client_address) -> None:
        pass  # the client hung up (timeout tests)


@pytest.fixture
def stub():
    stubs = []

    def make(**kwargs) -> Stub:
        stubs.append(Stub(**kwargs))
        return stubs[-1]

    yield make
    for s in stubs:
        s.shutdown()
        s.server_close()


def reply(status: int, message: str = "", **headers: str):
    return status, headers, json.dumps({"error": {"message": message}}).encode()


PROMPT = GenerationRequest("The capital of France is", max_tokens=4)


def test_429_is_retried_after_retry_after_then_forwarded(server, stub):
    origin = server.base_url.removesuffix("/v1")
    s = stub(script=[reply(429, "slow down", **{"Retry-After": "0"})] * 2, upstream=origin)
    model = OpenAICompatModel(s.base_url, model="m", max_retries=3, backoff=30.0)
    start = time.monotonic()
    got = model.generate([PROMPT])
    assert time.monotonic() - start < 10  # Retry-After: 0, not the 30 s backoff
    assert s.attempts() == 3
    (want,) = OpenAICompatModel(server.base_url, model="m").generate([PROMPT])[0].completions
    assert got[0].completions[0].text == want.text
    np.testing.assert_allclose(got[0].completions[0].token_logprobs, want.token_logprobs, atol=ATOL)


def test_5xx_is_retried_with_exponential_backoff(stub):
    s = stub(script=[reply(503, "busy"), (500, {}, b"oops")])
    model = OpenAICompatModel(s.base_url, model="m", max_retries=2, backoff=0.2)
    start = time.monotonic()
    (result,) = model.generate([PROMPT])
    # waits of 0.2 * 2^a * U(0.5, 1) for a = 0, 1: at least 0.1 + 0.2
    assert time.monotonic() - start >= 0.3
    assert s.attempts() == 3
    (completion,) = result.completions
    assert (completion.text, completion.tokens, completion.token_logprobs) == (
        " Paris",
        (" Paris",),
        (-0.25,),
    )
    assert completion.top_logprobs == (((" Paris", -0.25), (" the", -2.5)),)


def test_retry_after_seconds_are_honoured(stub):
    s = stub(script=[reply(429, "later", **{"Retry-After": "1"})])
    model = OpenAICompatModel(s.base_url, model="m", max_retries=1, backoff=0.0)
    start = time.monotonic()
    model.generate([PROMPT])
    assert time.monotonic() - start >= 1.0
    assert s.attempts() == 2


def test_exhausted_retries_raise_with_the_last_failure(stub):
    s = stub(script=[reply(503, "overloaded")] * 5)
    model = OpenAICompatModel(s.base_url, model="m", max_retries=2, backoff=0.0)
    with pytest.raises(InputError, match=r"HTTP 503: overloaded after 3 attempt"):
        model.generate([PROMPT])
    assert s.attempts() == 3


@pytest.mark.parametrize(
    ("status", "hint"), [(400, ""), (401, "CALIBBENCH_API_KEY"), (404, "ending in /v1")]
)
def test_other_4xx_fail_at_once_with_the_server_message(stub, status, hint):
    s = stub(script=[reply(status, "field 'foo' is not allowed")])
    model = OpenAICompatModel(s.base_url, model="m", max_retries=3, backoff=0.0)
    with pytest.raises(InputError, match=f"HTTP {status}: field 'foo' is not allowed.*{hint}"):
        model.generate([PROMPT])
    assert s.attempts() == 1


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_a_server_without_logprobs_is_a_clear_error(stub, endpoint):
    body = {"choices": [{"index": 0, "text": " Paris", "message": {"content": " Paris"}}]}
    s = stub(canned=body)
    model = OpenAICompatModel(s.base_url, model="m", endpoint=endpoint)
    with pytest.raises(InputError, match=r"does not return log-probabilities.*logits_all"):
        model.generate([PROMPT])


NO_LOGPROBS = {
    "choices": [
        {"index": 0, "text": " Paris", "message": {"content": " Paris"}, "finish_reason": "stop"}
    ]
}


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_without_logprobs_requests_ask_for_none_and_completions_hold_text(stub, endpoint):
    s = stub(canned=NO_LOGPROBS)
    model = OpenAICompatModel(s.base_url, model="m", endpoint=endpoint, logprobs=False)
    requests = [PROMPT, GenerationRequest("x", max_tokens=3, temperature=1.0, n=2, stop=("\n",))]
    results = model.generate(requests)
    assert [len(r.completions) for r in results] == [1, 2]
    for completion in (c for r in results for c in r.completions):
        assert completion.text == " Paris" and completion.finish_reason == "stop"
        assert completion.tokens == completion.token_logprobs == completion.top_logprobs == ()
        assert completion.token_ids is None
    bodies = [json.loads(b) for b in s.bodies]
    assert len(bodies) == 3
    for body in bodies:
        assert not {"logprobs", "top_logprobs", "echo"} & set(body), body
        assert ("messages" in body) is (endpoint == "chat")
    assert bodies[1]["stop"] == ["\n"] and {bodies[1]["seed"], bodies[2]["seed"]} == {0, 1}
    # with log-probs on, the same request asks for them, and such a server is an error
    on = stub(canned=NO_LOGPROBS)
    with pytest.raises(InputError, match="does not return log-probabilities"):
        OpenAICompatModel(on.base_url, model="m", endpoint=endpoint).generate([PROMPT])
    assert json.loads(on.bodies[0])["logprobs"]


@pytest.mark.parametrize("chat", [False, True])
def test_a_request_without_logprobs_asks_for_none_and_gets_the_same_text(server, stub, chat):
    """`GenerationRequest(logprobs=False)` on a model with log-probs on: the llama.cpp server
    (through a recording proxy) is asked for no log-probs and the completion holds the text
    alone, the same text (greedy and seeded samples) as the request with log-probs."""
    s = stub(upstream=server.base_url.removesuffix("/v1"))
    model = OpenAICompatModel(s.base_url, model="m", extra_body=PLAIN_SAMPLING)
    greedy = GenerationRequest("The capital of France is", max_tokens=12, stop=("\n",), chat=chat)
    sampled = GenerationRequest("Once upon a time", max_tokens=8, temperature=1.0, n=2, seed=11,
                                chat=chat)  # fmt: skip
    results = {}
    for logprobs in (True, False):
        sent = len(s.bodies)
        results[logprobs] = model.generate(
            [dataclasses.replace(r, logprobs=logprobs) for r in (greedy, sampled)]
        )
        bodies = [json.loads(b) for b in s.bodies[sent:]]
        assert len(bodies) == 3  # greedy once, two samples
        for body in bodies:
            assert ("messages" in body) is chat
            assert bool({"logprobs", "top_logprobs"} & set(body)) is logprobs, body
    on = [c for r in results[True] for c in r.completions]
    off = [c for r in results[False] for c in r.completions]
    assert [c.text for c in off] == [c.text for c in on]
    assert [c.finish_reason for c in off] == [c.finish_reason for c in on]
    assert on[1].text != on[2].text  # the samples differ: the seeds were sent
    assert all(len(c.tokens) == len(c.token_logprobs) > 0 for c in on)
    for completion in off:
        assert completion.tokens == completion.token_logprobs == completion.top_logprobs == ()
        assert completion.token_ids is None


def test_without_logprobs_scoring_is_refused_before_any_request(stub):
    s = stub(canned=CANNED)
    model = OpenAICompatModel(s.base_url, model="m", logprobs=False)
    with pytest.raises(InputError, match=r"score_text: .*logprobs: false.*cannot score"):
        model.score_text(["The capital of France is"])
    with pytest.raises(InputError, match=r"loglikelihood: .*logprobs: false.*cannot score"):
        model.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])
    assert s.bodies == []


@pytest.mark.parametrize("value", ["false", 0, None])
def test_logprobs_must_be_a_bool(value):
    with pytest.raises(InputError, match="logprobs: expected true or false"):
        OpenAICompatModel("http://127.0.0.1:1/v1", model="m", logprobs=value)


def test_info_records_the_option(stub):
    s = stub(canned={"data": [{"id": "m"}]})
    on, off = (OpenAICompatModel(s.base_url, model="m", logprobs=v).info() for v in (True, False))
    assert (on.logprob_source, on.extra["logprobs"]) == ("top-k", True)
    assert (off.logprob_source, off.extra["logprobs"]) == ("none", False)


def test_qa_without_logprobs_through_a_real_server(server, tmp_path):
    """TriviaQA collected through the llama.cpp server with and without log-probs: the same
    seeded answers; without, the records hold no log-probs, the token-level signals are missing
    and the sampled-answer signals are those of the run with log-probs; the collection's
    manifest records the option."""
    from calibbench.collect import collect
    from calibbench.tasks.qa import TriviaQATask

    task = TriviaQATask(n_samples=3, num_fewshot=3)
    items = pd.DataFrame({"item_id": ["a", "b", "c"],
                          "question": ["What is the capital of France", "Who wrote Hamlet",
                                       "What colour is the sky"],
                          "answers": [["Paris"], ["Shakespeare"], ["blue"]]})  # fmt: skip
    requests = task.requests(items)
    graded, records = {}, {}
    for logprobs in (True, False):
        model = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING, logprobs=logprobs)
        out = collect(model, requests, tmp_path / str(logprobs), progress=False)
        records[logprobs] = pd.read_parquet(out / "records.parquet")
        graded[logprobs] = task.grade(items, records[logprobs])
        manifest = json.loads((out / "manifest.json").read_text())["model"]
        assert manifest["extra"]["logprobs"] is logprobs
    assert records[True]["texts"].map(list).tolist() == records[False]["texts"].map(list).tolist()
    assert all(len(lp) == 0 for row in records[False]["token_logprobs"] for lp in row)
    on = records[True]
    # this server drops the stop's tokens, so only an immediate stop has no log-probs
    assert all(len(lp) > 0 for texts, lps in zip(on["texts"], on["token_logprobs"], strict=True)
               for text, lp in zip(texts, lps, strict=True) if text)  # fmt: skip
    token = ["confidence", "geometric_mean", "min_token_prob", "semantic_entropy_weighted"]
    assert graded[False][token].isna().all().all() and graded[True][token].notna().any().all()
    sampled = ["answer", "correct", "sampling_agreement", "largest_cluster_share",
               "semantic_entropy", "n_semantic_sets"]  # fmt: skip
    pd.testing.assert_frame_equal(graded[False][sampled], graded[True][sampled])
    assert graded[False][sampled[2:]].notna().all().all()


def test_a_server_without_prompt_logprobs_is_a_clear_error(stub):
    # llama.cpp's llama-server: with echo=True only the generated token has log-probs
    def generated_only(request):
        answer = json.loads(json.dumps(CANNED))
        answer["choices"][0]["logprobs"]["text_offset"] = [len(request["prompt"])]
        return answer

    s = stub(canned=generated_only)
    with pytest.raises(InputError, match="no log-probabilities for the prompt with echo"):
        OpenAICompatModel(s.base_url, model="m").score_text(["The capital of France is"])


def test_a_timeout_names_the_url(stub):
    s = stub(delay=3.0)
    model = OpenAICompatModel(s.base_url, model="m", timeout=0.3, max_retries=1, backoff=0.0)
    start = time.monotonic()
    with pytest.raises(InputError, match=f"{s.base_url}/completions: no answer within timeout"):
        model.generate([PROMPT])
    assert time.monotonic() - start < 2.0
    assert s.attempts() == 2


def test_a_refused_connection_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    model = OpenAICompatModel(url, model="m", max_retries=1, backoff=0.0)
    with pytest.raises(InputError, match=f"{url}/completions: cannot connect"):
        model.generate([PROMPT])


def test_the_api_key_is_sent_as_a_bearer_token(stub, monkeypatch):
    monkeypatch.setenv("CALIBBENCH_API_KEY", "sk-test")
    s = stub()
    OpenAICompatModel(s.base_url, model="m").generate([PROMPT])
    assert s.seen[0][1]["Authorization"] == "Bearer sk-test"


def test_a_server_that_cannot_start_raises_with_its_log(gguf, tmp_path):
    log = tmp_path / "server.log"
    with pytest.raises(InputError, match=r"(?s)exited with code 2.*invalid int value: 'ten'"):
        with LlamaCppServer(gguf, log_path=log, extra_args=("--n_ctx", "ten")):
            pass
    assert "invalid int value" in log.read_text()


def test_the_server_stops_and_its_temporary_log_goes_on_exit(gguf):
    with LlamaCppServer(gguf, n_ctx=64, n_threads=THREADS) as srv:
        url, log = srv.base_url, srv.log_path
        assert log.is_file()
    assert not log.exists()
    with pytest.raises(InputError, match="cannot connect"):
        OpenAICompatModel(url, model="m", max_retries=0).info()


# -- concurrency ---------------------------------------------------------------------------------


def test_results_do_not_depend_on_the_concurrency(server, bos_server):
    prompts = ["Once upon a time", "The capital of France is", "def add(a, b):", "My name is"]
    requests = [GenerationRequest(p, max_tokens=6, temperature=1.0, n=2, seed=3) for p in prompts]
    requests.append(GenerationRequest("The sky is", max_tokens=6, n=3))  # greedy: sent once
    one = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING).generate(requests)
    four = OpenAICompatModel(server.base_url, extra_body=PLAIN_SAMPLING, concurrency=4)
    for a, b in zip(one, four.generate(requests), strict=True):
        assert [c.text for c in a.completions] == [c.text for c in b.completions]
        for x, y in zip(a.completions, b.completions, strict=True):
            np.testing.assert_allclose(x.token_logprobs, y.token_logprobs, atol=ATOL)
    assert len(one[-1].completions) == 3
    scored_one = OpenAICompatModel(bos_server.base_url).loglikelihood(LL_REQUESTS)
    scored_four = OpenAICompatModel(bos_server.base_url, concurrency=3).loglikelihood(LL_REQUESTS)
    for a, b in zip(scored_one, scored_four, strict=True):
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=ATOL)
        assert (a.n_context_tokens, a.is_greedy) == (b.n_context_tokens, b.is_greedy)


def test_requests_are_in_flight_together_up_to_the_concurrency(stub):
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def canned(body: dict) -> dict:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return CANNED

    server = stub(canned=canned)
    model = OpenAICompatModel(server.base_url, model="m", concurrency=3)
    requests = [GenerationRequest(f"prompt {i}", max_tokens=1, temperature=1.0, n=2, seed=i)
                for i in range(4)]  # fmt: skip
    results = model.generate(requests)
    assert [len(r.completions) for r in results] == [2, 2, 2, 2]
    assert server.attempts() == 8
    assert state["most"] == 3  # never more than the concurrency, and it was reached
    seeds = sorted(json.loads(b)["seed"] for b in server.bodies)
    assert seeds == sorted(i + j for i in range(4) for j in range(2))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_requests_reuse_at_most_concurrency_connections(stub, concurrency):
    def canned(body: dict) -> dict:
        time.sleep(0.05)  # so that the threads overlap
        return CANNED

    s = stub(canned=canned, keep_alive=True)
    requests = [GenerationRequest(f"prompt {i}", max_tokens=1, temperature=1.0, n=4, seed=i)
                for i in range(3)]  # fmt: skip
    with OpenAICompatModel(s.base_url, model="m", concurrency=concurrency) as model:
        model.generate(requests)
        model.generate(requests)
    assert s.attempts() == 24
    assert 1 <= len(s.clients) <= concurrency


@pytest.mark.parametrize("value", [0, 65, 2.5])
def test_invalid_concurrency_raises(value):
    with pytest.raises(InputError, match="concurrency"):
        OpenAICompatModel("http://127.0.0.1:1/v1", model="m", concurrency=value)
