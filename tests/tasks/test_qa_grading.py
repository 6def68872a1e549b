"""Exact match against lm-evaluation-harness's own metric; token F1 against hand-computed cases
and torchmetrics' SQuAD implementation."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from calibbench.tasks.qa_grading import (
    NQ_OPEN_EXACT_MATCH,
    TRIVIAQA_EXACT_MATCH,
    ExactMatchRules,
    exact_match,
    filter_answer,
    squad_normalise,
    token_f1,
)

RULES = {
    "triviaqa": TRIVIAQA_EXACT_MATCH,
    "nq_open": NQ_OPEN_EXACT_MATCH,
    "none": ExactMatchRules(),
    "case": ExactMatchRules(ignore_case=True),
    "two_patterns": ExactMatchRules(ignore_punctuation=True, regexes_to_ignore=("b", "\x00")),
}

# (answer, references): case, punctuation, articles, Unicode, NUL and width edge cases.
CASES = [
    ("Sunset Blvd.", ["Sunset Blvd", "Sunset Boulevard"]),
    ("sunset boulevard", ["Sunset Blvd", "West Sunset Boulevard", "Sunset Boulevard"]),
    ("The Beatles", ["Beatles"]),
    ("THE Beatles", ["Beatles"]),
    ("the Beatles", ["The Beatles"]),
    ("Beatles the", ["Beatles"]),
    ("a cat", ["cat"]),
    ("An apple", ["Apple"]),
    ("theatre", ["atre"]),
    ("U.S.", ["US"]),
    ("Campbell-Bannerman", ["Campbell Bannerman", "CampbellBannerman"]),
    ("Hello—world", ["Hello world", "Helloworld"]),
    ("l\u2019Oréal", ["l'Oréal", "LOréal"]),
    ("@", ["+-*/", "@"]),
    ("", ["+-*/"]),
    ("", ["x"]),
    ("İstanbul", ["istanbul", "i̇stanbul"]),
    ("İ", ["i"]),
    ("İ", ["İx"]),
    ("İx", ["i̇x", "İx"]),
    ("ab\x00", ["ab"]),
    ("İ\x00", ["i̇"]),
    ("x", []),
]


@pytest.fixture(scope="module")
def lm_eval_exact_match():
    metrics = pytest.importorskip(
        "lm_eval.api.metrics", reason="the reference needs lm-eval: pip install lm-eval"
    )

    def reference(answer: str, references: list[str], rules: ExactMatchRules) -> bool:
        """lm-eval's exact match for a multi-target task, called as ConfigurableTask does."""
        if not references:  # lm-eval scores the mean of an empty comparison: NaN, not > 0
            return False
        kwargs = {"ignore_case": rules.ignore_case, "ignore_punctuation": rules.ignore_punctuation}
        if rules.regexes_to_ignore:
            kwargs["regexes_to_ignore"] = list(rules.regexes_to_ignore)
        scores = metrics.exact_match_fn(
            references=references, predictions=[answer] * len(references), **kwargs
        )["exact_match"]
        return bool(scores > 0.0)

    return reference


@pytest.mark.parametrize("rules", list(RULES.values()), ids=list(RULES))
@pytest.mark.parametrize("answer, references", CASES)
def test_exact_match_equals_lm_eval_on_edge_cases(lm_eval_exact_match, answer, references, rules):
    assert exact_match(answer, references, rules) == lm_eval_exact_match(answer, references, rules)


def test_exact_match_equals_lm_eval_on_random_strings(lm_eval_exact_match):
    rng = random.Random(0)
    alphabet = [*"abAB .,!?-'\"()İıß é\u2013\u2019\x00", "The ", "the ", "a ", "An ", "an ", "A "]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    n_correct = {name: 0 for name in RULES}
    for _ in range(1500):
        refs = [text() for _ in range(rng.randint(1, 4))]
        answer = rng.choice([text(), rng.choice(refs).upper(), "The " + rng.choice(refs) + "!"])
        for name, rules in RULES.items():
            expected = lm_eval_exact_match(answer, refs, rules)
            assert exact_match(answer, refs, rules) == expected, (answer, refs, name)
            n_correct[name] += expected
    assert all(0 < n < 1500 for n in n_correct.values()), n_correct  # both outcomes exercised


def test_exact_match_rules_are_lm_eval_task_configs():
    lm_eval = pytest.importorskip("lm_eval", reason="the reference needs lm-eval")
    yaml = pytest.importorskip("yaml")
    tasks = Path(lm_eval.__file__).parent / "tasks"
    for path, rules in [
        (tasks / "triviaqa" / "default.yaml", TRIVIAQA_EXACT_MATCH),
        (tasks / "nq_open" / "nq_open.yaml", NQ_OPEN_EXACT_MATCH),
    ]:
        config = yaml.safe_load(path.read_text())
        (metric,) = config["metric_list"]
        assert metric["metric"] == "exact_match"
        assert metric["ignore_case"] is rules.ignore_case
        assert metric["ignore_punctuation"] is rules.ignore_punctuation
        assert tuple(metric.get("regexes_to_ignore", ())) == rules.regexes_to_ignore
        filters = [f["function"] for f in config["filter_list"][0]["filter"]]
        assert filters == ["remove_whitespace", "take_first"]


def test_filter_answer_is_lm_eval_remove_whitespace():
    extraction = pytest.importorskip("lm_eval.filters.extraction", reason="needs lm-eval")
    texts = [" Paris", "Paris \t", "\u3000Tokyo\u00a0", "", " \n", "a b"]
    (filtered,) = extraction.WhitespaceFilter().apply([texts], [{}])
    assert [filter_answer(t) for t in texts] == filtered
    assert filter_answer(" New York \t") == "New York"


def test_nq_open_removes_articles_trivia_does_not():
    assert exact_match("The Beatles", ["Beatles"], NQ_OPEN_EXACT_MATCH)
    assert not exact_match("The Beatles", ["Beatles"], TRIVIAQA_EXACT_MATCH)
    # the pattern is case-sensitive and needs the trailing space
    assert not exact_match("THE Beatles", ["Beatles"], NQ_OPEN_EXACT_MATCH)
    assert not exact_match("Beatles the", ["Beatles"], NQ_OPEN_EXACT_MATCH)
    # only ASCII punctuation is ignored
    assert exact_match("U.S.", ["us"], TRIVIAQA_EXACT_MATCH)
    assert not exact_match("Hello—world", ["Hello world"], TRIVIAQA_EXACT_MATCH)


def test_exact_match_is_the_max_over_aliases():
    aliases = ["Sunset Blvd", "West Sunset Boulevard", "Sunset Boulevard"]
    assert exact_match("sunset boulevard", aliases, TRIVIAQA_EXACT_MATCH)
    assert not exact_match("sunset boulevard", aliases[:2], TRIVIAQA_EXACT_MATCH)
    assert not exact_match("anything", [], TRIVIAQA_EXACT_MATCH)


@pytest.mark.parametrize(
    "answer, references, expected",
    [
        ("Paris", ["paris."], 1.0),
        # tokens [cat, sat] vs [cat, sat, on, mat]: P = 1, R = 1/2
        ("the cat sat", ["cat sat on mat"], 2 / 3),
        # [new, york, city] vs [york]: P = 1/3, R = 1
        ("New York City", ["York"], 0.5),
        # repeated tokens count once per match: [la, la, la] vs [la]: P = 1/3, R = 1
        ("la la la", ["la"], 0.5),
        # max over aliases: 2 of 2 vs 2 of 3 tokens (0.8) beats 1 of 2 vs 1 of 2 (0.5)
        ("Sunset Boulevard", ["Sunset Blvd", "West Sunset Boulevard"], 0.8),
        ("Sunset Boulevard", ["Sunset Blvd", "West Sunset Boulevard", "sunset boulevard"], 1.0),
        ("London", ["Paris", "Rome"], 0.0),
        # SQuAD v1.1: no tokens on either side is 0, also when both are empty
        ("", ["Paris"], 0.0),
        ("the", ["a"], 0.0),
        ("Paris", [], 0.0),
    ],
)
def test_token_f1_hand_computed(answer, references, expected):
    assert token_f1(answer, references) == pytest.approx(expected)


def test_squad_normalise():
    assert squad_normalise("  The  Quick, brown-fox!  an ANT a") == "quick brownfox ant"
    assert squad_normalise("theatre Anthem") == "theatre anthem"


def test_token_f1_equals_torchmetrics_squad():
    squad = pytest.importorskip("torchmetrics.functional.text.squad", reason="needs torchmetrics")
    rng = random.Random(1)
    words = ["the", "a", "Paris", "paris,", "New", "York", "city", "of", "lights", "U.S.", "x"]
    n_nonzero = 0
    for i in range(300):
        answer = " ".join(rng.choices(words, k=rng.randint(1, 5)))
        refs = [" ".join(rng.choices(words, k=rng.randint(1, 5))) for _ in range(3)]
        if not squad_normalise(answer) or not all(squad_normalise(r) for r in refs):
            continue  # torchmetrics follows SQuAD v2 for empty answers
        target = {"answers": {"answer_start": [0] * len(refs), "text": refs}, "id": str(i)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = float(squad.squad({"prediction_text": answer, "id": str(i)}, target)["f1"])
        assert 100 * token_f1(answer, refs) == pytest.approx(expected, abs=1e-4)
        n_nonzero += expected > 0
    assert n_nonzero > 50
