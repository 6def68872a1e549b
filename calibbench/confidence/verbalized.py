"""Verbalized confidence and self-reflection: prompts that make a model state (or re-judge) its
confidence, and parsers of its replies.

Verbalized confidence follows Tian et al. 2023, "Just Ask for Calibration" (arXiv 2305.14975):

- one-stage (`one_stage_prompt`, `parse_one_stage`): the model gives its answer and the
  probability that it is correct in one reply, two lines::

      Guess: <the answer>
      Probability: <a number from 0 to 1>

- two-stage (`two_stage_prompt`, `parse_two_stage`): after the model has answered (the task's
  own greedy answer), a follow-up request shows it the question and its answer and asks for one
  line ``Probability: <a number from 0 to 1>``.

The prompts are plain text (a chat endpoint sends them as one user message) written for models
that follow instructions; their placeholders hold no digits, so a reply that echoes the format
gives no number rather than a wrong one.

Parsing. The label is "Probability" or "Confidence" followed by ":" or "=" (any case, markdown
emphasis allowed: ``**Probability:** 0.8``); the value is the first number after the label on its
line (or on the next non-empty line when the label ends its line); a label without a number (an
echoed placeholder) is skipped for the next. Without any label, a two-stage reply that is only a
value (" 0.8", "80%.") is read as one. The answer label is "Guess" or "Answer" with ":"; the
answer is the rest of its line, cut before a probability label on the same line (or the next
non-empty line when the label ends its line), stripped of spaces, markdown emphasis and trailing
",;|". Values read:

- decimals ``0.8``, ``.8``, ``1``, ``1.`` (a trailing full stop is punctuation), ``0,8`` (decimal
  comma), ``8e-1``, and other Unicode digits (full-width U+FF10 to U+FF19);
- percentages ``80%``, ``80 %``, ``80 percent``, ``80 per cent`` and the full-width sign U+FF05:
  divided by 100;
- fractions ``4/5``, ``4 / 5``: numerator over denominator (a zero denominator is out of range),
  except the idiom ``50/50`` (or ``50-50``) for even odds, which reads 0.5;
- ranges ``0.7-0.8``, ``70 to 80%``, ``between 70 and 80%``: the first number, with the range's
  unit (so ``70-80%`` reads 0.7);
- a sign ``-`` or U+2212 (minus) written right before the number makes it negative.

A value must lie in [0, 1] after dividing a percentage by 100: a bare ``85`` (no %) or ``120%``
or ``-0.2`` is out of range, never clipped or reinterpreted.

Every parse returns a `Verbalized` whose status is one of `STATUSES`:

- "ok": confidence holds the probability (a finite float in [0, 1]);
- "empty": the reply is empty or white space;
- "no_answer" (one-stage only): no answer label, or an empty answer;
- "no_probability": no label followed by a number (and, two-stage, not a lone value);
- "out_of_range": a value outside [0, 1] (or a zero denominator).

A reply is checked in the order listed: blank, then the answer (one-stage), then the
probability, then its range (a reply with neither answer nor probability is "no_answer"). The
answer is kept whenever one was found, whatever the status, so a task can still grade it; the
confidence is set only for "ok", so no parse ever returns NaN.
`summarize_replies` returns the confidences of the parsed replies and the count of every status,
for reporting unparseable replies per model and task rather than dropping them.

Self-reflection (the model "pauses and re-evaluates its confidence"): after its answer the model
is asked to review it step by step (`reflection_prompt`, a generate request whose reply ends with
the line `REVIEW_END`, usable as a stop sequence). P(True) after reflection is then Kadavath et
al.'s P(True) question asked after that review: `reflection_p_true_context` appends the task's
own P(True) prompt (`calibbench.tasks.qa.p_true_context`, passed in) to the prompt and the
review, and the follow-up scores the same continuations as plain P(True) and reads the result
with `calibbench.confidence.sequence.p_true`. Only the review before the question differs, so the
two signals are comparable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

OK = "ok"
EMPTY = "empty"
NO_ANSWER = "no_answer"
NO_PROBABILITY = "no_probability"
OUT_OF_RANGE = "out_of_range"
#: Every parse status, in the order a reply is checked.
STATUSES = (OK, EMPTY, NO_ANSWER, NO_PROBABILITY, OUT_OF_RANGE)

#: The line a self-reflection review ends with (a stop sequence for the review request).
REVIEW_END = "End of review."

_NUMBER = r"(?:\d+(?:[.,]\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_PERCENT = r"\s*(?:[%\uff05]|per\s?cent)"
_VALUE = re.compile(
    rf"(?<!\w)(?P<sign>[-\u2212]?)(?P<num>{_NUMBER})(?:\s*/\s*(?P<den>{_NUMBER}))?"
    rf"(?P<pct>{_PERCENT})?"
    rf"(?:\s*(?:-|\u2013|\u2014|to|and)\s*[-\u2212]?{_NUMBER}(?P<range_pct>{_PERCENT}))?",
    re.IGNORECASE,
)
_EVEN_ODDS = re.compile(r"50\s*[/-]\s*50(?![.,]?\d|\s*(?:[%\uff05]|per\s?cent))", re.IGNORECASE)
_PROBABILITY_LABEL = re.compile(r"\b(?:probability|confidence)\b[*_ \t]*[:\uff1a=]", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"\b(?:guess|answer)\b[*_ \t]*[:\uff1a]", re.IGNORECASE)
_ANSWER_STRIP = " \t*_`"
_ANSWER_TRAIL = " \t*_`,;|"


@dataclass(frozen=True)
class Verbalized:
    """A parsed reply. answer: the stated answer (one-stage; None when not found or two-stage).
    confidence: the stated probability in [0, 1], set only when status is "ok". status: one of
    `STATUSES` (see the module docstring). Raises ValueError for an inconsistent combination."""

    answer: str | None
    confidence: float | None
    status: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Verbalized: status must be one of {STATUSES}, got {self.status!r}")
        if (self.confidence is not None) != (self.status == OK):
            raise ValueError("Verbalized: confidence is set exactly when status is 'ok'")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Verbalized: confidence {self.confidence!r} is not in [0, 1]")


@dataclass(frozen=True)
class ReplySummary:
    """Parsed replies in bulk. parsed: (n,) bool, True where the status is "ok". confidences:
    (k,) float64, the probabilities of the parsed replies in input order (k = parsed.sum()).
    counts: replies per status, every status of `STATUSES` present (zeros included)."""

    parsed: np.ndarray
    confidences: np.ndarray
    counts: dict[str, int]

    @property
    def n_unparseable(self) -> int:
        """Replies whose status is not "ok"."""
        return int(self.parsed.size - self.parsed.sum())


def one_stage_prompt(question: str) -> str:
    """The one-stage prompt: answer `question` and state the probability of being right, in the
    two-line format `parse_one_stage` reads."""
    return (
        "Answer the question below with your best guess, then say how likely it is that your "
        "guess is correct, as a probability between 0.0 and 1.0. Reply with exactly these two "
        "lines and nothing else:\n\n"
        "Guess: <your best guess, as short as possible: just the answer, not a sentence>\n"
        "Probability: <the probability that your guess is correct, just the number>\n\n"
        f"Question: {question}"
    )


def two_stage_prompt(question: str, answer: str, cue: bool = False) -> str:
    """The two-stage follow-up: given `question` and the model's own `answer`, state the
    probability that the answer is correct, in the one-line format `parse_two_stage` reads.
    With `cue`, the prompt ends in the label "Probability:" instead of the format line, so the
    reply is the number itself (a completion a base model continues; read as a lone value)."""
    head = (
        f"Question: {question}\n"
        f"Your answer: {answer}\n\n"
        "How likely is it that your answer is correct? Give it as a probability between 0.0 and "
        "1.0."
    )
    if cue:
        return f"{head}\n\nProbability:"
    return (
        f"{head} Reply with exactly this line and nothing else:\n\n"
        "Probability: <the probability that your answer is correct, just the number>"
    )


def reflection_prompt(question: str, answer: str) -> str:
    """The self-reflection request: review the proposed `answer` to `question` step by step and
    end with the line `REVIEW_END`. The model's reply is the review."""
    return (
        f"Question: {question}\n"
        f"Proposed Answer: {answer}\n\n"
        "Before judging the proposed answer, review it step by step: say what the question asks "
        "for, check the proposed answer against what you know, and look for mistakes. End your "
        f'review with the line "{REVIEW_END}"\n\n'
        "Review:"
    )


def reflection_p_true_context(question: str, answer: str, review: str, p_true_prompt: str) -> str:
    """The context of P(True) after reflection: `reflection_prompt(question, answer)`, the
    model's `review` (ending in `REVIEW_END` whether or not the reply stopped before it), a
    blank line, and `p_true_prompt`, the task's P(True) prompt for the same question and answer
    (e.g. `calibbench.tasks.qa.p_true_context(question, answer)`). Score the task's P(True)
    continuations after it."""
    text = review.strip()
    if text.endswith(REVIEW_END):
        text = text[: -len(REVIEW_END)].rstrip()
    body = f" {text}\n" if text else "\n"
    return f"{reflection_prompt(question, answer)}{body}{REVIEW_END}\n\n{p_true_prompt}"


def parse_one_stage(reply: str) -> Verbalized:
    """The answer and probability of a one-stage reply (format and statuses in the module
    docstring)."""
    if not reply.strip():
        return Verbalized(None, None, EMPTY)
    answer = _answer(reply)
    probability = _probability(reply, bare=False)
    if answer is None:
        return Verbalized(None, None, NO_ANSWER)
    return _verbalized(answer, probability)


def parse_two_stage(reply: str) -> Verbalized:
    """The probability of a two-stage reply (answer None; statuses in the module docstring)."""
    if not reply.strip():
        return Verbalized(None, None, EMPTY)
    return _verbalized(None, _probability(reply, bare=True))


def summarize_replies(results: Iterable[Verbalized]) -> ReplySummary:
    """Confidences of the parseable results and the count of each status (no results give
    empty arrays and zero counts)."""
    results = list(results)
    parsed = np.array([r.status == OK for r in results], dtype=bool)
    confidences = np.array([r.confidence for r in results if r.status == OK], dtype=np.float64)
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.status] += 1
    return ReplySummary(parsed=parsed, confidences=confidences, counts=counts)


def _verbalized(answer: str | None, probability: float | None) -> Verbalized:
    if probability is None:
        return Verbalized(answer, None, NO_PROBABILITY)
    if not 0.0 <= probability <= 1.0:
        return Verbalized(answer, None, OUT_OF_RANGE)
    return Verbalized(answer, probability, OK)


def _segment(text: str, end: int) -> str:
    """The rest of the line after position `end`, or the next non-empty line if it is blank."""
    rest = text[end:]
    line = rest.split("\n", 1)[0]
    if line.strip(" \t*_"):
        return line
    return rest.lstrip(" \t*_\r\n").split("\n", 1)[0]


def _answer(reply: str) -> str | None:
    label = _ANSWER_LABEL.search(reply)
    if label is None:
        return None
    line = reply[label.end() :].split("\n", 1)[0]
    cut = _PROBABILITY_LABEL.search(line)
    if cut is not None:
        line = line[: cut.start()]
    elif not line.strip(_ANSWER_STRIP):
        line = _segment(reply, label.end())
        if _PROBABILITY_LABEL.search(line):
            return None
    answer = line.strip(_ANSWER_STRIP).rstrip(_ANSWER_TRAIL).strip(_ANSWER_STRIP)
    return answer or None


def _probability(reply: str, bare: bool) -> float | None:
    """The value after the first label followed by a number; else, if `bare`, the reply read as
    a lone value; else None. Out-of-range values are returned as they are (inf, negative)."""
    for label in _PROBABILITY_LABEL.finditer(reply):
        match = _VALUE.search(_segment(reply, label.end()))
        if match is not None:
            return _value(match)
    lone = reply.strip().strip("*_`").rstrip(".").strip()
    if bare and _EVEN_ODDS.fullmatch(lone):
        return 0.5
    match = _VALUE.fullmatch(lone) if bare else None
    return _value(match) if match is not None else None


def _value(match: re.Match[str]) -> float:
    if not match["sign"] and _EVEN_ODDS.match(match.string, match.start()):
        return 0.5
    value = float(match["num"].replace(",", "."))
    if match["den"] is not None:
        denominator = float(match["den"].replace(",", "."))
        value = value / denominator if denominator > 0 and math.isfinite(denominator) else math.inf
    if match["pct"] is not None or match["range_pct"] is not None:
        value /= 100.0
    if not math.isfinite(value):
        return math.inf
    if match["sign"] and value != 0.0:
        return -value
    return value
