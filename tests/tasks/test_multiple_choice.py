"""Multiple-choice tasks: lm-eval's definitions, graded as lm-eval grades them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from calibbench.errors import InputError
from calibbench.tasks.multiple_choice import MultipleChoiceTask, mmlu_subjects


def test_formats_and_offline_items():
    letter = MultipleChoiceTask("mmlu", "letter", ["abstract_algebra"])
    items = letter.items()
    assert len(items) == 100 and items["item_id"].is_unique
    first = items.iloc[0]
    assert first.context.startswith("The following are multiple choice questions")
    assert first.context.endswith("\nAnswer:") and first.choices == [" A", " B", " C", " D"]
    cloze = MultipleChoiceTask("mmlu", "cloze", ["abstract_algebra"]).items()
    assert cloze.item_id.tolist() == items.item_id.tolist()  # ids do not depend on the format
    assert cloze.iloc[0].choices[first.gold] == " " + cloze.iloc[0].choice_texts[first.gold]
    info = MultipleChoiceTask("arc_easy", "letter").dataset()
    assert (info.n_items, info.split, info.licence) == (570, "validation", "CC BY-SA 4.0")
    assert len(mmlu_subjects()) == 57


def test_grading_from_option_loglikelihoods():
    task = MultipleChoiceTask("arc_easy", "cloze")
    items = task.items().head(2)
    lls = [[-3.0, -1.0, -2.0, -9.0], [-5.0, -4.0, -12.0, -4.5]]
    n_tok = [[1, 4, 1, 1], [2, 2, 6, 1]]
    records = pd.DataFrame(
        {"request_id": [f"{i}/{k}" for i in items.item_id for k in range(4)],
         "logprob": [x for row in lls for x in row],
         "token_ids": [[0] * n for row in n_tok for n in row]}
    )  # fmt: skip
    graded = task.grade(items, records)
    for row, ll, nt, item in zip(graded.itertuples(), lls, n_tok, items.itertuples(), strict=True):
        p = softmax(ll)
        assert row.pred == int(np.argmax(ll)) and row.confidence == pytest.approx(p.max())
        assert row.correct == (row.pred == item.gold)
        norm = np.array(ll) / np.array(nt)
        assert row.pred_token_norm == int(np.argmax(norm))
        assert row.confidence_token_norm == pytest.approx(softmax(norm).max())
        chars = [len(c) for c in item.choice_texts]
        assert row.correct_acc_norm == (int(np.argmax(np.array(ll) / chars)) == item.gold)
        assert row.p_gold == pytest.approx(p[item.gold])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("squad",), "unknown multiple-choice task"),
        (("hellaswag", "letter"), "has no 'letter' format"),
        (("mmlu", "letter", ["astrology"]), "unknown subjects"),
        (("arc_easy", "cloze", ["x"]), "has no subsets"),
        (("arc_easy", "essay"), "format must be one of"),
    ],
)
def test_bad_task_options_name_the_problem(args, match):
    with pytest.raises(InputError, match=match):
        MultipleChoiceTask(*args)


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "fmt", "subsets"),
    [("mmlu", "letter", ["abstract_algebra"]), ("arc_easy", "cloze", None)],
)
def test_accuracy_equals_lm_eval_on_the_same_model(name, fmt, subsets):
    import lm_eval

    from calibbench.models.builtin import gguf_path
    from calibbench.models.hf import HFModel, dequantised_dir

    limit = 20
    task = MultipleChoiceTask(name, fmt, subsets)
    items = task.items().head(limit)
    with HFModel.builtin("smollm2-135m") as model:
        req = task.requests(items)
        from calibbench.models.base import LoglikelihoodRequest

        results = model.loglikelihood(
            [LoglikelihoodRequest(c, k) for c, k in zip(req.context, req.continuation, strict=True)]
        )
    records = pd.DataFrame(
        {"request_id": req.request_id, "logprob": [r.logprob for r in results],
         "token_ids": [list(r.token_ids) for r in results]}
    )  # fmt: skip
    graded = task.grade(items, records)
    pretrained = dequantised_dir(gguf_path("smollm2-135m"))
    lm_task = next(iter(task.lm_eval_tasks().values()))
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={pretrained},dtype=float32",
        tasks=[lm_task],
        limit=limit,
        batch_size=1,
        device="cpu",
    )
    metrics = out["results"][lm_task.config.task]
    assert graded["correct"].mean() == metrics["acc,none"]
    if "acc_norm,none" in metrics:
        assert graded["correct_acc_norm"].mean() == metrics["acc_norm,none"]
