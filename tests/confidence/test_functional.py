"""Functional equivalence of real programs run in the sandbox, against outcomes worked out by
hand: equal implementations, different ones, crashing and hanging ones."""

from __future__ import annotations

import hashlib

import pytest

from calibbench.confidence.functional import (
    EMPTY,
    MAX_INPUTS,
    clustering_inputs,
    functional_equivalence,
    inputs_from_examples,
    inputs_from_tests,
    run_on_inputs,
)
from calibbench.confidence.semantic import cluster_answers, n_semantic_sets
from calibbench.errors import InputError

PROMPT = '''def add_all(xs: list, start=0):
    """Sum of xs plus start.
    >>> add_all([1, 2, 3])
    6
    >>> add_all([], 5)
    5
    >>> add_all([x for x in range(3)])
    3
    """
'''
TEST = """
def check(candidate):
    assert candidate([1, 2, 3]) == 6
    assert candidate([], 5) == 5
    assert candidate([-1, 1], 2) == 2
    assert candidate([1, 2, 3]) == 6
    assert candidate(xs=[1]) == 1
"""
INPUTS = [([1, 2, 3],), ([], 5), ([-1, 1], 2)]

LOOP = "    return start + sum(xs)\n"
FOLD = "    total = start\n    for x in xs:\n        total += x\n    return total\n"
FLOAT = "    return float(start + sum(xs))\n"  # equal numbers, another type
WRONG = "    return sum(xs)\n"  # ignores start
CRASH = "    return xs[0] + sum(xs[1:]) + start\n"  # IndexError on []
HANG = "    while True:\n        pass\n"
SYNTAX = "    return (\n"
CHATTY = "    print('hi' * 10000)\n    return start + sum(xs)\n"


def test_inputs_are_the_literal_calls_of_the_tests_and_the_examples():
    assert inputs_from_tests(TEST) == INPUTS  # repeated calls once, keyword calls skipped
    # the comprehension is not a literal: skipped
    assert inputs_from_examples(PROMPT, "add_all") == [([1, 2, 3],), ([], 5)]
    with pytest.raises(InputError, match="test: not valid Python"):
        inputs_from_tests("def check(:")


def test_outcomes_of_real_programs():
    ok = run_on_inputs(PROMPT + LOOP, "add_all", INPUTS)
    assert ok == tuple(
        "value:" + hashlib.sha256(f"int:{v}".encode()).hexdigest()[:16] for v in (6, 5, 2)
    )
    assert run_on_inputs(PROMPT + FOLD, "add_all", INPUTS) == ok
    assert run_on_inputs(PROMPT + CHATTY, "add_all", INPUTS) == ok  # its prints are discarded
    floats = run_on_inputs(PROMPT + FLOAT, "add_all", INPUTS)
    assert all(f != o for f, o in zip(floats, ok, strict=True))  # 6.0 is not 6
    crash = run_on_inputs(PROMPT + CRASH, "add_all", INPUTS)
    assert crash == (ok[0], "error:IndexError", ok[2])
    assert run_on_inputs(PROMPT + SYNTAX, "add_all", INPUTS) == ("error:SyntaxError",) * 3
    assert run_on_inputs(PROMPT + LOOP, "other", INPUTS) == ("error:NoFunction",) * 3
    assert run_on_inputs("import os\nos._exit(0)\n", "f", INPUTS) == ("stopped:failed",) * 3


def test_an_infinite_loop_times_out_without_raising():
    hang = run_on_inputs(PROMPT + HANG, "add_all", INPUTS, timeout=1.0)
    assert hang == ("timeout",) * 3
    # a loop on the second input only: the first keeps its value
    looping_on_empty = "    while not xs:\n        pass\n    return start + sum(xs)\n"
    ok = run_on_inputs(PROMPT + LOOP, "add_all", INPUTS)
    partial = run_on_inputs(PROMPT + looping_on_empty, "add_all", INPUTS, timeout=1.0)
    assert partial == (ok[0], "timeout", "timeout")


def test_clusters_of_sampled_completions():
    samples = [LOOP, WRONG, FOLD, CRASH, HANG, LOOP, SYNTAX, FLOAT]
    same = functional_equivalence(PROMPT, "add_all", samples, INPUTS, timeout=1.0)
    labels = cluster_answers(samples, same)
    # LOOP, FOLD and LOOP again agree; every other program is its own set
    assert labels.tolist() == [0, 1, 0, 2, 3, 0, 4, 5]
    assert n_semantic_sets(labels) == 6
    with pytest.raises(InputError, match="not one of the completions"):
        same(LOOP, "    return 0\n")


def test_empty_completions_are_one_cluster_of_their_own():
    none = "    return None\n"  # what the prompt alone (a docstring body) returns too
    samples = ["", none, LOOP, "", none]
    same = functional_equivalence(PROMPT, "add_all", samples, INPUTS)
    assert cluster_answers(samples, same).tolist() == [0, 1, 2, 0, 1]
    assert run_on_inputs(PROMPT, "add_all", INPUTS) == run_on_inputs(
        PROMPT + none, "add_all", INPUTS
    )
    assert EMPTY not in run_on_inputs(PROMPT, "add_all", INPUTS)


def test_clustering_inputs_come_from_the_tests_else_the_examples():
    assert clustering_inputs(TEST, PROMPT, "add_all") == (INPUTS, "tests")
    computed = "def check(candidate):\n    assert candidate(list(range(3))) == 3\n"
    assert clustering_inputs(computed, PROMPT, "add_all") == ([([1, 2, 3],), ([], 5)], "examples")
    assert clustering_inputs(computed, "def add_all(xs):\n", "add_all") == ([], "none")
    # 1e999 is inf, whose repr is no literal; at most MAX_INPUTS are kept, in order
    many = "def check(candidate):\n" + "".join(
        f"    assert candidate({i})\n" for i in ["1e999", *range(MAX_INPUTS + 5)]
    )
    inputs, source = clustering_inputs(many, PROMPT, "add_all")
    assert (inputs, source) == ([(i,) for i in range(MAX_INPUTS)], "tests")
    with pytest.raises(InputError, match="not valid Python"):
        clustering_inputs("def check(:", PROMPT, "add_all")


@pytest.mark.parametrize(
    ("entry_point", "inputs", "match"),
    [
        ("add all", INPUTS, "entry_point"),
        ("add_all", [], "inputs: expected 1"),
        ("add_all", [(1,)] * (MAX_INPUTS + 1), "inputs: expected 1"),
        ("add_all", [(object(),)], "literal"),
    ],
)
def test_bad_arguments_raise(entry_point, inputs, match):
    with pytest.raises(InputError, match=match):
        run_on_inputs(PROMPT + LOOP, entry_point, inputs)


def test_containers_are_compared_by_content_and_type():
    program = (
        "def f(k):\n"
        "    if k == 0:\n        return {3, 1, 2}\n"
        "    if k == 1:\n        return {'b': [1], 'a': (2,)}\n"
        "    return [1, 2]\n"
    )
    other = (
        "def f(k):\n"
        "    if k == 0:\n        return set([2, 3, 1])\n"
        "    if k == 1:\n        return dict(a=(2,), b=[1])\n"
        "    return (1, 2)\n"
    )
    a = run_on_inputs(program, "f", [(0,), (1,), (2,)])
    b = run_on_inputs(other, "f", [(0,), (1,), (2,)])
    assert a[:2] == b[:2] and a[2] != b[2]  # equal set and dict; a list is not a tuple
