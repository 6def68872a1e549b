"""Verbalized confidence and self-reflection: parsers on a table of replies as models write them,
a round trip over a seeded grid of probabilities formatted in every accepted style (the value
each reply was made from is the reference), prompts, and the per-status summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibbench.confidence.verbalized import (
    EMPTY,
    NO_ANSWER,
    NO_PROBABILITY,
    OK,
    OUT_OF_RANGE,
    REVIEW_END,
    STATUSES,
    Verbalized,
    one_stage_prompt,
    parse_one_stage,
    parse_two_stage,
    reflection_p_true_context,
    reflection_prompt,
    summarize_replies,
    two_stage_prompt,
)
from calibbench.tasks.qa import p_true_context

ONE_STAGE = [
    ("Guess: Paris\nProbability: 0.85", "Paris", 0.85, OK),
    ("Guess: Paris\nProbability: 0.85.", "Paris", 0.85, OK),
    ("Guess: Paris\nProbability: .8", "Paris", 0.8, OK),
    ("Guess: Paris\nProbability: 80%", "Paris", 0.8, OK),
    ("Guess: Paris\nProbability: 80 %", "Paris", 0.8, OK),
    ("Guess: Paris\nProbability: 80 percent", "Paris", 0.8, OK),
    ("Guess: Paris\nProbability: 4/5", "Paris", 0.8, OK),
    ("Guess: Paris\nProbability: 1", "Paris", 1.0, OK),
    ("Guess: Paris\nProbability: 0", "Paris", 0.0, OK),
    ("guess: paris\nprobability: 0.3", "paris", 0.3, OK),
    ("**Guess:** Paris\n**Probability:** 0.9", "Paris", 0.9, OK),
    ("Guess: Paris, Probability: 0.9", "Paris", 0.9, OK),
    ("Guess:\nParis\nProbability:\n0.6", "Paris", 0.6, OK),
    ("Answer: Paris\nConfidence: 70%", "Paris", 0.7, OK),
    ("Guess: Paris\nProbability = 0.55", "Paris", 0.55, OK),
    # several numbers: the first after the label, a range with its unit
    ("Guess: 1815\nProbability: 0.7 (I am fairly sure, 2 sources agree)", "1815", 0.7, OK),
    ("Guess: Paris\nProbability: 0.7-0.8", "Paris", 0.7, OK),
    ("Guess: Paris\nProbability: 70-80%", "Paris", 0.7, OK),
    ("Guess: Paris\nProbability: between 70 and 80%", "Paris", 0.7, OK),
    ("Guess: Paris\nProbability: 0.9 (90%)", "Paris", 0.9, OK),
    ("Guess: Paris\nProbability: about 0.75", "Paris", 0.75, OK),
    ("Guess: Paris\nProbability: - 0.8", "Paris", 0.8, OK),  # a dash, not a sign
    ("Guess: Paris\nProbability: 50/50", "Paris", 0.5, OK),  # even odds, not 50 / 50 = 1
    ("Guess: Paris\nProbability: 50-50.", "Paris", 0.5, OK),
    ("Guess: Paris\nProbability: 50/500", "Paris", 0.1, OK),
    ("Guess: Paris\nProbability: 50-50%", "Paris", 0.5, OK),
    ("Guess: Paris\nProbability: 10/10", "Paris", 1.0, OK),
    # an echoed placeholder (no number) is skipped for the real line
    ("Guess: Paris\nProbability: <the probability>\nProbability: 0.4", "Paris", 0.4, OK),
    ("Here is my reply.\nGuess: Paris\nProbability: 0.9\nHope this helps!", "Paris", 0.9, OK),
    # unicode: full-width digits and colon, U+2212 minus, a non-breaking space before %
    ("Guess: Köln\nProbability\uff1a\uff10.\uff18", "Köln", 0.8, OK),
    ("Guess: 東京\nProbability: 60\u00a0%", "東京", 0.6, OK),
    ("Guess: Paris\nProbability: 0,8", "Paris", 0.8, OK),
    # out of range: never clipped
    ("Guess: Paris\nProbability: 1.5", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: 85", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: 120%", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: -0.2", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: \u22120.2", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: 3/0", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: 0/0", "Paris", None, OUT_OF_RANGE),
    ("Guess: Paris\nProbability: 1e999", "Paris", None, OUT_OF_RANGE),
    # missing pieces
    ("Guess: Paris\nProbability: high", "Paris", None, NO_PROBABILITY),
    ("Guess: Paris\nProbability: nan", "Paris", None, NO_PROBABILITY),
    ("Guess: Paris", "Paris", None, NO_PROBABILITY),
    ("Guess: Paris\nI am 90% sure.", "Paris", None, NO_PROBABILITY),  # no label
    ("Paris\nProbability: 0.9", None, None, NO_ANSWER),
    ("Guess:\nProbability: 0.9", None, None, NO_ANSWER),
    ("Guess: **\nProbability: 0.9", None, None, NO_ANSWER),
    ("Paris is the capital.", None, None, NO_ANSWER),
    ("0.9", None, None, NO_ANSWER),
    ("", None, None, EMPTY),
    ("  \n\t ", None, None, EMPTY),
]


@pytest.mark.parametrize(("reply", "answer", "confidence", "status"), ONE_STAGE)
def test_one_stage_replies(reply, answer, confidence, status):
    got = parse_one_stage(reply)
    assert (got.answer, got.status) == (answer, status)
    if confidence is None:
        assert got.confidence is None
    else:
        assert got.confidence == pytest.approx(confidence, abs=1e-12)


TWO_STAGE = [
    ("Probability: 0.9", 0.9, OK),
    ("0.9", 0.9, OK),
    (" 0.9.", 0.9, OK),
    ("**0.65**", 0.65, OK),
    ("80%", 0.8, OK),
    ("Probability: 95 per cent.", 0.95, OK),
    ("I would say:\nProbability: 0.35", 0.35, OK),
    ("Confidence = 3/4", 0.75, OK),
    ("1", 1.0, OK),
    ("50/50", 0.5, OK),
    ("90", None, OUT_OF_RANGE),
    ("Probability: 2", None, OUT_OF_RANGE),
    ("-0.1", None, OUT_OF_RANGE),
    ("The probability that my answer is correct is 0.9.", None, NO_PROBABILITY),
    ("0.9 or 0.8", None, NO_PROBABILITY),  # not a lone value and no label
    ("Probability: unsure", None, NO_PROBABILITY),
    ("I don't know.", None, NO_PROBABILITY),
    ("", None, EMPTY),
]


@pytest.mark.parametrize(("reply", "confidence", "status"), TWO_STAGE)
def test_two_stage_replies(reply, confidence, status):
    got = parse_two_stage(reply)
    assert (got.answer, got.status) == (None, status)
    if confidence is None:
        assert got.confidence is None
    else:
        assert got.confidence == pytest.approx(confidence, abs=1e-12)


FULL_WIDTH = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)})


def formatted_values(rng: np.random.Generator, n: int) -> list[tuple[str, float]]:
    """(text, the value it was made from), over every accepted style; in range by construction."""
    out = []
    for _ in range(n):
        thousandths = int(rng.integers(0, 1001))
        p = thousandths / 1000
        fixed = f"{p:.3f}"
        out.append((str(p), p))
        out.append((fixed.lstrip("0") if p < 1 else fixed, p))
        out.append((fixed.replace(".", ","), p))
        out.append((fixed.translate(FULL_WIDTH), p))
        out.append((f"{p:.2e}", float(f"{p:.2e}")))
        tenths = int(rng.integers(0, 1001))
        percent = f"{tenths // 10}.{tenths % 10}"
        for unit in ("%", " %", "\u00a0%", "\uff05", " percent", " per cent"):
            out.append((percent + unit, tenths / 1000))
        denominator = int(rng.integers(1, 21))
        numerator = int(rng.integers(0, denominator + 1))
        out.append((f"{numerator}/{denominator}", numerator / denominator))
        out.append((f"{numerator} / {denominator}", numerator / denominator))
    return out


LABELS = ("Probability: ", "probability: ", "**Probability:** ", "Probability = ",
          "Confidence: ", "Probability:\n")  # fmt: skip
TRAILS = ("", ".", " (my estimate)", "\n", "\nThat is all.")


def test_round_trip_over_every_accepted_style():
    rng = np.random.default_rng(0)
    values = formatted_values(rng, 60)
    for k, (text, want) in enumerate(values):
        label, trail = LABELS[k % len(LABELS)], TRAILS[(k // len(LABELS)) % len(TRAILS)]
        one = parse_one_stage(f"Guess: answer {k}\n{label}{text}{trail}")
        assert (one.status, one.answer) == (OK, f"answer {k}"), text
        assert one.confidence == pytest.approx(want, abs=1e-12), text
        two = parse_two_stage(f"{label}{text}{trail}")
        assert two.status == OK and two.confidence == pytest.approx(want, abs=1e-12), text
        bare = parse_two_stage(f" {text}. ")
        assert bare.status == OK and bare.confidence == pytest.approx(want, abs=1e-12), text


def test_out_of_range_grid_is_rejected_not_clipped():
    rng = np.random.default_rng(1)
    for _ in range(200):
        above = round(float(rng.uniform(1.001, 50.0)), 3)
        percent = round(float(rng.uniform(100.1, 5000.0)), 1)
        below = round(float(rng.uniform(0.001, 1.0)), 3)
        denominator = int(rng.integers(1, 20))
        for text in (str(above), f"{percent}%", f"-{below}", f"\u2212{below}",
                     f"{denominator + int(rng.integers(1, 5))}/{denominator}"):  # fmt: skip
            assert parse_two_stage(f"Probability: {text}").status == OUT_OF_RANGE, text
            got = parse_one_stage(f"Guess: x\nProbability: {text}")
            assert (got.answer, got.confidence, got.status) == ("x", None, OUT_OF_RANGE), text


def test_no_parse_returns_nan():
    replies = [r for r, *_ in ONE_STAGE] + [r for r, *_ in TWO_STAGE]
    for reply in replies:
        for got in (parse_one_stage(reply), parse_two_stage(reply)):
            assert got.status in STATUSES
            assert (got.confidence is None) == (got.status != OK)
            if got.confidence is not None:
                assert math.isfinite(got.confidence) and 0.0 <= got.confidence <= 1.0


def test_a_result_cannot_be_inconsistent():
    with pytest.raises(ValueError, match="status"):
        Verbalized("x", None, "garbled")
    with pytest.raises(ValueError, match="exactly when"):
        Verbalized("x", 0.5, NO_PROBABILITY)
    with pytest.raises(ValueError, match="exactly when"):
        Verbalized("x", None, OK)
    with pytest.raises(ValueError, match="not in"):
        Verbalized("x", math.nan, OK)


def test_prompts_hold_the_question_the_answer_and_the_format():
    question, answer = "What is the capital of France?", "Lyon"
    one = one_stage_prompt(question)
    assert question in one and "\nGuess: <" in one and "\nProbability: <" in one
    two = two_stage_prompt(question, answer)
    assert question in two and answer in two and two.endswith("just the number>")
    # the format's placeholders hold no digits, so an echoed format is no probability
    for prompt, parse in ((one, parse_one_stage), (two, parse_two_stage)):
        lines = [line for line in prompt.splitlines() if line.startswith(("Guess:", "Prob"))]
        assert not any(c.isdigit() for line in lines for c in line)
        assert parse("\n".join(lines)).status in (NO_ANSWER, NO_PROBABILITY)
    # a reply in the stated format parses
    assert parse_one_stage("Guess: Paris\nProbability: 0.9") == Verbalized("Paris", 0.9, OK)


def test_reflection_context_is_the_review_then_the_tasks_p_true_prompt():
    question, answer = "Who wrote Hamlet?", "Marlowe"
    prompt = reflection_prompt(question, answer)
    assert question in prompt and answer in prompt and f'"{REVIEW_END}"' in prompt
    plain = p_true_context(question, answer)
    review = "The play is usually attributed to Shakespeare, not Marlowe."
    want = f"{prompt} {review}\n{REVIEW_END}\n\n{plain}"
    # the same context whether the review request stopped at REVIEW_END or wrote it
    assert reflection_p_true_context(question, answer, review, plain) == want
    assert reflection_p_true_context(question, answer, f"\n{review}\n{REVIEW_END}\n", plain) == want
    empty = reflection_p_true_context(question, answer, "  ", plain)
    assert empty == f"{prompt}\n{REVIEW_END}\n\n{plain}"
    assert empty.endswith("The proposed answer is:")  # P(True)'s continuations follow as before


def test_summary_counts_every_status_and_keeps_order():
    replies = ["Guess: a\nProbability: 0.2", "", "Guess: b\nProbability: 2",
               "Guess: c\nProbability: 90%", "no format at all", "Guess: d"]  # fmt: skip
    summary = summarize_replies(parse_one_stage(r) for r in replies)
    assert summary.parsed.tolist() == [True, False, False, True, False, False]
    np.testing.assert_allclose(summary.confidences, [0.2, 0.9])
    assert summary.confidences.dtype == np.float64
    assert summary.counts == {OK: 2, EMPTY: 1, NO_ANSWER: 1, NO_PROBABILITY: 1, OUT_OF_RANGE: 1}
    assert summary.n_unparseable == 4
    # against a count written out by hand over the reply table
    results = [parse_one_stage(r) for r, *_ in ONE_STAGE]
    counts = summarize_replies(results).counts
    assert counts == {s: sum(1 for *_, status in ONE_STAGE if status == s) for s in STATUSES}
    none = summarize_replies([])
    assert none.parsed.shape == (0,) and none.confidences.shape == (0,)
    assert none.counts == dict.fromkeys(STATUSES, 0) and none.n_unparseable == 0
