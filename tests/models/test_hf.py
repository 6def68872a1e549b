"""HFModel against llama.cpp (tokens, next-token distributions), against transformers called
directly (scores, accumulated distributions, argmax decoding) and against itself one request at a
time (batching and padding). Texts are module docstrings of the standard library."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never download

import dataclasses
import hashlib
import importlib
import re

import llama_cpp
import numpy as np
import pytest
import torch

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.models.base import GenerationRequest, LoglikelihoodRequest
from calibbench.models.builtin import gguf_path
from calibbench.models.hf import CACHE_DIR, HFModel

pytestmark = pytest.mark.model

MODULES = (
    "json", "argparse", "email", "textwrap", "logging", "pickle", "csv", "difflib", "heapq",
    "bisect", "doctest", "unittest", "sqlite3", "zipfile", "pydoc", "ftplib", "smtplib", "tarfile",
)  # fmt: skip
_DOCS = [importlib.import_module(m).__doc__ or "" for m in MODULES]
#: Raw paragraphs (line breaks, indentation, code examples): the harder case for tokenisers.
PARAGRAPHS = [p for d in _DOCS for p in re.split(r"\n\s*\n", d) if 40 <= len(p.strip()) <= 600][:50]
#: Sentences of running English.
SENTENCES = [
    s
    for d in _DOCS
    for s in re.split(r"(?<=[.!?])\s+", " ".join(d.split()))
    if 40 <= len(s) <= 300 and ">>>" not in s
][:50]


@pytest.fixture(scope="module")
def smollm():
    with HFModel.builtin("smollm2-135m", device="cpu") as model:
        yield model


@pytest.fixture(scope="module")
def gemma():
    with HFModel.builtin("gemma3-270m", device="cpu") as model:
        yield model


@pytest.fixture
def model(request):
    return request.getfixturevalue(request.param)


def requests() -> list[LoglikelihoodRequest]:
    """Per sentence: the second half given the first, the same with the context's trailing space
    (lm-eval moves it to the continuation), and a one-word option (its input is a prefix of the
    first request's, so they share a forward pass)."""
    out = []
    for s in SENTENCES[:12]:
        words = s.split(" ")
        k = max(1, len(words) // 2)
        context, rest = " ".join(words[:k]), " ".join(words[k:])
        out.append(LoglikelihoodRequest(context, " " + rest))
        out.append(LoglikelihoodRequest(context + " ", rest))
        out.append(LoglikelihoodRequest(context, " " + words[k]))
    return out


def direct_logits(model: HFModel, ids: list[int]) -> torch.Tensor:
    """Logits (T, V) of one unpadded sequence from the transformers model itself, float64."""
    with torch.inference_mode():
        return model.model(torch.tensor([ids])).logits[0].double()


@pytest.mark.parametrize(
    ("model", "name"), [("smollm", "smollm2-135m"), ("gemma", "gemma3-270m")], indirect=["model"]
)
def test_tokenisation_equals_llama_cpp(model, name):
    vocab = llama_cpp.Llama(str(gguf_path(name)), vocab_only=True, verbose=False)
    # add_bos=True lets llama.cpp add BOS where the GGUF says the model uses one.
    want = [vocab.tokenize(p.encode(), add_bos=True, special=False) for p in PARAGRAPHS]
    got = [model.tokenize(p) for p in PARAGRAPHS]
    assert len(PARAGRAPHS) == 50
    assert [i for i in range(50) if got[i] != want[i]] == []
    starts_with_bos = {ids[0] == vocab.token_bos() for ids in got}
    assert starts_with_bos == {name == "gemma3-270m"}


def test_next_token_distributions_agree_with_llama_cpp(smollm):
    path = gguf_path("smollm2-135m")
    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=256, verbose=False)
    scored = smollm.score_text(SENTENCES)
    top1, kl = [], []
    for text in scored:
        ids = list(text.token_ids)
        llm.reset()
        llm.eval(ids)
        ref = torch.tensor(np.array(llm.scores[: len(ids)]), dtype=torch.float64).log_softmax(-1)
        mine = direct_logits(smollm, ids).log_softmax(-1)
        top1.append(ref.argmax(-1) == mine.argmax(-1))
        kl.append((ref.exp() * (ref - mine)).sum(-1))
        # score_text reports the log-probs of these logits at the next tokens
        want = mine[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        np.testing.assert_allclose(text.token_logprobs, want, atol=1e-4)
    agreement, mean_kl = float(torch.cat(top1).double().mean()), float(torch.cat(kl).mean())
    print(f"llama.cpp vs transformers: top-1 agreement {agreement:.4f}, mean KL {mean_kl:.5f}")
    assert agreement >= 0.90
    assert mean_kl <= 0.02


@pytest.mark.parametrize("model", ["smollm", "gemma"], indirect=True)
def test_loglikelihood_is_the_sum_of_score_text_logprobs(model):
    reqs = requests()
    results = model.loglikelihood(reqs)
    scored = model.score_text([r.context + r.continuation for r in reqs])
    for res, text in zip(results, scored, strict=True):
        n = len(res.token_ids)
        assert res.token_ids == text.token_ids[-n:]
        assert res.n_context_tokens == len(text.token_ids) - n
        np.testing.assert_allclose(res.token_logprobs, text.token_logprobs[-n:], atol=1e-4)
        assert res.logprob == pytest.approx(sum(text.token_logprobs[-n:]), abs=1e-4)
    for spaced, moved in zip(results[0::3], results[1::3], strict=True):
        assert spaced.token_ids == moved.token_ids
        assert spaced.logprob == pytest.approx(moved.logprob, abs=1e-4)


def test_batched_scores_equal_one_at_a_time(smollm, monkeypatch):
    reqs, texts = requests(), SENTENCES[:16]
    assert len({len(smollm.tokenize(t)) for t in texts}) > 1  # so batches are padded
    runs = []
    for batch_size, max_batch_tokens in ((8, 2048), (16, 96)):
        monkeypatch.setattr(smollm, "batch_size", batch_size)
        monkeypatch.setattr(smollm, "max_batch_tokens", max_batch_tokens)
        runs.append((smollm.loglikelihood(reqs), smollm.score_text(texts)))
    single = [smollm.loglikelihood([r])[0] for r in reqs]
    single_text = [smollm.score_text([t])[0] for t in texts]
    for batched, batched_text in runs:
        for a, b in zip(batched, single, strict=True):
            assert (a.token_ids, a.is_greedy, a.n_context_tokens) == (
                b.token_ids,
                b.is_greedy,
                b.n_context_tokens,
            )
            np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
        for a, b in zip(batched_text, single_text, strict=True):
            assert a.token_ids == b.token_ids
            np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)


def test_is_greedy_matches_the_argmax(smollm):
    reqs = requests()
    for r, res in zip(reqs, smollm.loglikelihood(reqs), strict=True):
        ids = smollm.tokenize(r.context + r.continuation)
        n = len(res.token_ids)
        argmax = direct_logits(smollm, ids)[-n - 1 : -1].argmax(-1)
        assert res.is_greedy == (argmax.tolist() == ids[-n:])
    # a continuation made of the model's own argmax tokens is greedy
    prompt = smollm.tokenize(SENTENCES[0])
    best = int(direct_logits(smollm, prompt)[-1].argmax())
    (res,) = smollm.loglikelihood(
        [LoglikelihoodRequest(SENTENCES[0], smollm.tokenizer.decode([best]))]
    )
    assert res.is_greedy and res.token_ids == (best,)


def test_options_after_one_context_share_a_forward_pass(smollm):
    calls = []
    hook = smollm.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        options = [" A", " B", " C", " D"]  # one token each: the inputs are the context alone
        results = smollm.loglikelihood([LoglikelihoodRequest("Answer:", o) for o in options])
    finally:
        hook.remove()
    assert len(calls) == 1
    logp = direct_logits(smollm, smollm.tokenize("Answer:"))[-1].log_softmax(-1)
    for option, res in zip(options, results, strict=True):
        assert res.token_ids == tuple(smollm.tokenize(option))
        assert res.logprob == pytest.approx(float(logp[res.token_ids[0]]), abs=1e-4)


def test_empty_context_is_scored_after_the_prefix_token(smollm):
    # lm-eval's convention: the first continuation token is predicted from BOS (or EOS if none)
    (res,) = smollm.loglikelihood([LoglikelihoodRequest("", "Hello world")])
    ids = [smollm.tokenizer.bos_token_id, *smollm.tokenize("Hello world")]
    logp = direct_logits(smollm, ids)[:-1].log_softmax(-1)
    want = logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    assert res.n_context_tokens == 1
    np.testing.assert_allclose(res.token_logprobs, want, atol=1e-4)


def test_accumulators_see_the_full_distributions(smollm):
    temperatures = (0.7, 1.0, 1.5)
    vocab = smollm.info().vocab_size
    reqs = [r for r in requests() if not r.context.endswith(" ")]
    texts = SENTENCES[20:30]
    got_ll, got_text, want_ll, want_text = (
        TokenCalibration(vocab, temperatures=temperatures) for _ in range(4)
    )
    smollm.loglikelihood(reqs, accumulator=got_ll)
    smollm.score_text(texts, accumulator=got_text)
    tok = smollm.tokenizer  # SmolLM2 adds no BOS: the plain encodings are the model's inputs
    for r in reqs:
        context = tok(r.context, add_special_tokens=False)["input_ids"]
        whole = tok(r.context + r.continuation, add_special_tokens=False)["input_ids"]
        n = len(whole) - len(context)
        want_ll.update(direct_logits(smollm, whole)[-n - 1 : -1].float(), torch.tensor(whole[-n:]))
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        want_text.update(direct_logits(smollm, ids)[:-1].float(), torch.tensor(ids[1:]))
    for got, want in ((got_ll, want_ll), (got_text, want_text)):
        g, w = got.compute(), want.compute()
        assert g.n_positions == w.n_positions
        for name in ("full_ece", "top1_ece", "brier", "nll", "argmax_accuracy", "entropy"):
            np.testing.assert_allclose(getattr(g, name), getattr(w, name), rtol=1e-4, atol=1e-6)


def test_greedy_generation_equals_argmax_decoding_by_hand(smollm):
    prompts = ["The capital of France is", SENTENCES[3]]  # different lengths: left padding
    results = smollm.generate([GenerationRequest(p, max_tokens=6, top_logprobs=3) for p in prompts])
    for prompt, result in zip(prompts, results, strict=True):
        (done,) = result.completions
        prompt_ids, ids, logprobs, top = smollm.tokenize(prompt), [], [], []
        for _ in range(6):
            logp = direct_logits(smollm, prompt_ids + ids)[-1].log_softmax(-1)
            ids.append(int(logp.argmax()))
            logprobs.append(float(logp[ids[-1]]))
            top.append(logp.topk(3))
        assert done.token_ids == tuple(ids)
        assert done.finish_reason == "length"
        assert done.text == smollm.tokenizer.decode(ids)
        assert done.tokens == tuple(smollm.tokenizer.decode([i]) for i in ids)
        np.testing.assert_allclose(done.token_logprobs, logprobs, atol=1e-4)
        for alternatives, want in zip(done.top_logprobs, top, strict=True):
            assert [t for t, _ in alternatives] == [
                smollm.tokenizer.decode([i]) for i in want.indices.tolist()
            ]
            np.testing.assert_allclose([lp for _, lp in alternatives], want.values, atol=1e-4)


def test_sampling_is_reproducible_and_reports_raw_logprobs(smollm):
    prompt = "JSON is"
    request = GenerationRequest(prompt, max_tokens=8, temperature=1.5, n=3, seed=11)
    (first,) = smollm.generate([request])
    (again,) = smollm.generate([request])
    (alone,) = smollm.generate([dataclasses.replace(request, n=1, seed=12)])
    assert first == again
    assert alone.completions[0].token_ids == first.completions[1].token_ids
    assert len({c.token_ids for c in first.completions}) > 1
    prompt_ids = smollm.tokenize(prompt)
    for done in first.completions:
        # log p at temperature 1 of the raw logits, not of the tempered sampling distribution
        ids = prompt_ids + list(done.token_ids)
        logp = direct_logits(smollm, ids)[len(prompt_ids) - 1 : -1].log_softmax(-1)
        want = logp.gather(1, torch.tensor(done.token_ids)[:, None])[:, 0]
        np.testing.assert_allclose(done.token_logprobs, want, atol=1e-4)
    # a nucleus holding only the most likely token is greedy decoding
    (nucleus,) = smollm.generate([dataclasses.replace(request, top_p=1e-9, n=1)])
    (greedy,) = smollm.generate([GenerationRequest(prompt, max_tokens=8)])
    assert nucleus.completions[0].token_ids == greedy.completions[0].token_ids


def test_stop_sequence_cuts_the_text_and_keeps_its_tokens(smollm):
    prompt = "Python is a programming language"
    (full,) = smollm.generate([GenerationRequest(prompt, max_tokens=12)])[0].completions
    assert "".join(full.tokens) == full.text
    starts = np.cumsum([0] + [len(t) for t in full.tokens])[:-1]
    token = next(i for i in range(2, len(full.tokens)) if len(full.tokens[i]) >= 2)
    cut = int(starts[token]) + 1  # inside that token
    stop = full.text[cut : cut + 3]
    assert full.text.find(stop) == cut
    request = GenerationRequest(prompt, max_tokens=12, stop=("never seen\x00", stop))
    (done,) = smollm.generate([request])[0].completions
    assert done.text == full.text[:cut]
    assert done.finish_reason == "stop"
    # tokens are kept through the one holding the stop's last character, which completed it
    completed = int(np.searchsorted(starts, cut + 3))
    assert done.token_ids == full.token_ids[:completed]
    assert done.token_logprobs == full.token_logprobs[:completed]


def test_user_errors_name_the_field(smollm, monkeypatch):
    with pytest.raises(InputError, match="gguf_file="):
        HFModel(gguf_path("smollm2-135m"))
    with pytest.raises(InputError, match=r"requests\[1\]\.top_p"):
        smollm.generate([GenerationRequest("a"), GenerationRequest("b", top_p=0.0)])
    with pytest.raises(InputError, match="accumulator"):
        smollm.score_text(["a b c"], accumulator=TokenCalibration(10))
    with pytest.raises(InputError, match=r"requests\[0\]\.continuation"):
        smollm.loglikelihood([LoglikelihoodRequest("a", "")])
    monkeypatch.setattr(smollm, "max_length", 16)
    with pytest.raises(InputError, match=r"texts\[1\]"):
        smollm.score_text(["short", SENTENCES[0]])
    with pytest.raises(InputError, match=r"requests\[0\]"):
        smollm.loglikelihood([LoglikelihoodRequest(SENTENCES[0], " end")])
    with pytest.raises(InputError, match=r"requests\[0\]"):
        smollm.generate([GenerationRequest("Hello", max_tokens=16)])


@pytest.mark.parametrize(
    ("model", "name", "family", "quantization", "vocab"),
    [
        ("smollm", "smollm2-135m", "smollm2", "Q4_1", 49152),
        ("gemma", "gemma3-270m", "gemma3", "Q4_K_M", 262144),
    ],
    indirect=["model"],
)
def test_info_cites_the_gguf_file(model, name, family, quantization, vocab):
    path = gguf_path(name)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    info = model.info()
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    assert (info.name, info.family, info.runtime, info.source) == (name, family, "hf", str(path))
    assert info.sha256 == sha256
    assert info.quantization == f"{quantization} dequantised to float32"
    assert info.vocab_size == vocab == direct_logits(model, [1]).shape[-1]
    assert info.n_parameters == llama_cpp.llama_model_n_params(llm.model)
    assert (CACHE_DIR / sha256[:16] / "model.safetensors").is_file()
