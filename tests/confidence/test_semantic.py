"""Semantic clusters of sampled answers and their signals, against closed forms and a brute-force
computation written out with Python's math module."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibbench.confidence.semantic import (
    cluster_answers,
    largest_cluster_share,
    n_semantic_sets,
    semantic_entropy,
)
from calibbench.errors import InputError
from calibbench.tasks.qa_grading import TRIVIAQA_EXACT_MATCH, exact_match


def same_answer(a: str, b: str) -> bool:
    return exact_match(a, [b], TRIVIAQA_EXACT_MATCH)


def test_answers_cluster_by_the_tasks_normalised_equality():
    answers = ["Paris", "paris.", "London", "PARIS!", "london", "Rome"]
    assert cluster_answers(answers, same_answer).tolist() == [0, 0, 1, 0, 1, 2]
    assert cluster_answers(answers).tolist() == [0, 1, 2, 3, 4, 5]  # exact equality


def test_equivalence_must_hold_both_ways():
    contains = lambda a, b: b in a  # noqa: E731  ("Paris, France" contains "Paris", not back)
    assert cluster_answers(["Paris", "Paris, France", "Paris"], contains).tolist() == [0, 1, 0]


def test_closed_forms():
    assert semantic_entropy([0, 0, 0, 0]) == 0.0
    assert semantic_entropy([0, 1, 2, 3, 4]) == pytest.approx(math.log(5))
    assert semantic_entropy([0, 0, 0, 1]) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )
    assert n_semantic_sets([0, 0, 1]) == 2
    assert largest_cluster_share([0, 0, 1]) == pytest.approx(2 / 3)
    assert largest_cluster_share([3, 3, 3]) == 1.0


def test_equal_sequence_probabilities_give_the_discrete_entropy():
    labels = [0, 1, 1, 2, 2, 2]
    assert semantic_entropy(labels, [-3.0] * 6) == pytest.approx(semantic_entropy(labels))


def test_weighted_entropy_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        labels = rng.integers(0, 4, n)
        logprobs = rng.normal(-5.0, 3.0, n)
        mass: dict[int, float] = {}
        for c, lp in zip(labels.tolist(), logprobs.tolist(), strict=True):
            mass[c] = mass.get(c, 0.0) + math.exp(lp)
        total = sum(mass.values())
        want = -sum(m / total * math.log(m / total) for m in mass.values())
        assert semantic_entropy(labels, logprobs) == pytest.approx(want, abs=1e-12)
        counts = np.bincount(labels)
        assert n_semantic_sets(labels) == int((counts > 0).sum())
        assert largest_cluster_share(labels) == pytest.approx(counts.max() / n)


def test_very_unlikely_sequences_do_not_underflow():
    labels, logprobs = [0, 0, 1], np.array([-2.0, -2.5, -4.0])
    shifted = semantic_entropy(labels, logprobs - 2000.0)  # exp(-2000) is 0.0 in float64
    assert shifted == pytest.approx(semantic_entropy(labels, logprobs), abs=1e-12)
    assert shifted > 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cluster_answers([]), "no answers"),
        (lambda: semantic_entropy([]), "non-empty"),
        (lambda: n_semantic_sets(np.array([0.5, 1.0])), "integers"),
        (lambda: semantic_entropy([0, 1], [-1.0]), "1 log-probs for 2 answers"),
        (lambda: semantic_entropy([0, 1], [-1.0, math.nan]), "finite"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_judged_equivalence_needs_both_orders():
    from calibbench.confidence.semantic import judged_equivalence, same_meaning_context

    same = judged_equivalence({("a", "b"): 0.9, ("b", "a"): 0.51, ("a", "c"): 0.9,
                               ("c", "a"): 0.5})  # fmt: skip
    assert same("a", "a") and same("x", "x")  # equal texts need no judgement
    assert same("a", "b") and same("b", "a")
    assert not same("a", "c") and not same("c", "a")  # 0.5 is not more likely yes than no
    with pytest.raises(InputError, match="no judgement of 'b' against 'c'"):
        same("b", "c")
    assert cluster_answers(["a", "c", "b", "a"], same).tolist() == [0, 1, 0, 0]
    context = same_meaning_context("Capital of France?", "Paris", "paris, France")
    assert context.startswith("Question: Capital of France?\nAnswer 1: Paris\nAnswer 2: paris")
    assert context.endswith(" (A) Yes\n (B) No\nThe correct option is:")
