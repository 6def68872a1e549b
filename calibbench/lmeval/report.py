"""The calibration report of an lm-eval run: JSON per task, one Markdown page, reliability diagrams.

Files written by `write_report` into the output folder:

- `report.json`: the model's identity, the settings, per graded task its files and checks
  against lm-eval, and the tasks without confidence with the reason;
- `report.md`: the same for reading, with per task and signal every method's out-of-fold ECE,
  Brier, NLL and AUROC with bootstrap intervals, and the best method;
- `tasks/<task>.json`: one task's report (`task_report`);
- `graded/<task>.parquet`: its graded rows (`calibbench.lmeval.logs.grade_samples`);
- `figures/reliability__<task>__<signal>.png`: reliability diagram of the raw confidence against
  the best method (else temperature scaling, else isotonic regression, as the paper's figures).

File names replace characters other than letters, digits, `_`, `.` and `-` by `_`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib.style
import pandas as pd

from calibbench.artifacts import atomic_write, write_json, write_parquet
from calibbench.lmeval.crossfit import cross_fit
from calibbench.lmeval.logs import SIGNALS, GradedTask, LmEvalLog, grade_log, option_scores
from calibbench.paper.figures import (
    STYLE,
    draw_reliability,
    fallback_method,
    save_figure,
    typed_bins,
)

#: Metrics in the Markdown tables, by summary name.
SHOWN = {"accuracy": "accuracy", "mean_confidence": "mean conf.", "ece": "ECE",
         "brier": "Brier", "nll": "NLL", "auroc": "AUROC"}  # fmt: skip


@dataclass(frozen=True)
class ReportSettings:
    """Cross-fitting folds and seed, equal-width bins of ECE and the diagrams, bootstrap
    resamples and interval level, and the methods (None: every registered one)."""

    folds: int = 5
    seed: int = 0
    n_bins: int = 15
    n_resamples: int = 1000
    level: float = 0.95
    methods: tuple[str, ...] | None = None


def report_signals(task: GradedTask) -> dict[str, str]:
    """The signals reported for a task and the outcome each predicts: `confidence` (lm-eval's
    acc) and, where lm-eval reported acc_norm, `confidence_acc_norm`."""
    shown = {"confidence"} | ({"confidence_acc_norm"} if "acc_norm" in task.reported else set())
    return {s: c for s, c in SIGNALS.items() if s in shown and s in task.rows}


def task_report(task: GradedTask, settings: ReportSettings = ReportSettings()) -> dict[str, Any]:
    """One task's JSON-ready report: task, filter, samples file, n_documents, lm-eval's
    reported metrics, the checks against them, option_scores, and per signal the cross-fitted
    methods (`calibbench.lmeval.crossfit.cross_fit`)."""
    cross = {
        signal: cross_fit(
            task.rows, signal, correct, folds=settings.folds, seed=settings.seed,
            n_bins=settings.n_bins, n_resamples=settings.n_resamples, level=settings.level,
            methods=settings.methods,
        )
        for signal, correct in report_signals(task).items()
    }  # fmt: skip
    return {
        "task": task.task,
        "filter": task.filter,
        "samples": str(task.samples),
        "n_documents": len(task.rows),
        "lm_eval": task.reported,
        "checks": task.checks,
        "option_scores": option_scores(task.rows),
        "signals": cross,
    }


def shown_method(signal: dict[str, Any]) -> tuple[str | None, str]:
    """The method drawn against raw and why: the best method ("best"), else the first fitted of
    `calibbench.paper.figures.FALLBACKS` ("fallback"), else none ("none fitted")."""
    best = signal["best"]["method"]
    if best is not None:
        return best, "best"
    after = fallback_method([m for m, entry in signal["methods"].items() if "summary" in entry])
    return (after, "fallback") if after else (None, "none fitted")


def reliability_frame(signal: dict[str, Any], model: str, task: str) -> pd.DataFrame:
    """`calibbench.paper.figures.reliability_data`-shaped rows of the raw confidence ("before")
    and the shown method ("after") of one cross-fitted signal (an entry of `cross_fit`)."""
    after, choice = shown_method(signal)
    parts = [("raw", "before")] + ([(after, "after")] if after else [])
    frames = [
        pd.DataFrame(signal["methods"][method]["summary"]["reliability"]).assign(
            model=model, task=task, method=method, role=role, choice=choice
        )
        for method, role in parts
    ]
    return typed_bins(pd.concat(frames, ignore_index=True))


def model_label(name: str) -> str:
    """A model name short enough for a figure title: a path's last part, a hub id as it is."""
    return Path(name).name if name.startswith(("/", ".", "~")) else name


def file_stem(name: str) -> str:
    """`name` with characters other than letters, digits, `_`, `.` and `-` replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _cell(metric: dict[str, Any] | None) -> str:
    if metric is None or metric["estimate"] is None:
        return "—"
    if metric["low"] is None:
        return f"{metric['estimate']:.3f}"
    return f"{metric['estimate']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table and the blank line after it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def markdown(index: dict[str, Any], reports: dict[str, dict[str, Any]]) -> str:
    """The report page from `report.json`'s content (`index`) and the task reports by name."""
    identity, s = index["identity"], index["settings"]
    extra = identity["extra"]
    lines = [
        "# Calibration of an lm-eval run",
        "",
        f"Model `{identity['name']}` (lm-eval {extra['lm_eval_version']}, model source "
        f"{extra['model_source']}, revision {identity['revision']}, dtype {extra['dtype']}); "
        f"results file `{index['results']}`.",
        "",
        f"Recalibration by {s['folds']}-fold cross-fitting over documents (seed {s['seed']}): "
        "each method is fitted on the other folds and predicts the held-out one. ECE with "
        f"{s['n_bins']} equal-width bins; {s['level']:.0%} percentile bootstrap intervals "
        f"({s['n_resamples']} resamples).",
        "",
    ]
    overview = []
    for name, report in reports.items():
        signal = report["signals"]["confidence"]
        raw = signal["methods"]["raw"]["summary"]["metrics"]
        overview.append([f"`{name}`", report["n_documents"], _cell(raw["accuracy"]),
                         _cell(raw["ece"]), _cell(raw["brier"]), _cell(raw["auroc"]),
                         signal["best"]["method"] or signal["best"]["reason"]])  # fmt: skip
    if overview:
        header = ["task", "documents", "accuracy", "ECE (raw)", "Brier (raw)", "AUROC", "best"]
        lines += _table(header, overview)
    for name, report in reports.items():
        lines += _task_markdown(name, report, index["tasks"][name]["figures"])
    if index["no_confidence"]:
        lines += ["## No confidence in this log", ""]
        rows = [[f"`{t['task']}`", t["output_type"], t["n_documents"], t["reason"]]
                for t in index["no_confidence"]]  # fmt: skip
        lines += _table(["task", "output type", "documents", "reason"], rows)
    return "\n".join(lines)


def _task_markdown(name: str, report: dict[str, Any], figures: dict[str, str]) -> list[str]:
    lines = [
        f"## {name}",
        "",
        f"{report['n_documents']} documents; samples `{report['samples']}`.",
        "",
    ]
    checks = [[c["metric"], repr(c["lm_eval"]), repr(c["calibbench"]), f"{c['difference']:.1e}"]
              for c in report["checks"]]  # fmt: skip
    if checks:
        lines += _table(["lm-eval metric", "lm-eval", "calibbench", "difference"], checks)
    for check in report["checks"]:
        if "top_label_brier" in check:
            lines += [f"Top-label Brier beside lm-eval's: {check['top_label_brier']:.6f}.", ""]
    if report["option_scores"]:
        scores = report["option_scores"]
        lines += [f"Option distributions: multi-class Brier {scores['multiclass_brier']:.4f}, "
                  f"NLL of the gold option {scores['multiclass_nll']:.4f} nats.", ""]  # fmt: skip
    for signal, entry in report["signals"].items():
        lines += [f"### `{signal}` (outcome `{entry['correct']}`)", ""]
        rows = []
        for method, result in entry["methods"].items():
            if "summary" not in result:
                rows.append([method] + ["—"] * len(SHOWN) + [f"not fitted: {result['error']}"])
                continue
            metrics = result["summary"]["metrics"]
            rows.append([method] + [_cell(metrics[m]) for m in SHOWN] + [""])
        lines += _table(["method", *SHOWN.values(), "note"], rows)
        best = entry["best"]
        lines += [f"Best: {best['method'] or '—'} ({best['reason']}).", ""]
        if signal in figures:
            lines += [f"![reliability, {signal}]({figures[signal]})", ""]
    return lines


def write_report(
    log: LmEvalLog, out: str | Path, settings: ReportSettings = ReportSettings()
) -> dict[str, Any]:
    """Grade `log`, cross-fit every method and write the files of the module docstring into
    `out` (created). Returns the content of `report.json`. Raises InputError as
    `calibbench.lmeval.logs.grade_log` does."""
    out = Path(out)
    graded, without = grade_log(log)
    reports, tasks = {}, {}
    with matplotlib.style.context(["default", STYLE]):
        for task in graded:
            stem = file_stem(task.name)
            report = task_report(task, settings)
            write_json(report, out / "tasks" / f"{stem}.json")
            write_parquet(task.rows, out / "graded" / f"{stem}.parquet")
            figures = {}
            for signal, entry in report["signals"].items():
                figure = Path("figures") / f"reliability__{stem}__{file_stem(signal)}.png"
                label = f"{task.name}\n{signal}"
                data = reliability_frame(entry, model_label(log.identity["name"]), label)
                save_figure(draw_reliability(data), out / figure, "png")
                figures[signal] = str(figure)
            reports[task.name] = report
            tasks[task.name] = {"report": f"tasks/{stem}.json", "graded": f"graded/{stem}.parquet",
                                "figures": figures, "checks": task.checks}  # fmt: skip
    index = {
        "results": str(log.results),
        "identity": log.identity,
        "settings": asdict(settings),
        "tasks": tasks,
        "no_confidence": without,
    }
    write_json(index, out / "report.json")
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(markdown(index, reports)))
    return index
