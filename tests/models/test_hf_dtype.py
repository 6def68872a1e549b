"""HFModel in a reduced precision: the body in bfloat16, the output layer in float32 on the
dequantised weights. Pinned against the float32 model: the output layer computed by hand in
float64 from the bfloat16 body's hidden state and the float32 weights, the identity recorded,
and log-probs and accumulated distributions close to float32's. The texts are module docstrings
of the standard library."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never download

import importlib

import numpy as np
import pytest
import torch

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.models.base import LoglikelihoodRequest
from calibbench.models.hf import DTYPES, HFModel, _parse_dtype
from calibbench.models.registry import DTYPE_NAMES

_DOCS = (" ".join((importlib.import_module(m).__doc__ or "").split()) for m in (
    "json", "argparse", "email", "logging", "pickle", "csv", "difflib", "heapq", "doctest",
    "unittest", "sqlite3", "zipfile", "pydoc", "tarfile",
))  # fmt: skip
TEXTS = [d[:600] for d in _DOCS if len(d) >= 480][:8]


def test_dtype_names_are_the_registry_s():
    assert tuple(DTYPES) == DTYPE_NAMES
    assert _parse_dtype("bfloat16") is torch.bfloat16
    assert _parse_dtype("torch.float16") is torch.float16
    assert _parse_dtype(torch.float32) is torch.float32
    assert _parse_dtype(None) is None
    for bad in ("bf16", "int8", 16):
        with pytest.raises(InputError, match=r"dtype: expected one of"):
            _parse_dtype(bad)


@pytest.fixture(scope="module")
def pair():
    with (
        HFModel.builtin("smollm2-135m", device="cpu") as full,
        HFModel.builtin("smollm2-135m", device="cpu", dtype="bfloat16") as half,
    ):
        yield full, half


@pytest.mark.model
def test_output_layer_is_a_float32_copy_of_the_dequantised_weights(pair):
    full, half = pair
    head, embed = half.model.get_output_embeddings(), half.model.get_input_embeddings()
    assert head.weight.dtype == torch.float32 and embed.weight.dtype == torch.bfloat16
    assert head.weight.data_ptr() != embed.weight.data_ptr()  # untied
    assert torch.equal(head.weight, full.model.get_output_embeddings().weight)
    body = [p for n, p in half.model.named_parameters() if "lm_head" not in n]
    assert body and all(p.dtype == torch.bfloat16 for p in body)
    # as transformers loads a model in bfloat16: the RoPE frequencies stay float32
    buffers = dict(half.model.named_buffers())
    assert buffers["model.rotary_emb.inv_freq"].dtype == torch.float32
    assert torch.equal(buffers["model.rotary_emb.inv_freq"], full.model.model.rotary_emb.inv_freq)
    ids = torch.tensor([half.tokenize(TEXTS[0])[:64]])
    with torch.inference_mode():
        logits = half.model(input_ids=ids).logits
        hidden = half.model.model(input_ids=ids).last_hidden_state
    by_hand = hidden.double() @ full.model.get_output_embeddings().weight.double().T
    assert logits.dtype == torch.float32
    assert torch.allclose(logits.double(), by_hand, atol=1e-4, rtol=0)


@pytest.mark.model
def test_identity_records_both_precisions_and_the_same_size(pair):
    full, half = pair
    a, b = full.info(), half.info()
    assert (a.extra["dtype"], b.extra["dtype"]) == ("float32", "bfloat16")
    assert a.extra["output_dtype"] == b.extra["output_dtype"] == "float32"
    assert a.quantization == "Q4_1 dequantised to float32"
    assert b.quantization == "Q4_1 dequantised to bfloat16 (float32 output layer)"
    assert a.n_parameters == b.n_parameters  # the untied copy is not counted twice
    assert a.sha256 == b.sha256


@pytest.mark.model
def test_bfloat16_log_probs_stay_close_to_float32(pair):
    """Per token the log-probs move by a few hundredths of a nat on average (llama.cpp and
    transformers in float32 differ by about twice that); the accumulated histograms too."""
    full, half = pair
    assert len(TEXTS) == 8
    requests = [LoglikelihoodRequest(t[:300], t[300:480]) for t in TEXTS]
    grid = np.array([0.8, 1.0, 1.25])
    acc = {m: TokenCalibration(full.vocab_size, n_bins=15, temperatures=grid) for m in pair}
    res = {m: m.loglikelihood(requests, acc[m]) for m in pair}
    a = np.concatenate([r.token_logprobs for r in res[full]])
    b = np.concatenate([r.token_logprobs for r in res[half]])
    assert [r.token_ids for r in res[full]] == [r.token_ids for r in res[half]]
    assert len(a) > 150
    assert np.abs(a - b).mean() < 0.06
    assert np.abs(a - b).max() < 1.0
    assert 0 < np.abs(a - b).mean()  # the body really ran in bfloat16
    x, y = acc[full].compute(), acc[half].compute()
    assert x.n_positions == y.n_positions == len(a)
    assert np.abs(x.full_ece - y.full_ece).max() < 0.015
    assert np.abs(x.nll - y.nll).max() < 0.02
    assert np.abs(x.full_count - y.full_count).sum() < 1e-3 * x.full_count.sum()
