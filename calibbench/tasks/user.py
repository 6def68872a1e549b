"""Tasks on a user's own data: a JSONL, CSV or Parquet file and a field mapping.

`fields` maps each task field to the file's column, e.g. {"question": "q", "choices": "options",
"gold": "answer"}. Errors name the file, the line (row for Parquet) and the field. Items get the
id "user/<file stem>/<id>" where <id> is the file's `id` field when mapped, else the line index.

- user_multiple_choice: question, choices (a list; in CSV a JSON list), gold (the correct
  option's text, or its 0-based index when no option has that text); format "cloze"
  ("Question: {question}\\nAnswer:" + " {option}") or "letter" (options listed A., B., ... and
  " A", " B", ... as continuations), as lm-eval's generic templates; graded like every
  multiple-choice task.
- user_text: text; scored token by token like the language-modelling tasks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task
from calibbench.tasks.language_modelling import LanguageModellingTask
from calibbench.tasks.multiple_choice import LETTERS, OptionTask
from calibbench.tasks.sources import content_sha256, read_user_file

REQUIRED = {
    "user_multiple_choice": ("question", "choices", "gold"),
    "user_text": ("text",),
}


def build(name: str, path: str, fields: dict[str, str] | None = None, **options: Any) -> Task:
    """The user task `name` on the file at `path` with the given field mapping."""
    if name not in REQUIRED:
        from calibbench.tasks import humaneval, qa

        if name == "user_qa":
            return qa.user_task(path, fields or {}, **options)
        return humaneval.user_task(path, fields or {}, **options)
    fields = {f: f for f in REQUIRED[name]} | (fields or {})
    unknown = sorted(set(fields) - set(REQUIRED[name]) - {"id"})
    if unknown:
        raise InputError(f"{name}: unknown fields {unknown}; fields are {REQUIRED[name]} and id")
    frame = read_user_file(path, fields)
    if name == "user_text":
        return UserTextTask(Path(path), frame)
    return UserMultipleChoiceTask(Path(path), frame, **options)


def _ids(path: Path, frame: pd.DataFrame) -> list[str]:
    raw = frame["id"].astype(str) if "id" in frame else pd.Series(range(len(frame))).astype(str)
    if raw.duplicated().any():
        raise InputError(f"{path}: field 'id' holds {raw[raw.duplicated()].iloc[0]!r} twice")
    return [f"user/{path.stem}/{i}" for i in raw]


def _info(path: Path, frame: pd.DataFrame) -> DatasetInfo:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame.astype(str), preserve_index=False)
    return DatasetInfo(
        name=path.stem, subset=None, split="all", licence="user-supplied",
        n_items=len(frame), sha256=content_sha256(table), source=str(path),
    )  # fmt: skip


class UserMultipleChoiceTask(OptionTask):
    """Multiple choice on a user's file (see the module docstring)."""

    def __init__(self, path: Path, frame: pd.DataFrame, format: str = "cloze"):
        if format not in ("cloze", "letter"):
            raise InputError(f"{path}: format must be 'cloze' or 'letter', got {format!r}")
        self.name = f"user_{path.stem}"
        self.path, self.fmt = path, format
        self._frame = frame
        self._items = self._build()

    def _build(self) -> pd.DataFrame:
        ids = _ids(self.path, self._frame)
        rows = [
            self._item(line, item_id, row)
            for line, (item_id, row) in enumerate(zip(ids, self._frame.itertuples(), strict=True))
        ]
        return pd.DataFrame(rows)

    def _item(self, line: int, item_id: str, row: Any) -> dict[str, Any]:
        where = f"{self.path}: item {line}"
        choices = row.choices
        if isinstance(choices, str):
            try:
                choices = json.loads(choices)
            except json.JSONDecodeError:
                choices = None
        if not isinstance(choices, (list, tuple)) or not 2 <= len(choices) <= len(LETTERS):
            raise InputError(
                f"{where}: field 'choices' must be a list of 2 to {len(LETTERS)} options "
                f"(a JSON list in CSV), got {row.choices!r}"
            )
        texts = [str(c) for c in choices]
        gold = row.gold
        if isinstance(gold, str):
            if gold in texts:
                gold = texts.index(gold)
            elif gold.strip().isdigit():
                gold = int(gold)
            else:
                raise InputError(f"{where}: field 'gold' {gold!r} is not one of the choices")
        gold = int(gold)
        if not 0 <= gold < len(texts):
            raise InputError(f"{where}: field 'gold' index {gold} is out of range")
        question = str(row.question).strip()
        if self.fmt == "cloze":
            context = f"Question: {question}\nAnswer:"
            options = texts
        else:
            listed = "".join(f"{LETTERS[k]}. {t}\n" for k, t in enumerate(texts))
            context = f"Question: {question}\n{listed}Answer:"
            options = list(LETTERS[: len(texts)])
        return {
            "item_id": item_id,
            "subset": None,
            "context": context,
            "choices": [f" {o}" for o in options],
            "choice_texts": options,
            "gold": gold,
        }

    def dataset(self) -> DatasetInfo:
        return _info(self.path, self._frame)

    def items(self) -> pd.DataFrame:
        return self._items.copy()


class UserTextTask(LanguageModellingTask):
    """Token-level scoring of a user's texts."""

    def __init__(self, path: Path, frame: pd.DataFrame):
        self.name = f"user_{path.stem}"
        self.path = path
        self._frame = frame

    def dataset(self) -> DatasetInfo:
        return _info(self.path, self._frame)

    def items(self) -> pd.DataFrame:
        return pd.DataFrame({"item_id": _ids(self.path, self._frame),
                             "text": self._frame["text"].astype(str)})  # fmt: skip
