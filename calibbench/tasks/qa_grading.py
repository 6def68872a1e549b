r"""Grading open-ended answers: lm-evaluation-harness's exact match and SQuAD token F1.

Exact match reproduces lm-eval 0.4's `exact_match` metric (`lm_eval/api/metrics.py`) with the
arguments its triviaqa and nq_open tasks pass, after the tasks' filters:

1. `filter_answer`: the first completion (`take_first`) with surrounding whitespace removed
   (`remove_whitespace`, i.e. `str.strip`);
2. each pattern in `regexes_to_ignore` is deleted (`re.sub`, in order) from the answer and from
   every reference; then, with `ignore_case`, `str.lower`; then, with `ignore_punctuation`, the
   ASCII characters of `string.punctuation` are deleted (other Unicode punctuation stays);
3. the answer is correct when it equals any reference (the max over aliases); no references
   means not correct.

lm-eval applies step 2 to numpy fixed-width string arrays (answer repeated once per reference,
and the references), and this module reproduces what that does to strings: trailing NUL
characters are dropped, and lowercasing cannot lengthen a string past the array's width (the
longest string in it before lowering), so U+0130 'İ', the one character whose lowercase is two
code points, can lose what follows it.

Token F1 is SQuAD v1.1's: normalise = lowercase, delete `string.punctuation`, replace the words
a/an/the with a space, collapse whitespace; F1 of the two bags of whitespace tokens, 0 when
either is empty or they share none; the max over references.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial


@dataclass(frozen=True)
class ExactMatchRules:
    """Keyword arguments of lm-eval's `exact_match` (`ignore_numbers` is unused by these tasks)."""

    ignore_case: bool = False
    ignore_punctuation: bool = False
    regexes_to_ignore: tuple[str, ...] = ()


#: lm-eval's triviaqa (`tasks/triviaqa/default.yaml`).
TRIVIAQA_EXACT_MATCH = ExactMatchRules(ignore_case=True, ignore_punctuation=True)
#: lm-eval's nq_open (`tasks/nq_open/nq_open.yaml`): also deletes a leading article and its space.
NQ_OPEN_EXACT_MATCH = ExactMatchRules(
    ignore_case=True,
    ignore_punctuation=True,
    regexes_to_ignore=(r"\b(?:The |the |An |A |The |a |an )",),
)

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def filter_answer(completion: str) -> str:
    """The answer lm-eval grades from a completion: its `remove_whitespace` filter (`strip`)."""
    return completion.strip()


def _as_numpy_strings(texts: list[str]) -> tuple[list[str], int]:
    """`texts` as read back from a numpy string array (trailing NULs dropped), and its width."""
    return [t.rstrip("\x00") for t in texts], max([1, *map(len, texts)])


def _normalise(texts: list[str], rules: ExactMatchRules) -> list[str]:
    # lm-eval builds a new array after each pattern's re.sub (np.asarray when there is none).
    steps = [partial(re.sub, p, "") for p in rules.regexes_to_ignore] or [str]
    out, width = texts, 1
    for step in steps:
        out, width = _as_numpy_strings([step(t) for t in out])
    if rules.ignore_case:
        out = [t.lower()[:width].rstrip("\x00") for t in out]
    if rules.ignore_punctuation:
        out = [t.translate(_PUNCTUATION).rstrip("\x00") for t in out]
    return out


def normalise_answer(answer: str, rules: ExactMatchRules) -> str:
    """`answer` as `exact_match` compares it: exact_match(a, [b]) is normalise_answer(a) ==
    normalise_answer(b), so the normalised text is the key of a's equivalence class."""
    return _normalise([answer], rules)[0]


def exact_match(answer: str, references: Sequence[str], rules: ExactMatchRules) -> bool:
    """lm-eval's exact match of a filtered `answer` against any of `references`."""
    if not references:
        return False
    (normalised,) = _normalise([answer], rules)
    return normalised in _normalise(list(references), rules)


def squad_normalise(text: str) -> str:
    """SQuAD v1.1 answer normalisation (lowercase, punctuation, articles, whitespace)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def _f1(answer: list[str], reference: list[str]) -> float:
    shared = sum((Counter(answer) & Counter(reference)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(answer), shared / len(reference)
    return 2 * precision * recall / (precision + recall)


def token_f1(answer: str, references: Sequence[str]) -> float:
    """SQuAD v1.1 token F1 in [0, 1], the max over `references` (0 when there are none)."""
    tokens = squad_normalise(answer).split()
    return max((_f1(tokens, squad_normalise(r).split()) for r in references), default=0.0)
