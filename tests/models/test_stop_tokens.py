"""Both local runtimes keep the token that ended a completion (the one that completed a stop
sequence, or the end-of-sequence token) with its log-prob, while the text is cut before it.
Checked against teacher-forced scoring of prompt + generated tokens by the runtime's own library
called directly: transformers' forward pass, llama.cpp's logits of an evaluated sequence."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never download

import llama_cpp
import numpy as np
import pytest
import torch

import calibbench.models.llamacpp as llamacpp_module
from calibbench.models.base import GenerationRequest
from calibbench.models.builtin import gguf_path
from calibbench.models.hf import HFModel
from calibbench.models.llamacpp import LlamaCppModel

pytestmark = pytest.mark.model

PROMPT = "Python is a programming language"


@pytest.fixture(scope="module")
def hf():
    with HFModel.builtin("smollm2-135m", device="cpu") as model:
        yield model


@pytest.fixture(scope="module")
def llamacpp():
    with LlamaCppModel.builtin("smollm2-135m", n_ctx=512, n_threads=1) as model:
        yield model


@pytest.fixture(scope="module")
def direct_llama():
    llm = llama_cpp.Llama(
        str(gguf_path("smollm2-135m")), n_ctx=512, n_threads=1, logits_all=True, verbose=False
    )
    yield llm
    llm.close()


def teacher_forced_hf(model: HFModel, prompt: list[int], ids: tuple[int, ...]) -> np.ndarray:
    """log p(ids[i] | prompt + ids[:i]) from one transformers forward pass (float32, as the
    runtime computes them: in float64 the log-softmax over 49,152 logits moves by ~1e-5)."""
    with torch.inference_mode():
        logits = model.model(torch.tensor([prompt + list(ids)])).logits[0].float()
    logp = logits[len(prompt) - 1 : -1].log_softmax(-1)
    return logp.gather(1, torch.tensor(ids)[:, None])[:, 0].double().numpy()


def teacher_forced_llama(llm: llama_cpp.Llama, prompt: list[int], ids: tuple[int, ...]):
    """The same from llama.cpp's logits of the evaluated sequence."""
    llm.reset()
    llm.eval(prompt + list(ids))
    z = np.asarray(llm.scores[len(prompt) - 1 : len(prompt) + len(ids) - 1], dtype=np.float64)
    logp = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    return logp[np.arange(len(ids)), list(ids)]


@pytest.fixture(params=["hf", "llamacpp"])
def runtime(request, hf):
    """(model, teacher-forced reference) per runtime."""
    if request.param == "hf":
        return hf, lambda prompt, ids: teacher_forced_hf(hf, prompt, ids)
    model, llm = request.getfixturevalue("llamacpp"), request.getfixturevalue("direct_llama")
    return model, lambda prompt, ids: teacher_forced_llama(llm, prompt, ids)


def greedy(model, prompt: str, **options) -> object:
    (result,) = model.generate([GenerationRequest(prompt, max_tokens=12, **options)])
    return result.completions[0]


def test_a_stop_sequence_keeps_the_tokens_through_the_one_that_completed_it(runtime):
    model, reference = runtime
    full = greedy(model, PROMPT)
    assert "".join(full.tokens) == full.text and full.finish_reason == "length"
    starts = np.cumsum([0] + [len(t) for t in full.tokens])
    token = next(i for i in range(2, len(full.tokens) - 2) if len(full.tokens[i]) >= 2)
    cut = int(starts[token]) + 1  # starts inside that token, ends two tokens or more later
    stop = full.text[cut : int(starts[token + 2]) + 1]
    assert full.text.find(stop) == cut
    done = greedy(model, PROMPT, stop=("never seen\x00", stop))
    completed = token + 3  # the token holding the stop's last character completed it
    assert done.text == full.text[:cut]
    assert done.finish_reason == "stop"
    assert done.token_ids == full.token_ids[:completed]
    assert done.tokens == full.tokens[:completed]
    assert len(done.top_logprobs) == completed
    assert "".join(done.tokens).startswith(done.text)
    prompt = model.tokenize(PROMPT)
    np.testing.assert_allclose(done.token_logprobs, reference(prompt, done.token_ids), atol=1e-5)


def test_an_immediate_stop_has_an_empty_text_and_the_stop_tokens_logprob(runtime):
    model, reference = runtime
    full = greedy(model, PROMPT)
    done = greedy(model, PROMPT, stop=(full.tokens[0],))
    assert (done.text, done.finish_reason) == ("", "stop")
    assert done.token_ids == full.token_ids[:1]
    assert len(done.token_logprobs) == 1
    want = reference(model.tokenize(PROMPT), done.token_ids)
    np.testing.assert_allclose(done.token_logprobs, want, atol=1e-5)


def test_an_end_of_sequence_token_is_kept_out_of_the_text(runtime, monkeypatch):
    """The model's first greedy token made an end-of-sequence token: generation ends at once,
    with that token and its log-prob."""
    model, reference = runtime
    full = greedy(model, PROMPT)
    first = full.token_ids[0]
    if isinstance(model, HFModel):
        monkeypatch.setattr(model, "_eos", model._eos | {first})
    else:
        is_eog = llamacpp_module.llama_is_eog
        monkeypatch.setattr(
            llamacpp_module, "llama_is_eog", lambda vocab, t: t == first or is_eog(vocab, t)
        )
    done = greedy(model, PROMPT)
    assert (done.text, done.finish_reason, done.token_ids) == ("", "stop", (first,))
    np.testing.assert_allclose(
        done.token_logprobs, reference(model.tokenize(PROMPT), done.token_ids), atol=1e-5
    )
