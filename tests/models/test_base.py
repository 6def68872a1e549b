"""The request logic every runtime shares (`ModelRuntime`, `LocalRuntime`), on a runtime whose
tokens are words: the pair encoding against lm-evaluation-harness's own `TemplateLM`, the stop
search against a scan of every offset, and the checks that name the request or field."""

from __future__ import annotations

import dataclasses
import re

import pytest

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.metrics.topk import topk_calibration
from calibbench.models.base import (
    MAX_TOP_LOGPROBS,
    GenerationRequest,
    GenerationResult,
    LocalRuntime,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelInfo,
    ScoredText,
    first_stop,
)

WORD = re.compile(r"\s*\S+|\s+")  # a word with the whitespace before it, or trailing whitespace
BOS, EOS = 1, 2


class Vocabulary:
    """Word -> id, ids assigned on first sight (after BOS and EOS)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [self.ids.setdefault(w, 3 + len(self.ids)) for w in WORD.findall(text)]


class WordModel(LocalRuntime):
    """A local runtime whose primitives record what they are given."""

    def __init__(self, bos: bool, n_ctx: int = 16):
        self.vocab, self.bos, self.n_ctx = Vocabulary(), bos, n_ctx
        self.vocab_size, self._prefix = 100, BOS if bos else EOS
        self.seen: list[object] = []

    def info(self) -> ModelInfo:
        return ModelInfo("words", "words", "test", "", self.vocab_size)

    def tokenize(self, text: str) -> list[int]:
        return [BOS] * self.bos + self.vocab.encode(text)

    def _length_limit(self) -> tuple[str, int]:
        return "n_ctx", self.n_ctx

    def _loglikelihood_tokens(self, pairs, accumulator):
        self.seen = list(pairs)
        return [LoglikelihoodResult(0.0, True, tuple(c), (0.0,) * len(c), len(x)) for x, c in pairs]

    def _score_tokens(self, encoded, accumulator):
        self.seen = list(encoded)
        return [ScoredText(tuple(ids), ()) for ids in encoded]

    def _generate_tokens(self, requests, prompts):
        self.seen = list(prompts)
        return [GenerationResult(()) for _ in requests]


def lm_eval_words(model: WordModel):
    """lm-eval's own `TemplateLM` encoding pairs with the same words."""
    lm_eval_model = pytest.importorskip("lm_eval.api.model", reason="the reference is lm-eval")

    class Words(lm_eval_model.TemplateLM):
        eot_token_id = EOS
        _loglikelihood_tokens = loglikelihood_rolling = generate_until = None

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return model.tokenize(string)

    return Words()


PAIRS = [
    ("The capital of France is", " Paris"),
    ("The capital of France is ", "Paris"),
    ("Question: 2 + 2?\nAnswer:", " 4"),
    ("Question: 2 + 2?\nAnswer: \n ", "4 and more"),
    ("a", ""),
    ("a ", ""),
    ("word", "s are split"),
]


@pytest.mark.parametrize("bos", [False, True])
def test_pairs_are_encoded_as_lm_eval_encodes_them(bos):
    model = WordModel(bos)
    reference = lm_eval_words(model)
    for context, continuation in PAIRS:
        assert model._encode_pair(context, continuation) == reference._encode_pair(
            context, continuation
        )


@pytest.mark.parametrize("bos", [False, True])
def test_an_empty_context_is_the_prefix_token(bos):
    model = WordModel(bos)
    for context in ("", "  "):
        ids, continuation = model._encode_pair(context, "Hello world")
        assert ids == [BOS if bos else EOS]
        assert continuation == model.vocab.encode(context + "Hello world")


def test_loglikelihood_hands_checked_pairs_to_the_primitive():
    model = WordModel(bos=True)
    requests = [LoglikelihoodRequest(c, k) for c, k in PAIRS if k]
    results = model.loglikelihood(requests)
    assert model.seen == [model._encode_pair(r.context, r.continuation) for r in requests]
    assert [r.n_context_tokens for r in results] == [len(x) for x, _ in model.seen]
    with pytest.raises(InputError, match=r"requests\[1\]\.continuation: no tokens"):
        model.loglikelihood([LoglikelihoodRequest("a", " b"), LoglikelihoodRequest("a", "")])
    with pytest.raises(InputError, match=r"requests\[0\]: 17 tokens exceed n_ctx=16"):
        model.loglikelihood([LoglikelihoodRequest("a " * 15, "b")])


def test_score_text_checks_texts_and_lengths():
    model = WordModel(bos=False, n_ctx=3)
    assert [s.token_ids for s in model.score_text(["", "a b c"])] == [(), (3, 4, 5)]
    with pytest.raises(InputError, match=r"texts: expected a sequence of strings"):
        model.score_text("a b")
    with pytest.raises(InputError, match=r"texts\[1\]: 4 tokens exceed n_ctx=3"):
        model.score_text(["a", "a b c d"])


def test_accumulators_must_match_the_distributions():
    model = WordModel(bos=False)
    model.score_text(["a b"], accumulator=TokenCalibration(100))
    for wrong in (TokenCalibration(99), TokenCalibration(100, approximation="top-99")):
        with pytest.raises(InputError, match=r"accumulator: .*TokenCalibration\(100\)"):
            model.loglikelihood([LoglikelihoodRequest("a", " b")], accumulator=wrong)
    with pytest.raises(
        InputError, match=r"approximation 'top-5 \+ unseen-mass bucket' do not match"
    ):
        WordModel(bos=False).score_text(["a"], accumulator=topk_calibration(5))


def test_generation_prompts_are_encoded_and_checked():
    model = WordModel(bos=False, n_ctx=8)
    model.generate([GenerationRequest("a b", max_tokens=6), GenerationRequest("", max_tokens=7)])
    assert model.seen == [model.tokenize("a b"), [EOS]]
    with pytest.raises(InputError, match=r"requests\[0\] \(prompt \+ max_tokens\): 9 tokens"):
        model.generate([GenerationRequest("a b", max_tokens=7)])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", None),
        ("max_tokens", 0),
        ("max_tokens", 2.0),
        ("temperature", -0.1),
        ("temperature", float("inf")),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("n", 0),
        ("top_logprobs", -1),
        ("top_logprobs", MAX_TOP_LOGPROBS + 1),
        ("stop", "\n"),
        ("stop", ("\n", "")),
        ("logprobs", "no"),
        ("logprobs", None),
        ("logprobs", 0),
    ],
)
def test_invalid_generation_requests_name_the_field(field, value):
    model = WordModel(bos=False)
    bad = dataclasses.replace(GenerationRequest("a", max_tokens=1), **{field: value})
    with pytest.raises(InputError, match=rf"requests\[1\]\.{field}: expected"):
        model.generate([GenerationRequest("a", max_tokens=1), bad])
    assert model.seen == []  # nothing ran


def test_first_stop_is_the_earliest_offset_where_a_stop_starts():
    texts = ["Paris.\nThe end", "a, b. c", "no stop here", "", "..", "x\n\ny"]
    stops = [(".",), ("\n", "."), (",", ". "), ("\n\n", "\n"), ("zz",), ()]
    for text in texts:
        for stop in stops:
            starts = [i for i in range(len(text)) if any(text.startswith(s, i) for s in stop)]
            assert first_stop(text, stop) == (starts[0] if starts else None)
