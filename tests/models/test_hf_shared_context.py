"""HFModel's shared-context log-likelihood scoring (each unique context forwarded once, the
continuations after its cached keys and values) against the same requests scored one at a time,
each forwarded whole. The models run in float64, where the two computations agree to ~1e-12
nats, so the 1e-5 tolerance is far above rounding and far below what a wrong cache row, mask or
position id gives (float32 rounding alone differs by ~1e-5 between batch shapes)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never download

import numpy as np
import pytest
import torch

from calibbench.metrics.token import TokenCalibration
from calibbench.models.base import LoglikelihoodRequest
from calibbench.models.hf import HFModel

pytestmark = pytest.mark.model

#: Multiple-choice items: contexts of different lengths (so they are padded in one batch) shared
#: by 4, 3, 2 and 1 requests, with one-token and multi-token continuations. "Answer: " and
#: "Answer:" are one context once lm-eval moves the trailing space to the continuation.
ITEMS = [
    (
        "Question: Which gas do plants take from the air to make food?\nAnswer:",
        [" carbon dioxide", " oxygen", " nitrogen from the soil", " water vapour"],
    ),
    ("Two plus two is ", ["4", "four, of course"]),
    ("Two plus two is", [" five"]),
    ("Paris is in", [" France", " the north of France"]),
    ("", ["Hello world"]),
]


def shared_requests() -> list[LoglikelihoodRequest]:
    return [LoglikelihoodRequest(context, o) for context, options in ITEMS for o in options]


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])
def model64(request):
    with HFModel.builtin(request.param, device="cpu", dtype=torch.float64) as model:
        yield model


def one_at_a_time(model: HFModel, reqs, accumulator, monkeypatch):
    """Every request alone (batch_size 1), forwarded whole (no shared context)."""
    with monkeypatch.context() as m:
        m.setattr(model, "share_context", False)
        m.setattr(model, "batch_size", 1)
        return [model.loglikelihood([r], accumulator=accumulator)[0] for r in reqs]


@pytest.mark.parametrize("window", [None, 8], ids=["model-window", "window-8"])
def test_shared_context_scores_equal_one_at_a_time(model64, window, monkeypatch):
    config = model64.model.config
    if window is not None:
        if getattr(config, "sliding_window", None) is None:
            pytest.skip("the model has no sliding-window layers")
        # contexts longer than the window: the cached sliding layers keep only its last keys
        monkeypatch.setattr(config, "sliding_window", window)
    assert model64.share_context
    reqs = shared_requests()
    vocab = model64.info().vocab_size
    got_acc, want_acc = (TokenCalibration(vocab, temperatures=(0.7, 1.0, 1.5)) for _ in range(2))
    got = model64.loglikelihood(reqs, accumulator=got_acc)
    want = one_at_a_time(model64, reqs, want_acc, monkeypatch)
    lengths = {len(g.token_ids) for g in got}
    assert 1 in lengths and max(lengths) > 2
    for g, w in zip(got, want, strict=True):
        assert (g.token_ids, g.is_greedy, g.n_context_tokens) == (
            w.token_ids,
            w.is_greedy,
            w.n_context_tokens,
        )
        np.testing.assert_allclose(g.token_logprobs, w.token_logprobs, rtol=0, atol=1e-5)
        assert g.logprob == pytest.approx(w.logprob, abs=1e-5)
    assert got_acc.n_positions == want_acc.n_positions == sum(len(g.token_ids) for g in got)
    got_state, want_state = got_acc.state_dict(), want_acc.state_dict()
    assert got_state.keys() == want_state.keys()
    for name, value in got_state.items():
        if value.dtype.kind == "f":  # sums over positions
            np.testing.assert_allclose(value, want_state[name], rtol=0, atol=1e-5)
        else:  # counts and the configuration
            np.testing.assert_array_equal(value, want_state[name])


def test_a_shared_context_is_forwarded_once(model64):
    context, options = ITEMS[0]
    reqs = [LoglikelihoodRequest(context, o) for o in options]
    forwarded = []
    hook = model64.model.register_forward_pre_hook(
        lambda _, args, kwargs: forwarded.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        results = model64.loglikelihood(reqs)
    finally:
        hook.remove()
    n_context = results[0].n_context_tokens
    tails = [len(r.token_ids) - 1 for r in results]  # the last token is never an input
    assert 0 in tails and len(set(tails)) > 2
    # the context once (one row), then the continuation of each multi-token option after it
    rows = sum(t > 0 for t in tails)
    assert forwarded == [torch.Size([1, n_context]), torch.Size([rows, max(tails)])]
