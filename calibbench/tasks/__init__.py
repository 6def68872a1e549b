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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task

__all__ = ["TASKS", "DatasetInfo", "Task", "TaskType", "get_task", "task_kind"]


@dataclass(frozen=True)
class TaskType:
    """A task name of the registry: its kind and how it is built from its options (imported only
    when a task is built, so listing tasks stays cheap)."""

    name: str
    kind: str
    build: Callable[..., Task]


def _multiple_choice(name: str, format: str = "cloze", **options: Any) -> Task:
    from calibbench.tasks.multiple_choice import MultipleChoiceTask

    return MultipleChoiceTask(name, format, **options)


def _humaneval(name: str, **options: Any) -> Task:
    from calibbench.tasks.humaneval import HumanEvalTask

    return HumanEvalTask(**options)


def _open_qa(name: str, **options: Any) -> Task:
    from calibbench.tasks.qa import NQOpenTask, TriviaQATask

    return (TriviaQATask if name == "triviaqa" else NQOpenTask)(**options)


def _language_modelling(name: str, **options: Any) -> Task:
    from calibbench.tasks.language_modelling import LanguageModellingTask

    return LanguageModellingTask(**options)


def _user(name: str, **options: Any) -> Task:
    from calibbench.tasks import user

    return user.build(name, **options)


_TYPES = (
    *(TaskType(n, "multiple_choice", _multiple_choice)
      for n in ("mmlu", "arc_easy", "arc_challenge", "openbookqa", "commonsense_qa", "hellaswag")),
    TaskType("humaneval", "code", _humaneval),
    TaskType("triviaqa", "qa", _open_qa),
    TaskType("nq_open", "qa", _open_qa),
    TaskType("lm", "language_modelling", _language_modelling),
    TaskType("user_multiple_choice", "multiple_choice", _user),
    TaskType("user_qa", "qa", _user),
    TaskType("user_code", "code", _user),
    TaskType("user_text", "language_modelling", _user),
)  # fmt: skip
#: Every task name, with its kind and builder.
REGISTRY: dict[str, TaskType] = {t.name: t for t in _TYPES}
TASKS = tuple(REGISTRY)


def task_kind(name: str) -> str:
    """The kind of task `name` (a registry name), without building the task."""
    if name not in REGISTRY:
        raise InputError(f"unknown task {name!r}; tasks: {list(TASKS)}")
    return REGISTRY[name].kind


def get_task(spec: dict[str, Any] | str) -> Task:
    """The task described by `spec` (a name, or a dict with "task" and its options)."""
    spec = {"task": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("task", None)
    if name not in REGISTRY:
        raise InputError(f"unknown task {name!r}; tasks: {list(TASKS)}")
    try:
        return REGISTRY[name].build(name, **spec)
    except TypeError as exc:
        raise InputError(f"task {name!r}: {exc}") from None
