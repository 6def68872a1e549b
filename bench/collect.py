"""Benchmark: scoring throughput of calibbench's collection against the bare runtimes.

    python bench/collect.py           # SmolLM2 and Gemma 3 via llama.cpp and transformers (CPU)
                                      # in float32 and in bfloat16
    python bench/collect.py --quick   # a few texts, for a smoke run

For each built-in model and runtime, the same teacher-forced forward passes over the same texts:

- bare llama.cpp: per text, an emptied KV cache and one `llama_decode` per n_batch tokens asking
  for the logits of every position, read in place from llama.cpp's output buffer (the fastest
  loop that yields every position's logits; `Llama.eval` with `logits_all=True` also copies them
  into an n_ctx x V score matrix, slower than what calibbench does);
- bare transformers: `model(input_ids).logits` per text under `torch.inference_mode()`;
- calibbench: `collect()` of "score" requests, i.e. the runtime plus log-probs, the streaming
  token-level accumulator (Full-ECE etc. at 3 temperatures), Parquet chunks and the manifest.

Reports tokens/s and calibbench's overhead over the bare loop (goal: at most 10 %). With a CUDA
device it also times transformers bf16 scoring at batch 32 against batch 1 and the share of each
step spent in the accumulator. Writes bench/results/collect.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, markdown_table, write_results

TEMPS = (0.8, 1.0, 1.25)


def texts(n: int) -> list[str]:
    """Paragraphs of English from the Python standard library's documentation strings."""
    import argparse as ap
    import collections
    import email
    import json
    import logging
    import pathlib
    import re
    import string
    import subprocess as sp
    import textwrap
    import unittest

    mods = (ap, collections, email, json, logging, pathlib, re, string, sp, textwrap, unittest)
    paras = [p.strip() for m in mods for p in (m.__doc__ or "").split("\n\n")]
    return [p for p in paras if len(p.split()) >= 25][:n]


def timed(fn: Any, repeats: int) -> float:
    """Fastest of `repeats` runs (the least disturbed by other work on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(methods: Sequence[tuple[str, Any]], repeats: int) -> dict[str, float]:
    """Fastest time of each method, running them in turn `repeats` times, so that a burst of
    other work on the machine cannot fall on one method only."""
    best = {label: float("inf") for label, _ in methods}
    for _ in range(repeats):
        for label, fn in methods:
            best[label] = min(best[label], timed(fn, 1))
    return best


def row(model: str, runtime: str, method: str, tokens: int, seconds: float) -> dict[str, Any]:
    return {"model": model, "runtime": runtime, "method": method, "tokens": tokens,
            "seconds": seconds, "tokens/s": tokens / seconds}  # fmt: skip


def collect_variants(model: Any, docs: list[str]) -> list[tuple[str, Any]]:
    """calibbench's collection of `docs` as score requests (into a throw-away folder), with the
    accumulator at T = 1 only, and at the TEMPS grid."""
    from calibbench.collect import CollectSettings, collect

    requests = pd.DataFrame(
        {"request_id": [f"t{i}" for i in range(len(docs))], "kind": "score", "text": docs}
    )

    def ours(temps: tuple[float, ...]) -> None:
        out = Path(tempfile.mkdtemp())
        try:
            collect(model, requests, out, CollectSettings(chunk_size=8, temperatures=temps),
                    progress=False)  # fmt: skip
        finally:
            shutil.rmtree(out)

    return [
        ("calibbench collect, 1 temperature", lambda: ours((1.0,))),
        (f"calibbench collect, {len(TEMPS)} temperatures", lambda: ours(TEMPS)),
    ]


def bench_llamacpp(name: str, docs: list[str], repeats: int) -> list[dict[str, Any]]:
    from llama_cpp import Llama

    from calibbench.models.builtin import gguf_path
    from calibbench.models.llamacpp import LlamaCppModel

    threads = len(os.sched_getaffinity(0))
    model = LlamaCppModel.builtin(name, n_ctx=1024, n_batch=128, n_threads=threads)
    ids = [model.tokenize(d) for d in docs]
    n_tokens = sum(len(i) - 1 for i in ids)
    bare = Llama(str(gguf_path(name)), n_ctx=1024, n_batch=128, n_ubatch=128, n_threads=threads,
                 n_threads_batch=threads, logits_all=False, verbose=False)  # fmt: skip
    vocab = bare.n_vocab()

    def bare_loop() -> None:
        for i in ids:
            bare._ctx.kv_cache_seq_rm(-1, 0, -1)
            for start in range(0, len(i), 128):
                chunk = i[start : start + 128]
                bare._batch.set_batch(chunk, n_past=start, logits_all=True)
                bare._ctx.decode(bare._batch)
                np.ctypeslib.as_array(bare._ctx.get_logits(), shape=(len(chunk) * vocab,))

    ours = collect_variants(model, docs)
    rows = []
    methods = [("bare llama.cpp eval", bare_loop), *ours]
    for label, seconds in interleaved(methods, repeats).items():
        rows.append(row(name, "llamacpp", label, n_tokens, seconds))
    bare.close()
    model.close()
    return rows


def bench_hf(
    name: str, docs: list[str], repeats: int, dtype: str = "float32"
) -> list[dict[str, Any]]:
    """Transformers in `dtype` (bfloat16: the body in bfloat16, the output layer in float32, as
    calibbench runs it); the bare loop is that same model's forward."""
    import torch

    from calibbench.models.hf import HFModel

    model = HFModel.builtin(name, batch_size=1, dtype=dtype)
    runtime = "hf" if dtype == "float32" else f"hf {dtype}"
    hf, tok = model.model, model.tokenizer
    ids = [tok(d, return_tensors="pt").input_ids.to(hf.device) for d in docs]
    n_tokens = sum(i.shape[1] - 1 for i in ids)

    @torch.inference_mode()
    def bare_loop() -> None:
        for i in ids:
            hf(i).logits.float()

    ours = collect_variants(model, docs)
    rows = []
    methods = [("bare transformers forward", bare_loop), *ours]
    for label, seconds in interleaved(methods, repeats).items():
        rows.append(row(name, runtime, label, n_tokens, seconds))
    model.close()
    return rows


def accumulator_share(
    name: str, docs: list[str], device: str, sizes: Sequence[int] = (1, 32), repeats: int = 3
) -> list[dict[str, Any]]:
    """Teacher-forced scoring of `docs` on `device` (bf16 on CUDA, float32 on the CPU) at each
    batch size, with and without the token-level accumulator at TEMPS: the accumulator's share
    of a step is the difference between the two."""
    import torch

    from calibbench.metrics.token import TokenCalibration
    from calibbench.models.hf import HFModel

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = HFModel.builtin(name, device=device, dtype=dtype)
    hf, tok = model.model, model.tokenizer
    tok.padding_side = "right"
    n = len(docs)
    batch = tok(docs, return_tensors="pt", padding=True, truncation=True, max_length=256)
    batch = {k: v.to(device) for k, v in batch.items()}
    n_tokens = int(batch["attention_mask"].sum()) - n
    label = f"hf {device} {str(dtype).removeprefix('torch.')}"

    @torch.inference_mode()
    def step(size: int, accumulate: bool) -> None:
        acc = TokenCalibration(hf.config.vocab_size, temperatures=TEMPS) if accumulate else None
        for s in range(0, n, size):
            mask = batch["attention_mask"][s : s + size]
            logits = hf(input_ids=batch["input_ids"][s : s + size], attention_mask=mask).logits
            if acc is not None:
                keep = mask[:, 1:].bool()
                acc.update(logits[:, :-1][keep], batch["input_ids"][s : s + size, 1:][keep])
        if device == "cuda":
            torch.cuda.synchronize()

    rows = []
    for size in sizes:
        step(size, True)  # warm-up
        times = interleaved([(a, lambda s=size, a=a: step(s, a)) for a in (False, True)], repeats)
        for accumulate, seconds in times.items():
            method = f"batch {size}" + (" + accumulator" if accumulate else "")
            rows.append(row(name, label, method, n_tokens, seconds))
        rows[-1]["accumulator share %"] = 100.0 * (1.0 - times[False] / times[True])
    model.close()
    return rows


def _speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per model: the bare transformers forward's time in float32 over its time in bfloat16."""
    bare = {
        (r["model"], r["runtime"]): r["seconds"]
        for r in rows
        if r["method"] == "bare transformers forward"
    }
    return {
        m: bare[(m, "hf")] / bare[(m, "hf bfloat16")]
        for m, rt in bare
        if rt == "hf" and (m, "hf bfloat16") in bare
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few texts, one repeat")
    parser.add_argument("--runtimes", default="llamacpp,hf,hf-bf16", help="comma-separated subset")
    parser.add_argument("--texts", type=int, default=40, help="texts to score (default 40)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per method (default 5)")
    args = parser.parse_args()
    docs = texts(4 if args.quick else args.texts)
    repeats = 1 if args.quick else args.repeats
    rows: list[dict[str, Any]] = []
    for name in ("smollm2-135m", "gemma3-270m"):
        if "llamacpp" in args.runtimes.split(","):
            rows += bench_llamacpp(name, docs, repeats)
        chosen = args.runtimes.split(",")
        if "hf" in chosen:
            rows += bench_hf(name, docs, repeats)
        if "hf-bf16" in chosen:
            rows += bench_hf(name, docs, repeats, "bfloat16")
    try:
        import torch

        if torch.cuda.is_available() and not args.quick:
            rows += accumulator_share("gemma3-270m", texts(64), "cuda")
    except ImportError:
        pass
    bare = {
        (r["model"], r["runtime"]): r["seconds"] for r in rows if r["method"].startswith("bare")
    }
    for r in rows:
        base = bare.get((r["model"], r["runtime"]))
        if base and not r["method"].startswith("bare"):
            r["overhead %"] = 100.0 * (r["seconds"] / base - 1.0)
    columns = (
        "model",
        "runtime",
        "method",
        "tokens",
        "seconds",
        "tokens/s",
        "overhead %",
        "accumulator share %",
    )
    table = markdown_table(rows, columns)
    print(table)
    notes = (
        "`python bench/collect.py`: teacher-forced scoring of the same texts (English paragraphs "
        f"from the Python standard library's docstrings, {len(docs)} texts); each time is the "
        f"fastest of {repeats} runs taken in turn with the other methods (the machine is shared "
        "and noisy). overhead: calibbench's time over the "
        "bare runtime's, in percent (goal: at most 10). calibbench's run includes log-probs, "
        f"the token-level accumulator at temperatures {TEMPS}, Parquet chunks and the manifest. "
        "runtime hf bfloat16: transformers with the body in bfloat16 and the output layer in "
        "float32 (as config/default.yaml scores), its bare loop the same model's forward; "
        "bfloat16 / float32 speed-up of the bare forward: "
        + ", ".join(f"{m} {v:.2f}x" for m, v in _speedups(rows).items())
        + "."
    )
    if not args.quick:
        write_results("collect", table, {"machine": machine_info(), "rows": rows}, notes)
    if any(r.get("overhead %", 0) > 10 for r in rows):
        print("note: calibbench's overhead exceeds 10 % in at least one row", file=sys.stderr)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
