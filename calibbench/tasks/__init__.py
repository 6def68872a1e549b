"""Task registry: build a task from its configuration entry.

    {"task": "mmlu", "format": "letter", "subsets": ["anatomy"]}   # multiple choice (lm-eval)
    {"task": "arc_easy"}                                             # cloze format by default
    {"task": "humaneval", "n_samples": 5}                            # code, sandboxed tests
    {"task": "triviaqa"}  {"task": "nq_open"}                        # open-ended QA + P(True)
    {"task": "lm", "source": "hellaswag"}                            # token-level scoring
    {"task": "user_multiple_choice", "path": "qs.jsonl",
     "fields": {"question": "q", "choices": "options", "gold": "answer"}}
    {"task": "user_qa", "path": "qa.csv", "fields": {"question": "q", "answers": "a"}}
    {"task": "user_code", "path": "code.jsonl",
     "fields": {"prompt": "prompt", "test": "test", "entry_point": "entry_point"}}
    {"task": "user_text", "path": "texts.parquet", "fields": {"text": "body"}}

Every other key is an option of the task's class. `source: hub` loads a data set from the
Hugging Face hub instead of the offline copy (needs network).
"""

from __future__ import annotations

from typing import Any

from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task

MULTIPLE_CHOICE = ("mmlu", "arc_easy", "arc_challenge", "openbookqa", "commonsense_qa", "hellaswag")
OTHER = ("humaneval", "triviaqa", "nq_open", "lm")
USER = ("user_multiple_choice", "user_qa", "user_code", "user_text")
TASKS = MULTIPLE_CHOICE + OTHER + USER

#: Confidence signals each task kind grades, in table order; `confidence` is the primary one.
SIGNALS = {
    "multiple_choice": ("confidence", "confidence_token_norm"),
    "qa": ("confidence", "geometric_mean", "min_token_prob", "sampling_agreement", "p_true"),
    "code": ("confidence", "geometric_mean", "min_token_prob", "sampling_agreement"),
    "language_modelling": (),
}

__all__ = ["SIGNALS", "TASKS", "DatasetInfo", "Task", "get_task", "task_kind"]


def task_kind(name: str) -> str:
    """The kind of task `name` (a registry name), without building the task."""
    if name in MULTIPLE_CHOICE or name == "user_multiple_choice":
        return "multiple_choice"
    if name in ("humaneval", "user_code"):
        return "code"
    if name in ("triviaqa", "nq_open", "user_qa"):
        return "qa"
    if name in ("lm", "user_text"):
        return "language_modelling"
    raise InputError(f"unknown task {name!r}; tasks: {list(TASKS)}")


def get_task(spec: dict[str, Any] | str) -> Task:
    """The task described by `spec` (a name, or a dict with "task" and its options)."""
    spec = {"task": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("task", None)
    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; tasks: {list(TASKS)}")
    try:
        return _build(name, spec)
    except TypeError as exc:
        raise InputError(f"task {name!r}: {exc}") from None


def _build(name: str, options: dict[str, Any]) -> Task:
    if name in MULTIPLE_CHOICE:
        from calibbench.tasks.multiple_choice import MultipleChoiceTask

        fmt = options.pop("format", "cloze")
        return MultipleChoiceTask(name, fmt, **options)
    if name == "humaneval":
        from calibbench.tasks.humaneval import HumanEvalTask

        return HumanEvalTask(**options)
    if name in ("triviaqa", "nq_open"):
        from calibbench.tasks.qa import NQOpenTask, TriviaQATask

        return (TriviaQATask if name == "triviaqa" else NQOpenTask)(**options)
    if name == "lm":
        from calibbench.tasks.language_modelling import LanguageModellingTask

        return LanguageModellingTask(**options)
    from calibbench.tasks import user

    return user.build(name, **options)
