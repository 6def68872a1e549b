"""What the workflow asks the package about a model x task pair, and the signal registry."""

from __future__ import annotations

import pytest

from calibbench import plan
from calibbench.confidence.signals import SIGNALS, signals
from calibbench.errors import InputError
from calibbench.tasks import REGISTRY, get_task

LOCAL = {"runtime": "llamacpp", "builtin": "smollm2-135m"}
SERVED = {"runtime": "openai", "serve": "smollm2-135m"}
CHAT = {"runtime": "openai", "base_url": "https://api.openai.com/v1", "endpoint": "chat"}
VLLM = {"runtime": "openai", "base_url": "http://127.0.0.1:8000/v1"}


@pytest.mark.parametrize(
    ("spec", "followup", "p_true"),
    [(LOCAL, True, True), (SERVED, False, False), (CHAT, False, False), (VLLM, True, True)],
)
def test_qa_follow_up_and_p_true_need_a_model_that_scores_prompts(spec, followup, p_true):
    qa = get_task("triviaqa")
    assert plan.has_followup("m", spec, qa) is followup
    assert ("p_true" in plan.pair_signals("m", spec, qa)) is p_true
    assert not plan.has_followup("m", spec, get_task("humaneval"))


def test_token_statistics_need_full_distributions_and_scored_text():
    options = get_task("arc_easy")
    letters = get_task({"task": "arc_easy", "format": "letter", "answer": "first_token"})
    assert plan.accumulates("m", LOCAL, options) and plan.accumulates("m", LOCAL, get_task("lm"))
    assert not plan.accumulates("m", LOCAL, letters)  # answers are generated, not scored
    assert not plan.accumulates("m", VLLM, options)  # an API's top-k only
    assert not plan.accumulates("m", LOCAL, get_task("triviaqa"))


def test_signals_in_table_order_and_known_to_each_task_kind():
    assert signals("multiple_choice") == ["confidence", "confidence_token_norm"]
    meaning = ["largest_cluster_share", "semantic_entropy", "semantic_entropy_weighted",
               "n_semantic_sets"]  # fmt: skip
    assert signals("qa") == [
        "confidence", "geometric_mean", "min_token_prob", "sampling_agreement", "p_true",
        *meaning, "verbalized", "verbalized_two_stage", "p_true_reflection",
    ]  # fmt: skip
    assert "p_true" not in signals("qa", scores_prompts=False)
    assert "p_true_reflection" not in signals("qa", scores_prompts=False)
    # an optional signal is graded only where the task switches it on
    assert "verbalized" not in signals("qa", task=get_task("triviaqa"))
    assert "verbalized" in signals("qa", task=get_task({"task": "triviaqa", "verbalized": True}))
    assert signals("code") == ["confidence", "geometric_mean", "min_token_prob",
                               "sampling_agreement", *meaning]  # fmt: skip
    assert signals("language_modelling") == []
    with pytest.raises(InputError, match="unknown task kind"):
        signals("essay")
    assert len({s.name for s in SIGNALS}) == len(SIGNALS)
    everything = {"task": "triviaqa", "verbalized": True, "two_stage": True, "reflection": True}
    for name in ("mmlu", "humaneval", "triviaqa", everything):
        task = get_task(name)
        assert task.kind == REGISTRY[task.name].kind
        # every signal of its kind is a column its grading documents
        assert set(signals(task.kind, task=task)) <= {"confidence", *task.confidence_columns}
