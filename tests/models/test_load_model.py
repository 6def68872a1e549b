"""`load_model` builds each runtime from a configuration entry, or says what is wrong."""

from __future__ import annotations

import urllib.request

import pytest

from calibbench.errors import InputError
from calibbench.models import GenerationRequest, LoglikelihoodRequest, load_model
from calibbench.models.registry import runtime_for

pytestmark = pytest.mark.model


def test_builtin_entries_load_in_both_local_runtimes():
    for runtime in ("llamacpp", "hf"):
        with load_model("smollm2-135m", {"runtime": runtime, "builtin": "smollm2-135m"}) as m:
            info = m.info()
            assert (info.runtime, info.name, info.vocab_size) == (runtime, "smollm2-135m", 49152)
            assert info.n_parameters == 134_515_008  # llama.cpp's and torch's own counts


def test_served_api_entry_generates_and_stops_its_server():
    spec = {"runtime": "openai", "serve": "smollm2-135m", "n_ctx": 512, "n_threads": 1}
    model = load_model("smollm2-135m-api", spec)
    url = model.info().source
    try:
        command = model._server.command()
        assert command[command.index("--n_threads") + 1] == "1"
        assert command[command.index("--n_threads_batch") + 1] == "1"
        out = model.generate([GenerationRequest("The capital of France is", max_tokens=4)])
        local = load_model("x", {"runtime": "llamacpp", "builtin": "smollm2-135m"})
        want = local.generate([GenerationRequest("The capital of France is", max_tokens=4)])
        assert out[0].completions[0].text == want[0].completions[0].text
        info = model.info()
        assert info.logprob_source == "top-k"
        assert (info.family, info.n_parameters) == ("smollm2", 134_515_008)
        assert info.sha256 == local.info().sha256 and info.extra["served"] == "smollm2-135m"
        local.close()
    finally:
        model.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/models", timeout=2)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"runtime": "tensorflow"}, "runtime: expected one of"),
        ({"runtime": "llamacpp"}, "needs 'builtin' or 'path'"),
        ({"runtime": "llamacpp", "builtin": "gpt-5"}, "unknown built-in model 'gpt-5'"),
        ({"runtime": "llamacpp", "path": "/nope.gguf"}, "no GGUF file at /nope.gguf"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m", "n_ctxx": 3}, "n_ctxx"),
    ],
)
def test_bad_entries_name_the_problem(spec, match):
    with pytest.raises(InputError, match=match):
        load_model("m", spec)


def test_registry_options_are_the_runtime_constructors_options():
    import inspect

    from calibbench.models.hf import HFModel
    from calibbench.models.llamacpp import LlamaCppModel
    from calibbench.models.openai_compat import OpenAICompatModel
    from calibbench.models.registry import RUNTIMES

    loader_keys = {"llamacpp": {"name", "model_path"}, "hf": {"name", "source"},
                   "openai": {"name", "base_url", "api_key"}}  # fmt: skip
    extra = {"llamacpp": set(), "hf": set(), "openai": {"api_key_env", "n_ctx", "n_threads"}}
    for name, cls in (("llamacpp", LlamaCppModel), ("hf", HFModel), ("openai", OpenAICompatModel)):
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
        declared = set(RUNTIMES[name].options) | set(RUNTIMES[name].sources)
        assert params - loader_keys[name] == set(RUNTIMES[name].options) - extra[name], name
        assert declared >= params - loader_keys[name]


def test_api_key_comes_from_the_named_variable_never_from_the_entry(monkeypatch):
    with pytest.raises(InputError, match="api_key: a key is never written"):
        load_model("m", {"runtime": "openai", "base_url": "http://127.0.0.1:9/v1",
                         "api_key": "sk-secret"})  # fmt: skip
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(InputError, match="MY_KEY is not set"):
        load_model("m", {"runtime": "openai", "base_url": "http://127.0.0.1:9/v1",
                         "api_key_env": "MY_KEY"})  # fmt: skip
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    model = load_model("m", {"runtime": "openai", "base_url": "http://127.0.0.1:9/v1",
                             "model": "x", "api_key_env": "MY_KEY"})  # fmt: skip
    assert model.api_key == "sk-from-env"


@pytest.mark.parametrize("builtin", ["smollm2-135m", "gemma3-270m"])
def test_a_request_scores_the_same_whatever_came_before(builtin):
    # The llama.cpp runtime reuses the KV cache of a shared prefix; for Gemma 3's sliding-window
    # cache that once changed a later request's log-likelihood by up to 0.13 nats.
    from calibbench.models import LoglikelihoodRequest

    first = "The following are questions about marketing.\n\nQuestion: What is a brand?\nAnswer:"
    second = "The following are questions about marketing.\n\nQuestion: What is a price?\nAnswer:"

    def scores(*contexts: str) -> list[float]:
        requests = [LoglikelihoodRequest(c, k) for c in contexts for k in (" A", " B")]
        with load_model("m", {"runtime": "llamacpp", "builtin": builtin}) as model:
            return [r.logprob for r in model.loglikelihood(requests)]

    assert scores(first, second)[2:] == pytest.approx(scores(second), abs=1e-5)


def test_scoring_runtime_routes_scoring_to_transformers_and_generation_to_llamacpp(tmp_path):
    spec = {"runtime": "llamacpp", "builtin": "smollm2-135m", "scoring_runtime": "hf",
            "n_threads": 2, "batch_size": 8}  # fmt: skip
    assert runtime_for("m", spec, "generate") == {
        "runtime": "llamacpp", "builtin": "smollm2-135m", "n_threads": 2, "batch_size": 8}
    assert runtime_for("m", spec, "loglikelihood") == runtime_for("m", spec, "score") == {
        "runtime": "hf", "builtin": "smollm2-135m", "batch_size": 8}
    gguf = {"runtime": "llamacpp", "path": "/models/x.gguf", "scoring_runtime": "hf"}
    assert runtime_for("m", gguf, "score") == {
        "runtime": "hf", "path": "/models", "gguf_file": "x.gguf"}
    with pytest.raises(InputError, match=r"models\.m\.spec\.scoring_runtime: transformers reads"):
        runtime_for("m", {"runtime": "llamacpp", "path": "/m/x.bin", "scoring_runtime": "hf"},
                    "score")  # fmt: skip
    own = dict(spec, scoring_runtime={"runtime": "hf", "dtype": "bfloat16", "batch_size": 4})
    assert runtime_for("m", own, "score") == {
        "runtime": "hf", "builtin": "smollm2-135m", "batch_size": 4, "dtype": "bfloat16"}
    assert runtime_for("m", own, "generate") == runtime_for("m", spec, "generate")
    spec.pop("batch_size")  # not an option of llama.cpp's constructor
    request = LoglikelihoodRequest("The capital of France is", " Paris")
    with load_model("m", spec, "loglikelihood") as scorer, load_model("m", spec) as generator:
        assert (scorer.info().runtime, generator.info().runtime) == ("hf", "llamacpp")
        assert scorer.info().sha256 == generator.info().sha256  # the same weights file
        a, b = scorer.loglikelihood([request])[0], generator.loglikelihood([request])[0]
        assert a.token_ids == b.token_ids and abs(a.logprob - b.logprob) < 0.05
