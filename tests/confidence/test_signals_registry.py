"""Which signals a model without token log-probs has: the registry's `needs_logprobs` against a
list written out by hand, against what QA grading leaves missing for records stored without
log-probs, and through the plan for each kind of model entry."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from calibbench import plan
from calibbench.confidence.signals import BY_NAME, SIGNALS, signals
from calibbench.models.registry import RUNTIMES
from calibbench.tasks import get_task
from calibbench.tasks.qa import TriviaQATask

#: The signals computed from the generated tokens' log-probs (or the options' scores), by kind.
FROM_LOGPROBS = {
    "multiple_choice": ["confidence", "confidence_token_norm"],
    "qa": ["confidence", "geometric_mean", "min_token_prob", "semantic_entropy_weighted"],
    "code": ["confidence", "geometric_mean", "min_token_prob", "semantic_entropy_weighted"],
    "language_modelling": [],
}
#: What an API entry without log-probs keeps on open QA and code: sampled answers and their
#: clusters.
QA_WITHOUT_LOGPROBS = ["sampling_agreement", "largest_cluster_share", "semantic_entropy",
                       "n_semantic_sets"]  # fmt: skip

LOCAL = {"runtime": "llamacpp", "builtin": "smollm2-135m"}
HF = {"runtime": "hf", "builtin": "smollm2-135m"}
VLLM = {"runtime": "openai", "base_url": "http://127.0.0.1:8000/v1"}
NO_LOGPROBS = VLLM | {"logprobs": False}
SERVED_NO_LOGPROBS = {"runtime": "openai", "serve": "smollm2-135m", "logprobs": False}


@pytest.mark.parametrize("kind", sorted(FROM_LOGPROBS))
def test_without_logprobs_exactly_the_token_signals_drop(kind):
    full = signals(kind)
    kept = signals(kind, logprobs=False)
    assert [s for s in full if s not in kept] == FROM_LOGPROBS[kind]
    assert kept == [s for s in full if s not in FROM_LOGPROBS[kind]]  # order kept
    assert {s for s in full if BY_NAME[s].needs_logprobs} == set(FROM_LOGPROBS[kind])


def test_without_logprobs_or_prompt_scores_qa_keeps_the_sampled_answers():
    plain, verbalized = get_task("triviaqa"), get_task({"task": "triviaqa", "verbalized": True})
    assert signals("qa", False, plain, logprobs=False) == QA_WITHOUT_LOGPROBS
    assert signals("qa", False, verbalized, logprobs=False) == [*QA_WITHOUT_LOGPROBS, "verbalized"]
    assert signals("code", scores_prompts=False, logprobs=False) == QA_WITHOUT_LOGPROBS
    assert signals("multiple_choice", logprobs=False) == []


def _records(logprobs: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two items, a greedy answer and three samples each, with or without token log-probs."""
    items = pd.DataFrame({"item_id": ["q1", "q2"], "question": ["Capital of France?", "2 + 2?"],
                          "answers": [["Paris"], ["4", "four"]]})  # fmt: skip
    texts = [[" Paris"], [" Paris", " paris", " Lyon"], [" 5"], [" 4", " four", " 5"]]
    lps = [[[-0.2, -0.1]], [[-0.3], [-0.4], [-2.0]], [[-1.0]], [[-0.5], [-1.5], [-0.9]]]
    records = pd.DataFrame({
        "request_id": [f"q{i}/{s}" for i in (1, 2) for s in ("greedy", "samples")],
        "texts": texts,
        "token_logprobs": lps if logprobs else [[[] for _ in t] for t in texts],
    })  # fmt: skip
    return items, records


def test_the_flag_is_what_grading_leaves_missing_without_logprobs():
    """QA grading of records stored without log-probs (an API entry with logprobs: false):
    the columns of the signals that need log-probs are NaN, every other signal is a number."""
    task = TriviaQATask(n_samples=3)
    graded = {lp: task.grade(*_records(lp)) for lp in (True, False)}
    # P(True) needs a follow-up this model cannot send; without one it is missing either way
    columns = [s for s in signals("qa", task=task) if s != "p_true"]
    assert graded[True][columns].notna().all().all()
    missing = [c for c in columns if graded[False][c].isna().all()]
    assert missing == [s for s in columns if BY_NAME[s].needs_logprobs]
    assert graded[False][QA_WITHOUT_LOGPROBS].notna().all().all()
    for column in QA_WITHOUT_LOGPROBS:  # nothing that needs no log-probs changes
        pd.testing.assert_series_equal(graded[False][column], graded[True][column])
    assert graded[False]["sampling_agreement"].tolist() == [2 / 3, 1 / 3]
    assert graded[False]["n_semantic_sets"].tolist() == [2.0, 3.0]  # "4" and "four" differ
    assert math.isclose(graded[False]["largest_cluster_share"].iloc[0], 2 / 3)


@pytest.mark.parametrize(
    ("spec", "returns", "scores"),
    [(LOCAL, True, True), (HF, True, True), (VLLM, True, True), (NO_LOGPROBS, False, False),
     (SERVED_NO_LOGPROBS, False, False), (VLLM | {"logprobs": True}, True, True)],
)  # fmt: skip
def test_the_runtime_says_whether_a_model_returns_logprobs(spec, returns, scores):
    runtime = RUNTIMES[spec["runtime"]]
    assert runtime.returns_logprobs(spec) is returns
    assert runtime.scores_prompts(spec) is scores
    assert plan.scores_prompts("m", spec) is scores
    qa, code = get_task({"task": "triviaqa", "n_samples": 3}), get_task("humaneval")
    assert plan.has_followup("m", spec, qa) is scores
    if returns:
        assert plan.pair_signals("m", spec, qa) == signals("qa", True, qa)
        assert "confidence" in plan.pair_signals("m", spec, code)
    else:
        assert plan.pair_signals("m", spec, qa) == QA_WITHOUT_LOGPROBS
        assert plan.pair_signals("m", spec, code) == QA_WITHOUT_LOGPROBS


def test_every_local_runtime_returns_logprobs():
    for runtime in RUNTIMES.values():
        if runtime.full_distributions:
            assert runtime.returns_logprobs({"runtime": runtime.name, "logprobs": False})
    assert not any(s.needs_logprobs and s.needs_prompt_scores for s in SIGNALS)
