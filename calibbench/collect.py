"""The collection stage: run a model once over a list of requests, keep what the analysis needs.

Requests are a table with a unique `request_id` and one `kind` for all rows:

- "loglikelihood": columns context, continuation;
- "generate": prompt, and optionally max_tokens, temperature, top_p, n, seed, stop (list of
  strings), top_logprobs, chat (bool: the prompt is a user message for the model's chat
  template), logprobs (bool: whether the completions' tokens and log-probs are used; an API
  model asks for none when false; a table without the column, as written before it existed,
  reads as true);
- "score": text.

`collect` works through the requests in chunks. Each finished chunk is written atomically to
the scratch folder `out_dir/partial/` (its records as Parquet and, for loglikelihood and score,
the state of a `TokenCalibration` over the full next-token distributions), so a run killed at
any point and started again skips the finished chunks and ends with the same files as an
uninterrupted run: every model call starts from a clean state and chunk files are merged in
chunk order. The outputs are `records.parquet` (one row per request, in request order),
`token_calibration.npz` (the merged accumulator state; an archive without arrays for generation
requests, which feed no accumulator), `timing.parquet` (per chunk: requests, tokens, seconds,
which differ between runs) and `manifest.json` (model identity, request hash, settings, output
hashes). Once they are written the scratch folder is removed. Scratch left by an interrupted
collection of other requests is discarded; a finished collection of other requests is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from calibbench.artifacts import sha256_file, write_json, write_npz, write_parquet
from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.models.base import (
    GenerationRequest,
    GenerationResult,
    LanguageModel,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ScoredText,
)

KINDS = {
    "loglikelihood": ("context", "continuation"),
    "generate": ("prompt",),
    "score": ("text",),
}
_GENERATION_FIELDS = ("max_tokens", "temperature", "top_p", "n", "seed", "stop", "top_logprobs",
                      "chat", "logprobs")  # fmt: skip


@dataclass(frozen=True)
class CollectSettings:
    """chunk_size: requests per chunk (the unit of resumption); n_bins, temperatures: the
    token-level accumulator's bins and temperature grid."""

    chunk_size: int = 32
    n_bins: int = 15
    temperatures: tuple[float, ...] = (1.0,)


def requests_kind(requests: pd.DataFrame, source: str = "requests") -> str:
    """Validate a requests table and return its kind; InputError names the missing column."""
    for column in ("request_id", "kind"):
        if column not in requests.columns:
            raise InputError(f"{source}: no column {column!r}; columns are {list(requests)}")
    if len(requests) == 0:
        raise InputError(f"{source}: no requests")
    kinds = requests["kind"].unique().tolist()
    if len(kinds) != 1 or kinds[0] not in KINDS:
        raise InputError(
            f"{source}: column 'kind' must hold one of {sorted(KINDS)} for every row; found {kinds}"
        )
    kind = kinds[0]
    for column in KINDS[kind]:
        if column not in requests.columns:
            raise InputError(f"{source}: {kind} requests need a column {column!r}")
    duplicated = requests["request_id"].duplicated()
    if duplicated.any():
        first = requests["request_id"][duplicated].iloc[0]
        raise InputError(f"{source}: request_id {first!r} appears more than once")
    return kind


def requests_hash(requests: pd.DataFrame) -> str:
    """SHA-256 of the requests' content (column names and values, in order)."""
    digest = hashlib.sha256()
    table = pa.Table.from_pandas(requests, preserve_index=False)
    digest.update(json.dumps(table.schema.names).encode())
    for column in table.columns:
        digest.update(json.dumps(column.to_pylist(), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _generation_request(row: dict[str, Any]) -> GenerationRequest:
    kwargs = {k: row[k] for k in _GENERATION_FIELDS if k in row and row[k] is not None}
    if "stop" in kwargs:
        kwargs["stop"] = tuple(kwargs["stop"])
    for key in ("max_tokens", "n", "seed", "top_logprobs"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    for key in ("chat", "logprobs"):
        if key in kwargs and isinstance(kwargs[key], (bool, np.bool_)):
            kwargs[key] = bool(kwargs[key])
    return GenerationRequest(prompt=row["prompt"], **kwargs)


def _records(kind: str, ids: Sequence[str], results: Sequence[Any]) -> pa.Table:
    """One row per request; list columns hold per-token (and per-sample) values."""
    if kind == "loglikelihood":
        res: Sequence[LoglikelihoodResult] = results
        data = {
            "logprob": [r.logprob for r in res],
            "is_greedy": [r.is_greedy for r in res],
            "n_context_tokens": [r.n_context_tokens for r in res],
            "token_ids": [list(r.token_ids) for r in res],
            "token_logprobs": [list(r.token_logprobs) for r in res],
        }
    elif kind == "score":
        scored: Sequence[ScoredText] = results
        data = {
            "token_ids": [list(r.token_ids) for r in scored],
            "token_logprobs": [list(r.token_logprobs) for r in scored],
        }
    else:
        gens: Sequence[GenerationResult] = results
        fields = {
            "texts": lambda c: c.text,
            "finish_reasons": lambda c: c.finish_reason,
            "tokens": lambda c: list(c.tokens),
            "token_ids": lambda c: list(c.token_ids or ()),
            "token_logprobs": lambda c: list(c.token_logprobs),
            "top_tokens": lambda c: [[t for t, _ in top] for top in c.top_logprobs],
            "top_logprobs": lambda c: [[lp for _, lp in top] for top in c.top_logprobs],
        }
        data = {
            name: [[get(c) for c in g.completions] for g in gens] for name, get in fields.items()
        }
    return pa.table({"request_id": list(ids), **data})


def _n_tokens(kind: str, results: Sequence[Any]) -> int:
    if kind == "generate":
        return sum(len(c.token_logprobs) for g in results for c in g.completions)
    return sum(len(r.token_logprobs) for r in results)


class _Progress:
    """Items done, tokens/s and ETA on stderr (tqdm when installed)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, unit="req", file=sys.stderr,
                                mininterval=1.0 if sys.stderr.isatty() else 10.0)  # fmt: skip
            except ImportError:
                self.bar = None
        self.tokens = 0
        self.start = time.perf_counter()

    def update(self, n: int, tokens: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def collect(
    model: LanguageModel,
    requests: pd.DataFrame,
    out_dir: str | Path,
    settings: CollectSettings = CollectSettings(),
    progress: bool = True,
) -> Path:
    """Run `model` over `requests` into `out_dir` (resuming finished chunks); returns out_dir.

    Raises InputError when `out_dir` holds a finished collection of other requests, another
    model or other settings (remove it or choose another directory).
    """
    kind = requests_kind(requests)
    out = Path(out_dir)
    info = model.info()
    plan = {
        "kind": kind,
        "requests_sha256": requests_hash(requests),
        "n_requests": len(requests),
        "model": info.to_dict(),
        "settings": {
            "chunk_size": settings.chunk_size,
            "n_bins": settings.n_bins,
            "temperatures": list(settings.temperatures),
        },
    }
    if _finished(out, plan):
        return out
    partial = _scratch(out, plan)
    accumulate = kind in ("loglikelihood", "score") and info.vocab_size is not None
    rows = requests.to_dict(orient="records")
    starts = list(range(0, len(rows), settings.chunk_size))
    done = [i for i, _ in enumerate(starts) if (partial / f"{i:05d}.parquet").exists()]
    bar = _Progress(len(rows), sum(min(settings.chunk_size, len(rows) - starts[i]) for i in done),
                    progress)  # fmt: skip
    for i, start in enumerate(starts):
        if i in done:
            continue
        part = rows[start : start + settings.chunk_size]
        acc = (
            TokenCalibration(
                info.vocab_size, n_bins=settings.n_bins, temperatures=settings.temperatures,
                approximation=None if info.logprob_source == "full" else info.logprob_source,
            )
            if accumulate
            else None
        )  # fmt: skip
        bar.update(len(part), _collect_chunk(model, kind, part, acc, partial, i))
    bar.close()
    _finish(out, len(starts), accumulate, plan)
    shutil.rmtree(partial)
    return out


def _finished(out: Path, plan: dict[str, Any]) -> bool:
    """Whether `out` holds the finished collection of `plan` (InputError if of another one)."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return False
    done = json.loads(manifest.read_text())
    if {k: v for k, v in done.items() if k != "outputs"} != json.loads(json.dumps(plan)):
        raise InputError(
            f"{out}: holds a finished collection of other requests, model or settings "
            f"({manifest}); remove the directory or choose another one"
        )
    return True


def _scratch(out: Path, plan: dict[str, Any]) -> Path:
    """The scratch folder of `plan`'s chunks: kept from an interrupted run of the same plan,
    emptied when it held another plan's."""
    partial = out / "partial"
    plan_path = partial / "plan.json"
    if plan_path.exists() and json.loads(plan_path.read_text()) != json.loads(json.dumps(plan)):
        shutil.rmtree(partial)  # an interrupted collection of other requests: start afresh
    partial.mkdir(parents=True, exist_ok=True)
    for stale in partial.glob(".*.tmp"):  # left by a run killed in the middle of a write
        stale.unlink()
    if not plan_path.exists():
        write_json(plan, plan_path)
    return partial


def _collect_chunk(
    model: LanguageModel,
    kind: str,
    part: list[dict[str, Any]],
    acc: TokenCalibration | None,
    partial: Path,
    i: int,
) -> int:
    """Run one chunk of requests and write its files into `partial`; returns its token count."""
    t0 = time.perf_counter()
    if kind == "loglikelihood":
        reqs = [LoglikelihoodRequest(r["context"], r["continuation"]) for r in part]
        results: Sequence[Any] = model.loglikelihood(reqs, accumulator=acc)
    elif kind == "score":
        results = model.score_text([r["text"] for r in part], accumulator=acc)
    else:
        results = model.generate([_generation_request(r) for r in part])
    seconds = time.perf_counter() - t0
    n_tokens = _n_tokens(kind, results)
    if acc is not None:
        write_npz(acc.state_dict(), partial / f"{i:05d}.npz")
    write_json(
        {"chunk": i, "n_requests": len(part), "n_tokens": n_tokens, "seconds": seconds},
        partial / f"{i:05d}.timing.json",
    )
    write_parquet(_records(kind, [r["request_id"] for r in part], results),
                  partial / f"{i:05d}.parquet")  # fmt: skip
    return n_tokens


def _finish(out: Path, n_chunks: int, accumulate: bool, plan: dict[str, Any]) -> None:
    """Merge the chunk files, in chunk order, into the outputs."""
    partial = out / "partial"
    tables = [pq.read_table(partial / f"{i:05d}.parquet") for i in range(n_chunks)]
    write_parquet(pa.concat_tables(tables), out / "records.parquet")
    timing = [json.loads((partial / f"{i:05d}.timing.json").read_text()) for i in range(n_chunks)]
    write_parquet(pa.Table.from_pylist(timing), out / "timing.parquet")
    merged = None
    if accumulate:
        for i in range(n_chunks):
            with np.load(partial / f"{i:05d}.npz") as state:
                acc = TokenCalibration.from_state_dict(dict(state))
            merged = acc if merged is None else merged.merge(acc)
    write_npz(merged.state_dict() if merged is not None else {}, out / "token_calibration.npz")
    outputs = ["records.parquet", "token_calibration.npz"]
    manifest = plan | {"outputs": {name: sha256_file(out / name) for name in outputs}}
    write_json(manifest, out / "manifest.json")
