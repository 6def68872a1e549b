"""One task of an lm-eval log as the workflow's files, so it joins models calibbench ran itself.

For a task of the log, `write_workflow_task` writes what the workflow's stages would have
written for it:

- the graded table (`graded/{model}/{task}.parquet` of the grade stage): one row per document,
  the columns of `calibbench.lmeval.logs.grade_samples`;
- the items (`tasks/{task}/items.parquet` of the prepare stage, as far as the split stage reads
  it): item_id, doc_id, subset and, where the log names it, gold;
- the task's information (`tasks/{task}/task.json`): task, kind, limit, n_items and the data
  set as lm-eval configured it (its `dataset_path`, `dataset_name`, split; `sha256` is lm-eval's
  own hash of the task's documents, prompts and targets, `task_hashes`);
- the model's identity (`calibbench.lmeval.logs.model_identity`), for a collection manifest's
  `model` entry.

In a run, an entry of the configuration's `lm_eval:` section names a log and some of its tasks;
each task joins the run as `lm-eval.<task>` (`run_task`), apart from the configuration's own
tasks of the same data, and its only confidence signal is "confidence" (the chosen option's
probability). `check_entry` is its start-up check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from calibbench.artifacts import write_json, write_parquet
from calibbench.errors import InputError
from calibbench.lmeval.logs import (
    GradedTask,
    LmEvalLog,
    grade_task,
    no_confidence_reason,
    read_log,
)

PREFIX = "lm-eval."
SIGNALS = ("confidence",)


def run_task(task: str) -> str:
    """The run's name of lm-eval task `task`."""
    return PREFIX + task


def log_task(name: str) -> str:
    """The lm-eval task of the run's task `name` (see `run_task`)."""
    if not name.startswith(PREFIX):
        raise InputError(f"{name!r} is not a task of an lm-eval log (they start with {PREFIX!r})")
    return name[len(PREFIX) :]


def check_entry(name: str, entry: dict[str, Any]) -> list[str]:
    """Problems of the configuration entry `lm_eval.<name>` ({path, tasks}): a path that is not
    an lm-eval run written with --log_samples, a task it does not hold, or one without
    confidence in it (with the reason). Reads the results file only."""
    try:
        log = read_log(entry["path"])
    except InputError as exc:
        return [f"lm_eval.{name}.path: {exc}"]
    problems = []
    for task in entry["tasks"]:
        if task not in log.tasks:
            problems.append(
                f"lm_eval.{name}.tasks: {log.results} holds no task {task!r}; "
                f"tasks: {sorted(log.tasks)}"
            )
        elif (reason := no_confidence_reason(log.tasks[task])) is not None:
            problems.append(f"lm_eval.{name}.tasks: {task!r} has no confidence in this log: "
                            f"{reason}")  # fmt: skip
    return problems


def task_info(log: LmEvalLog, graded: GradedTask) -> dict[str, Any]:
    """`tasks/{task}/task.json` content of a graded task of `log` (see the module docstring)."""
    task = log.tasks[graded.task]
    config = task.config
    split = config.get("test_split") or config.get("validation_split")
    dataset = {
        "name": config.get("dataset_path"),
        "subset": config.get("dataset_name"),
        "split": split,
        "licence": "not recorded in the lm-eval log (see the data set's card)",
        "n_items": len(graded.rows),
        "sha256": task.task_hash,
        "source": f"lm-eval log {graded.samples}",
        "url": "",
    }
    return {"task": graded.name, "kind": "multiple_choice", "limit": log.settings.get("limit"),
            "n_items": len(graded.rows), "dataset": dataset}  # fmt: skip


def workflow_items(graded: GradedTask) -> pd.DataFrame:
    """The items of a graded task, as far as the split stage reads them: item_id, doc_id,
    subset and, where the log names it, gold."""
    columns = [c for c in ("item_id", "doc_id", "subset", "gold") if c in graded.rows]
    return graded.rows[columns].copy()


def collection_manifest(log: LmEvalLog, graded: GradedTask) -> dict[str, Any]:
    """What stands for a collection's `manifest.json` of a task read from a log: the model's
    identity under "model" (where the paper and the provenance read it), the log's files and
    settings, and lm-eval's metrics with calibbench's checks of them."""
    return {"model": log.identity, "source": "lm-eval log", "results_file": str(log.results),
            "samples_file": str(graded.samples), "task": graded.task, "filter": graded.filter,
            "settings": log.settings, "lm_eval_metrics": graded.reported,
            "checks": graded.checks}  # fmt: skip


def write_workflow_task(
    path: str | Path,
    task: str,
    graded: str | Path | None,
    items: str | Path | None,
    info: str | Path | None = None,
    identity: str | Path | None = None,
    filt: str | None = None,
    manifest: str | Path | None = None,
) -> GradedTask:
    """Read the lm-eval run at `path` (see `calibbench.lmeval.logs.find_results`), grade its
    task `task` and write those of the graded Parquet, the items Parquet, the task's
    information, the model's identity and the collection manifest (`collection_manifest`) that
    are given. `filt` selects an lm-eval filter where the samples hold several. Returns the
    graded task; raises InputError as `calibbench.lmeval.logs.grade_task` does, or for a filter
    the samples do not hold."""
    log = read_log(path)
    by_filter = {g.filter: g for g in grade_task(log, task)}
    if filt is None and len(by_filter) > 1:
        raise InputError(f"task {task!r}: its samples hold filters {sorted(by_filter)}; pick one")
    if filt is not None and filt not in by_filter:
        raise InputError(f"task {task!r}: no filter {filt!r}; filters: {sorted(by_filter)}")
    chosen = by_filter[filt] if filt is not None else next(iter(by_filter.values()))
    if graded is not None:
        write_parquet(chosen.rows, graded)
    if items is not None:
        write_parquet(workflow_items(chosen), items)
    if info is not None:
        write_json(task_info(log, chosen), info)
    if identity is not None:
        write_json(log.identity, identity)
    if manifest is not None:
        write_json(collection_manifest(log, chosen), manifest)
    return chosen
