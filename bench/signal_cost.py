"""Benchmark: what each confidence signal costs per item, next to the greedy answer itself.

    python bench/signal_cost.py           # 40 TriviaQA and 10 HumanEval items
    python bench/signal_cost.py --quick   # 3 and 2 items, for a smoke run (writes nothing)

The default configuration's local model (SmolLM2-135M: generation through llama.cpp, teacher-
forced scoring through transformers on the same weights, loaded by `load_model` as `calibbench
collect` loads it, with the configuration's chunk size, bins and temperature grid) runs TriviaQA
with every QA option on (samples, verbalized, two_stage, reflection) and HumanEval with the
configuration's options. Each group of requests is collected on its own and timed (wall seconds of
`collect`, Parquet and manifest included; the models are loaded and warmed up beforehand; the
fastest of `--repeats` runs of the whole sequence): on QA the greedy answers, the samples (timed as
the greedy answers with the samples, each reusing its answer's prompt as in the workflow's
collection, less the greedy answers alone), the one-stage verbalized requests (verbal1), then the
review round's two-stage verbalized (verbal2) and review requests, then the follow-up's P(True)
pair (ptrue) and its pair after the review (reflect). HumanEval's grading runs in the sandbox, as
`HumanEvalTask.grade` runs it: the greedy completions' tests (the answer's own grading), the
samples' tests (pass@k only) and the samples' functional-equivalence runs (the cluster signals),
each timed on its own, with the task's workers.

`NEEDS` maps every signal to the cost groups it needs; the script stops when the signal
registry (`calibbench.confidence.signals.SIGNALS`) has a QA or code signal it does not map.
Reports per task and group: extra model calls, prompt, generated and scored tokens, sandbox
runs and seconds per item, and seconds as a multiple of the greedy answer's; and per signal the
groups it needs beyond the answer. Writes bench/results/signal_cost.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibbench.collect import CollectSettings, collect, requests_kind
from calibbench.confidence.functional import clustering_inputs, functional_equivalence
from calibbench.confidence.signals import SIGNALS
from calibbench.models import LanguageModel, load_model
from calibbench.tasks import get_task
from calibbench.tasks.humaneval import HumanEvalTask, check_sources
from calibbench.tasks.sandbox import run_tests
from harness import machine_info, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "default.yaml"
MODEL = "smollm2-135m"
#: The QA options off in the default configuration, switched on so that every signal is measured.
QA_OPTIONS = {"verbalized": True, "two_stage": True, "reflection": True}

#: Cost groups per task kind: what runs, as (group, what), in table order. "greedy" is the answer
#: itself (on code with its tests), which every signal needs.
GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "qa": (
        ("greedy", "item/greedy: the answer, greedy, top-5 log-probs"),
        ("samples", "item/samples: sampled answers"),
        ("verbal1", "item/verbal1: one-stage verbalized request"),
        ("verbal2", "item/verbal2: two-stage verbalized request (review round)"),
        ("ptrue", "item/ptrue_yes, ptrue_no: P(True) pair, scored"),
        ("review", "item/review: the model's review of its answer (review round)"),
        ("reflect", "item/reflect_yes, reflect_no: P(True) pair after the review, scored"),
    ),
    "code": (
        ("greedy", "item/greedy completion and its tests in the sandbox"),
        ("samples", "item/samples: sampled completions"),
        ("sample_tests", "the samples' tests in the sandbox"),
        ("clustering", "the samples' functional-equivalence runs in the sandbox"),
    ),
}

#: The cost groups each signal needs, per task kind (the greedy answer is always needed; shared
#: groups, such as the samples, are paid once for all the signals that need them). pass@k is a
#: reference accuracy, not a signal, and is here for its cost only.
NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "qa": {
        "confidence": ("greedy",),
        "geometric_mean": ("greedy",),
        "min_token_prob": ("greedy",),
        "sampling_agreement": ("samples",),
        "largest_cluster_share": ("samples",),
        "semantic_entropy": ("samples",),
        "semantic_entropy_weighted": ("samples",),
        "n_semantic_sets": ("samples",),
        "p_true": ("ptrue",),
        "verbalized": ("verbal1",),
        "verbalized_two_stage": ("verbal2",),
        "p_true_reflection": ("review", "reflect"),
    },
    "code": {
        "confidence": ("greedy",),
        "geometric_mean": ("greedy",),
        "min_token_prob": ("greedy",),
        "sampling_agreement": ("samples",),
        "largest_cluster_share": ("samples", "clustering"),
        "semantic_entropy": ("samples", "clustering"),
        "semantic_entropy_weighted": ("samples", "clustering"),
        "n_semantic_sets": ("samples", "clustering"),
        "pass@k": ("samples", "sample_tests"),
    },
}
NOT_SIGNALS = {"pass@k"}


def check_needs() -> None:
    """Stop when the signal registry and NEEDS disagree (a new signal must be costed here)."""
    for kind, needs in NEEDS.items():
        registry = {s.name for s in SIGNALS if kind in s.kinds}
        missing, unknown = registry - set(needs), set(needs) - registry - NOT_SIGNALS
        groups = {g for g, _ in GROUPS[kind]}
        stray = {g for gs in needs.values() for g in gs} - groups
        if missing or unknown or stray:
            raise SystemExit(
                f"bench/signal_cost.py: NEEDS[{kind!r}] is out of date: registry signals not "
                f"mapped {sorted(missing)}, mapped names not in the registry {sorted(unknown)}, "
                f"groups not in GROUPS {sorted(stray)}; update NEEDS and GROUPS"
            )


class MachineLoad:
    """What else ran during the benchmark: the 1-minute load average (which counts this process's
    own threads too), sampled every `every` seconds, and the CPUs busy with other processes (all
    CPUs' busy time in /proc/stat less this process's and its children's, over the wall time)."""

    def __init__(self, every: float = 5.0):
        self.samples = [os.getloadavg()[0]]
        self._start = (time.perf_counter(), _busy_seconds(), _own_seconds())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        wall, busy, own = (b - a for a, b in
                           zip(self._start, (time.perf_counter(), _busy_seconds(), _own_seconds()),
                               strict=True))  # fmt: skip
        return {"load_1min_mean": sum(self.samples) / len(self.samples),
                "load_1min_max": max(self.samples), "cpus_busy_with_this_run": own / wall,
                "cpus_busy_with_others": max(0.0, busy - own) / wall}  # fmt: skip


def _busy_seconds() -> float:
    """Seconds all CPUs spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its waited-for children (the sandbox runs)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Models:
    """The configuration's model entry, one runtime per request kind, loaded and warmed up once
    (outside the timed collections) as `calibbench collect` loads it."""

    def __init__(self, spec: dict[str, Any], settings: CollectSettings, scratch: Path):
        self.spec = spec
        self.settings = settings
        self.scratch = scratch
        self._loaded: dict[str, LanguageModel] = {}

    def __call__(self, kind: str) -> LanguageModel:
        runtime = "generate" if kind == "generate" else "score"
        if runtime not in self._loaded:
            model = load_model(MODEL, self.spec, kind)
            warm_up = {"request_id": "warm-up", "kind": kind}
            warm_up |= (
                {"prompt": "Warm-up:", "max_tokens": 4, "n": 1}
                if kind == "generate"
                else {"context": "Warm-up:", "continuation": " yes"}
            )  # the accumulator's first use included
            collect(model, pd.DataFrame([warm_up]), self.scratch / f"warm-up-{runtime}",
                    self.settings, progress=False)  # fmt: skip
            self._loaded[runtime] = model
        return self._loaded[runtime]

    def close(self) -> None:
        for model in self._loaded.values():
            model.close()


def run_group(
    models: Models, requests: pd.DataFrame, settings: CollectSettings, scratch: Path, name: str
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Collect `requests` into a folder of `scratch`; its records and its cost in total."""
    model = models(requests_kind(requests, name))
    start = time.perf_counter()
    out = collect(model, requests, scratch / name, settings, progress=False)
    seconds = time.perf_counter() - start
    records = pd.read_parquet(out / "records.parquet")
    model_seconds = float(pd.read_parquet(out / "timing.parquet")["seconds"].sum())
    return records, count(models, requests, records) | {
        "collect_seconds": seconds,
        "model_seconds": model_seconds,
        "sandbox_seconds": 0.0,
    }


def count(models: Models, requests: pd.DataFrame, records: pd.DataFrame) -> dict[str, float]:
    """Model calls (completions generated, or texts scored), prompt tokens of the generate
    requests (once per request), generated tokens and scored tokens (context + continuation)."""
    cost = {"calls": 0.0, "prompt": 0.0, "generated": 0.0, "scored": 0.0, "sandbox": 0.0}
    if requests_kind(requests) == "generate":
        tokenize = models("generate").tokenize
        cost["calls"] = float(requests["n"].sum())
        cost["prompt"] = float(sum(len(tokenize(p)) for p in requests["prompt"]))
        cost["generated"] = float(sum(len(lp) for g in records["token_logprobs"] for lp in g))
    else:
        cost["calls"] = float(len(requests))
        cost["scored"] = float((records["n_context_tokens"] + records["token_ids"].map(len)).sum())
    return cost


def answers_and_samples(
    models: Models, requests: pd.DataFrame, settings: CollectSettings, scratch: Path, name: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """The greedy answers collected alone, then with the samples in the task's order (each
    item's samples after its greedy answer, reusing its prompt's KV cache as the workflow's
    collection does): the records of each, and the greedy answers' cost and the samples' (whose
    seconds `fastest` takes as the difference of the two collections')."""
    greedy, alone = run_group(models, subset(requests, "greedy"), settings, scratch,
                              f"{name}_greedy")  # fmt: skip
    both, together = run_group(models, subset(requests, "greedy", "samples"), settings, scratch,
                               f"{name}_greedy_samples")  # fmt: skip
    samples = both[both["request_id"].str.endswith("/samples")].reset_index(drop=True)
    cost = count(models, subset(requests, "samples"), samples) | {"sandbox_seconds": 0.0}
    for key in ("collect_seconds", "model_seconds"):
        cost[f"with_greedy_{key}"] = together[key]
    return greedy, samples, {"greedy": alone, "samples": cost}


def subset(requests: pd.DataFrame, *suffixes: str) -> pd.DataFrame:
    """The requests whose id ends in one of `/suffix`."""
    keep = requests["request_id"].str.rsplit("/", n=1).str[1].isin(suffixes)
    return requests[keep].reset_index(drop=True)


def qa_costs(
    models: Models, spec: dict[str, Any], n: int, settings: CollectSettings, scratch: Path
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    task = get_task(spec | QA_OPTIONS)
    items = task.items().head(n)
    requests = task.requests(items)
    greedy, samples, costs = answers_and_samples(models, requests, settings, scratch, "qa")
    verbal1, costs["verbal1"] = run_group(models, subset(requests, "verbal1"), settings, scratch,
                                          "qa_verbal1")  # fmt: skip
    answers = pd.concat([greedy, samples, verbal1], ignore_index=True)
    review_requests = task.review_requests(items, answers)
    reviews = []
    for group in ("verbal2", "review"):
        part, costs[group] = run_group(models, subset(review_requests, group), settings, scratch,
                                       f"qa_{group}")  # fmt: skip
        reviews.append(part)
    review = pd.concat(reviews, ignore_index=True)
    followup_requests = task.followup_requests(items, answers, review)
    followups = []
    for group in ("ptrue", "reflect"):
        part, costs[group] = run_group(
            models, subset(followup_requests, f"{group}_yes", f"{group}_no"), settings, scratch,
            f"qa_{group}",
        )  # fmt: skip
        followups.append(part)
    start = time.perf_counter()
    graded = task.grade(items, answers, pd.concat(followups, ignore_index=True), review)
    extra = {
        "grade_seconds": time.perf_counter() - start,
        "accuracy": float(graded["correct"].mean()),
    }
    return costs, extra


def timed_pool(jobs: list[Callable[[], Any]], workers: int) -> tuple[list[Any], float]:
    """Run `jobs`, `workers` at a time; their results and the wall seconds."""
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = [f.result() for f in [pool.submit(job) for job in jobs]]
    return results, time.perf_counter() - start


def code_costs(
    models: Models, spec: dict[str, Any], n: int, settings: CollectSettings, scratch: Path
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    task = get_task(spec)
    if not isinstance(task, HumanEvalTask) or task.chat:
        raise SystemExit("bench/signal_cost.py: expects the configuration's HumanEval, chat off")
    items = task.items().head(n)
    requests = task.requests(items)
    greedy, samples, costs = answers_and_samples(models, requests, settings, scratch, "code")
    texts = {r: list(t) for r, t in zip(samples["request_id"], samples["texts"], strict=True)}

    def program(item: Any, code: str) -> tuple[str, str, str]:
        return *check_sources(item.prompt, code, item.test, item.entry_point), item.entry_point

    rows = list(items.itertuples(index=False))
    answer = {r: str(t[0]) for r, t in zip(greedy["request_id"], greedy["texts"], strict=True)}
    first = {program(it, answer[f"{it.item_id}/greedy"]) for it in rows
             if answer[f"{it.item_id}/greedy"]}  # fmt: skip
    others = {program(it, c) for it in rows for c in texts[f"{it.item_id}/samples"] if c} - first

    def tests(p: tuple[str, str, str]) -> Callable[[], Any]:
        return lambda: run_tests(*p, task.timeout, task.limits)

    _, greedy_seconds = timed_pool([tests(p) for p in sorted(first)], task.workers)
    _, sample_seconds = timed_pool([tests(p) for p in sorted(others)], task.workers)
    clustered = []
    for it in rows:
        inputs, _ = clustering_inputs(it.test, it.prompt, it.entry_point)
        if inputs:
            clustered.append((it, texts[f"{it.item_id}/samples"], inputs))

    def cluster(it: Any, codes: list[str], inputs: list[tuple[Any, ...]]) -> Callable[[], Any]:
        return lambda: functional_equivalence(it.prompt, it.entry_point, codes, inputs,
                                              task.timeout, task.limits, workers=1)  # fmt: skip

    _, cluster_seconds = timed_pool([cluster(*c) for c in clustered], task.workers)
    cluster_runs = sum(len({c for c in codes if c}) for _, codes, _ in clustered)
    costs["greedy"] |= {"sandbox": float(len(first)), "sandbox_seconds": greedy_seconds}
    zero = {"calls": 0.0, "prompt": 0.0, "generated": 0.0, "scored": 0.0, "collect_seconds": 0.0,
            "model_seconds": 0.0}  # fmt: skip
    costs["sample_tests"] = zero | {"sandbox": float(len(others)),
                                    "sandbox_seconds": sample_seconds}  # fmt: skip
    costs["clustering"] = zero | {"sandbox": float(cluster_runs),
                                  "sandbox_seconds": cluster_seconds}  # fmt: skip
    records = pd.concat([greedy, samples], ignore_index=True)
    start = time.perf_counter()
    graded = task.grade(items, records)
    full = time.perf_counter() - start
    answers_only = HumanEvalTask(n_samples=0, max_tokens=task.max_tokens, timeout=task.timeout,
                                 limits=task.limits, workers=task.workers)  # fmt: skip
    start = time.perf_counter()
    answers_only.grade(items, greedy)
    extra = {"grade_seconds": full, "grade_greedy_only_seconds": time.perf_counter() - start,
             "workers": task.workers, "items_clustered": len(clustered),
             "accuracy": float(graded["correct"].mean())}  # fmt: skip
    return costs, extra


def fastest(
    runs: list[tuple[dict[str, dict[str, float]], dict[str, Any]]],
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Costs and extras of repeated runs: counts of the first (every run has the same), each
    time the fastest of the runs; the samples' seconds are the fastest collection of the greedy
    answers with the samples less the fastest of the greedy answers alone."""

    def merge(dicts: list[dict[str, Any]]) -> dict[str, Any]:
        return {k: min(d[k] for d in dicts) if k.endswith("seconds") else v
                for k, v in dicts[0].items()}  # fmt: skip

    costs = {group: merge([c[group] for c, _ in runs]) for group in runs[0][0]}
    greedy, samples = costs["greedy"], costs["samples"]
    for key in ("collect_seconds", "model_seconds"):
        samples[key] = samples.pop(f"with_greedy_{key}") - greedy[key]
    for cost in costs.values():
        cost["seconds"] = cost["collect_seconds"] + cost["sandbox_seconds"]
    return costs, merge([e for _, e in runs])


def table_rows(task: str, kind: str, n: int, costs: dict[str, dict[str, float]]) -> list[dict]:
    base = costs["greedy"]["seconds"]
    rows = []
    for group, what in GROUPS[kind]:
        c = costs[group]
        gives = [s for s, needs in NEEDS[kind].items() if group in needs]
        rows.append({"task": task, "group": group, "what": what, "signals": ", ".join(gives),
                     "calls/item": c["calls"] / n, "prompt tok/item": c["prompt"] / n,
                     "generated tok/item": c["generated"] / n,
                     "scored tok/item": c["scored"] / n, "sandbox runs/item": c["sandbox"] / n,
                     "s/item": c["seconds"] / n, "x greedy": c["seconds"] / base,
                     "seconds": c["seconds"], "model_seconds": c["model_seconds"],
                     "sandbox_seconds": c.get("sandbox_seconds", 0.0)})  # fmt: skip
    return rows


def signal_rows(task: str, kind: str, n: int, costs: dict[str, dict[str, float]]) -> list[dict]:
    """Per signal, the seconds of the groups it needs beyond the greedy answer."""
    base = costs["greedy"]["seconds"]
    rows = []
    for signal, needs in NEEDS[kind].items():
        extra = sum(costs[g]["seconds"] for g in needs if g != "greedy")
        rows.append({"task": task, "signal": signal, "needs": " + ".join(needs),
                     "extra s/item": extra / n, "extra x greedy": extra / base})  # fmt: skip
    return rows


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": dirty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 QA and 2 HumanEval items")
    parser.add_argument("--qa-items", type=int, default=40, help="TriviaQA items (default 40)")
    parser.add_argument("--code-items", type=int, default=10, help="HumanEval items (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs, fastest kept (default 3)")
    args = parser.parse_args()
    check_needs()
    n_qa, n_code = (3, 2) if args.quick else (args.qa_items, args.code_items)
    repeats = 1 if args.quick else args.repeats
    config = yaml.safe_load(CONFIG.read_text())
    settings = CollectSettings(chunk_size=config["collect_chunk_size"], n_bins=config["n_bins"],
                               temperatures=tuple(config["temperatures"]))  # fmt: skip
    spec = config["models"][MODEL]["spec"]
    load = MachineLoad()
    scratch = Path(tempfile.mkdtemp(prefix="signal_cost-"))
    models = Models(spec, settings, scratch)
    qa_runs, code_runs = [], []
    try:
        for r in range(repeats):
            qa_runs.append(qa_costs(models, config["tasks"]["triviaqa"]["spec"], n_qa, settings,
                                    scratch / f"run{r}"))  # fmt: skip
            code_runs.append(code_costs(models, config["tasks"]["humaneval"]["spec"], n_code,
                                        settings, scratch / f"run{r}"))  # fmt: skip
    finally:
        models.close()
        shutil.rmtree(scratch)
    loadavg = load.stop()
    (qa, qa_extra), (code, code_extra) = fastest(qa_runs), fastest(code_runs)
    groups = table_rows("triviaqa", "qa", n_qa, qa) + table_rows("humaneval", "code", n_code, code)
    per_signal = signal_rows("triviaqa", "qa", n_qa, qa) + signal_rows(
        "humaneval", "code", n_code, code
    )
    columns = ("task", "group", "signals", "calls/item", "prompt tok/item", "generated tok/item",
               "scored tok/item", "sandbox runs/item", "s/item", "x greedy")  # fmt: skip
    table = markdown_table(groups, columns)
    signal_table = markdown_table(per_signal, ("task", "signal", "needs", "extra s/item",
                                               "extra x greedy"))  # fmt: skip
    print(table, signal_table, sep="\n\n")
    threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
               "llama.cpp threads": len(os.sched_getaffinity(0))}  # fmt: skip
    busy = (
        f"Other processes kept {loadavg['cpus_busy_with_others']:.2f} of the {os.cpu_count()} "
        f"CPUs busy on average during the run (this run: {loadavg['cpus_busy_with_this_run']:.2f}"
        f"; 1-minute load average {loadavg['load_1min_mean']:.1f}, at most "
        f"{loadavg['load_1min_max']:.1f}, this run's threads included)"
        + (": the seconds are inflated, the ratios less so." if
           loadavg["cpus_busy_with_others"] > 0.25 else ".")
    )  # fmt: skip
    notes = (
        f"`python bench/signal_cost.py`: {MODEL} as config/default.yaml runs it ({spec}; "
        f"OMP_NUM_THREADS={threads['OMP_NUM_THREADS']}, llama.cpp threads "
        f"{threads['llama.cpp threads']}), on {n_qa} TriviaQA items (the configuration's options "
        f"plus {', '.join(QA_OPTIONS)}) and {n_code} HumanEval items. Each group of requests is "
        "collected on its own (wall seconds of `calibbench.collect.collect`, models loaded and "
        f"warmed up beforehand; each time the fastest of {repeats} runs of the whole sequence); "
        "the samples' seconds are those the greedy answers and the samples take together (the "
        "samples reuse the answer's prompt, as in the workflow's collection) less the greedy "
        "answers' alone. HumanEval's sandbox runs are timed on their own with the task's "
        f"{code_extra['workers']} workers, as its grading runs them. calls: completions generated "
        "or texts scored; generated tok: tokens of every completion; scored tok: context + "
        "continuation tokens of the scored requests; x greedy: seconds over the greedy answer's "
        "(on HumanEval with its tests), the cost relative to the answer itself. The second table "
        "sums, per signal, the groups it needs beyond the greedy answer; signals that share a "
        "group (the samples) pay it once together. pass@k is a reference accuracy, not a signal. "
        f"Grading: TriviaQA {qa_extra['grade_seconds']:.2f} s for all {n_qa} items and signals; "
        f"HumanEval's whole `grade` {code_extra['grade_seconds']:.1f} s (greedy only: "
        f"{code_extra['grade_greedy_only_seconds']:.1f} s; the test and clustering runs share "
        f"its pool). {code_extra['items_clustered']} of {n_code} HumanEval items have clustering "
        f"inputs. {busy}"
    )
    payload = {"machine": machine_info(), "threads": threads, "load": loadavg,
               "calibbench": commit(), "qa_items": n_qa, "code_items": n_code, "repeats": repeats,
               "collect_settings": asdict(settings),
               "groups": groups, "signals": per_signal,
               "triviaqa": qa_extra, "humaneval": code_extra}  # fmt: skip
    if not args.quick:
        write_results("signal_cost", f"{table}\n\n{signal_table}", payload, notes)
    print(notes)


if __name__ == "__main__":
    main()
