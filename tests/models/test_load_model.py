"""`load_model` builds each runtime from a configuration entry, or says what is wrong."""

from __future__ import annotations

import urllib.request

import pytest

from calibbench.errors import InputError
from calibbench.models import GenerationRequest, load_model

pytestmark = pytest.mark.model


def test_builtin_entries_load_in_both_local_runtimes():
    for runtime in ("llamacpp", "hf"):
        with load_model("smollm2-135m", {"runtime": runtime, "builtin": "smollm2-135m"}) as m:
            info = m.info()
            assert (info.runtime, info.name, info.vocab_size) == (runtime, "smollm2-135m", 49152)
            assert info.n_parameters == 134_515_008  # llama.cpp's and torch's own counts


def test_served_api_entry_generates_and_stops_its_server():
    spec = {"runtime": "openai", "serve": "smollm2-135m", "n_ctx": 512}
    model = load_model("smollm2-135m-api", spec)
    url = model.info().source
    try:
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


@pytest.mark.parametrize("builtin", ["smollm2-135m", "gemma3-270m"])
def test_a_request_scores_the_same_whatever_came_before(builtin):
    # The llama.cpp runtime reuses the KV cache of a shared prefix; for Gemma 3's sliding-window
    # cache that once changed a later request's log-likelihood by up to 0.13 nats.
    from calibbench.models import LoglikelihoodRequest

    first = "The following are questions about marketing.\n\nQuestion: What is a brand?\nAnswer:"
    second = "The following are questions about marketing.\n\nQuestion: What is a price?\nAnswer:"
    with load_model("m", {"runtime": "llamacpp", "builtin": builtin}) as model:
        alone = [r.logprob for r in model.loglikelihood(
            [LoglikelihoodRequest(second, " A"), LoglikelihoodRequest(second, " B")])]  # fmt: skip
    with load_model("m", {"runtime": "llamacpp", "builtin": builtin}) as model:
        after = [r.logprob for r in model.loglikelihood(
            [LoglikelihoodRequest(first, " A"), LoglikelihoodRequest(first, " B"),
             LoglikelihoodRequest(second, " A"), LoglikelihoodRequest(second, " B")])][2:]  # fmt: skip
    assert after == pytest.approx(alone, abs=1e-5)
