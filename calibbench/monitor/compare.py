"""A run against a baseline run: for every model x task x confidence signal graded in both, the
change in ECE, Brier, accuracy and AUROC with bootstrap intervals (`calibbench.monitor.change`).

Data: each run's graded items, `results/graded/{model}/{task}.parquet`, every item whose signal
is finite (both halves of the calibration/test split: a raw signal is not fitted, so it needs no
held-out half, and the split's seed cannot change what is compared). Signals are the graded
columns named in `calibbench.confidence.signals` that both tables have.

Pairing: when the two runs graded the same set of item ids for a task, the comparison of each
signal is paired by item id, on the items whose signal is finite in both runs; otherwise it is
unpaired, each run on its own items. Every row says which (`pairing`) and on how many items.

Flags: a change is significant when its interval excludes zero. A threshold t > 0 for a metric is
crossed (an alert) when the change is worse than t in the metric's harmful direction (ECE and
Brier up, accuracy and AUROC down) and significant.

Compatibility (InputError naming the key): a task of the same name must be the same data set
(name, subset, split) and kind in both runs, and the runs must share at least one model x task;
a graded table must have `item_id` and `correct` and no repeated item id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibbench.artifacts import write_json
from calibbench.confidence.signals import OF_GRADED_ANSWER
from calibbench.errors import InputError
from calibbench.monitor.change import WORSE, change_metrics, metric_change
from calibbench.monitor.output import json_records, write_csv, write_text
from calibbench.paper.results import Results
from calibbench.runs import results_of

#: Columns of `RunComparison.rows`, in order.
ROW_COLUMNS = (
    "model",
    "task",
    "signal",
    "metric",
    "pairing",
    "n_baseline",
    "n_new",
    "baseline",
    "new",
    "change",
    "low",
    "high",
    "significant",
    "threshold",
    "alert",
    "reason",
)
#: Task fields that must agree between the runs for a task to be compared.
TASK_FIELDS = ("kind", "dataset", "subset", "split")


def results_root(path: Path, what: str) -> Path:
    """The results tree of a run directory (`runs/<name>`), a history entry, or a results
    folder itself; InputError names `what` when there are no graded items under it."""
    root = results_of(path)
    if not (root / "graded").is_dir():
        raise InputError(
            f"{what}: {path} holds no graded items (no graded/ or results/graded/); give a run "
            "directory (runs/<name>), a history entry, or a results folder"
        )
    return root


def _graded(root: Path, what: str) -> dict[tuple[str, str], Path]:
    found = {(p.parent.name, p.stem): p for p in sorted(root.glob("graded/*/*.parquet"))}
    if not found:
        raise InputError(f"{what}: {root}/graded holds no graded tables")
    return found


def _items(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    for column in ("item_id", "correct"):
        if column not in frame.columns:
            raise InputError(f"{path}: no {column!r} column; is it a graded table?")
    repeated = frame["item_id"][frame["item_id"].duplicated()]
    if len(repeated):
        row = int(repeated.index[0])
        raise InputError(
            f"{path}: row {row + 1}: item_id {repeated.iloc[0]!r} repeats an earlier row; a "
            "graded table holds one row per item"
        )
    return frame.set_index("item_id")


def _task_info(results: Results) -> dict[str, dict[str, Any]]:
    if results.tasks.empty:
        return {}
    return {
        r["task"]: {k: None if pd.isna(r[k]) else r[k] for k in TASK_FIELDS}
        for _, r in results.tasks.iterrows()
    }


def _check_tasks(base: dict, new: dict, tasks: set[str]) -> None:
    for task in sorted(tasks):
        if task not in base or task not in new:
            which = "baseline" if task not in base else "new run"
            raise InputError(
                f"tasks.{task}: the {which} has graded items but no tasks/{task}/task.json; "
                "copy the whole results tree (or record the run with `calibbench monitor record`)"
            )
        diff = [
            f"{k} {base[task][k]!r} -> {new[task][k]!r}"
            for k in TASK_FIELDS
            if base[task][k] != new[task][k]
        ]
        if diff:
            raise InputError(
                f"tasks.{task}: the two runs graded different data under one name "
                f"({'; '.join(diff)}); compare runs of the same task, or give the new task its "
                "own name"
            )


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= _flat(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: data}


def config_differences(baseline: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every dotted configuration key whose value differs (absent: —)."""
    a, b = _flat(baseline), _flat(new)
    show = lambda key, d: json.dumps(d[key], sort_keys=True) if key in d else "—"  # noqa: E731
    return [
        f"{k}: {show(k, a)} -> {show(k, b)}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k, object()) != b.get(k, object())
    ]


def _answers(frame: pd.DataFrame, signal: str) -> pd.DataFrame:
    part = frame[[signal, "correct"]]
    return part[np.isfinite(part[signal].to_numpy(np.float64))]


@dataclass(frozen=True)
class RunComparison:
    """Two runs compared. rows: one per model x task x signal x metric (ROW_COLUMNS): pairing
    ("paired" or "unpaired"), the items each run contributed, each run's value, the change with
    its interval, whether it is significant, the metric's threshold (None: none set) and whether
    it raised an alert; reason says why a metric is undefined (its values are then None).
    settings: n_bins, n_resamples, level, seed, thresholds. differences: configuration keys that
    differ ('key: old -> new'). models: per model in both runs, whether its file changed."""

    baseline: str
    new: str
    settings: dict[str, Any]
    rows: pd.DataFrame
    differences: tuple[str, ...]
    models: dict[str, dict[str, Any]]

    @property
    def alerts(self) -> pd.DataFrame:
        """The rows whose threshold was crossed."""
        return self.rows[self.rows["alert"]]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN as None); `from_json` rebuilds the comparison."""
        return {
            "baseline": self.baseline,
            "new": self.new,
            "settings": self.settings,
            "differences": list(self.differences),
            "models": self.models,
            "rows": json_records(self.rows),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunComparison:
        """The comparison from `to_json()` output."""
        try:
            rows = pd.DataFrame(data["rows"], columns=list(ROW_COLUMNS))
            return cls(
                data["baseline"],
                data["new"],
                data["settings"],
                rows,
                tuple(data["differences"]),
                data["models"],
            )
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a calibbench run comparison: missing {exc}") from None

    def wide(self, signal: str | None = None) -> pd.DataFrame:
        """One row per model x task x signal (only `signal` if given): pairing with its item
        counts, and per metric 'change [low, high]' marked * when significant and ALERT when
        its threshold was crossed, or why it is undefined."""
        rows = self.rows if signal is None else self.rows[self.rows["signal"] == signal]
        out = []
        for (model, task, sig), part in rows.groupby(["model", "task", "signal"], sort=True):
            first = part.iloc[0]
            entry = {"model": model, "task": task, "signal": sig, "items": _items_text(first)}
            for r in part.itertuples():
                entry[r.metric] = _change_text(r)
            out.append(entry)
        return pd.DataFrame(out)

    def markdown(self) -> str:
        """The comparison as a Markdown report."""
        s = self.settings
        lines = [
            "# Calibration change against the baseline",
            "",
            f"Baseline: `{self.baseline}`  ",
            f"New: `{self.new}`",
            "",
            f"Change = new - baseline on every graded item with the signal; {s['level']:.0%} "
            f"percentile bootstrap intervals from {s['n_resamples']} resamples (seed "
            f"{s['seed']}), paired by item id where both runs graded the same items; ECE with "
            f"{s['n_bins']} equal-width bins. * : the interval excludes zero. ALERT: worse than "
            "the threshold and significant.",
            "",
        ]
        thresholds = s.get("thresholds") or {}
        lines.append(
            "Thresholds: "
            + (", ".join(f"{k} {v:g}" for k, v in thresholds.items()) or "none set")
            + "."
        )
        changed = [m for m, info in self.models.items() if info.get("changed")]
        if changed:
            lines += ["", "Model files that changed: " + ", ".join(changed) + "."]
        lines += ["", "## Configuration differences", ""]
        lines += [f"- `{d}`" for d in self.differences] or ["- none"]
        lines += ["", "## Changes", "", self.wide().to_markdown(index=False), "", "## Alerts", ""]
        lines += [f"- {_alert_text(r)}" for r in self.alerts.itertuples()] or ["- none"]
        return "\n".join(lines) + "\n"


def _items_text(row: Any) -> str:
    if row["pairing"] == "paired":
        return f"paired, {row['n_new']}"
    return f"unpaired, {row['n_baseline']} / {row['n_new']}"


def _change_text(r: Any) -> str:
    if r.change is None or pd.isna(r.change):
        run = str(r.reason).split(" run:")[0]
        return f"undefined in the {run} run" if run in ("baseline", "new") else "undefined"
    mark = " ALERT" if r.alert else (" *" if r.significant else "")
    return f"{r.change:+.3f} [{r.low:+.3f}, {r.high:+.3f}]{mark}"


def _alert_text(r: Any) -> str:
    return (
        f"{r.model} / {r.task} / {r.signal}: {r.metric} {r.baseline:.3f} -> {r.new:.3f} "
        f"({r.change:+.3f} [{r.low:+.3f}, {r.high:+.3f}]; threshold {r.threshold:g})"
    )


def check_thresholds(thresholds: dict[str, float] | None) -> dict[str, float]:
    """Thresholds by metric name, each a positive number; InputError names a bad one."""
    out = {}
    for metric, value in (thresholds or {}).items():
        if metric not in WORSE:
            raise InputError(f"threshold {metric!r}: metrics with thresholds are {list(WORSE)}")
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise InputError(f"threshold {metric}: expected a positive number, got {value!r}")
        out[metric] = float(value)
    return out


def run_settings(
    config: dict[str, Any],
    n_bins: int | None = None,
    n_resamples: int | None = None,
    level: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """n_bins, n_resamples, level and seed: those given, else the run configuration's
    (n_bins, bootstrap_resamples, ci_level, seed), else 15, 1000, 0.95 and 0."""
    return {
        "n_bins": n_bins or config.get("n_bins", 15),
        "n_resamples": n_resamples or config.get("bootstrap_resamples", 1000),
        "level": level or config.get("ci_level", 0.95),
        "seed": config.get("seed", 0) if seed is None else seed,
    }


def _row(
    key: tuple,
    metric: str,
    pairing: str,
    counts: tuple[int, int],
    change: Any,
    threshold: float | None,
    reason: str | None,
) -> dict[str, Any]:
    model, task, signal = key
    base = {
        "model": model,
        "task": task,
        "signal": signal,
        "metric": metric,
        "pairing": pairing,
        "n_baseline": counts[0],
        "n_new": counts[1],
        "threshold": threshold,
    }
    if change is None:
        return base | {
            "baseline": None,
            "new": None,
            "change": None,
            "low": None,
            "high": None,
            "significant": False,
            "alert": False,
            "reason": reason,
        }
    worse = WORSE[metric] * change.change
    alert = threshold is not None and change.significant and worse > threshold
    return base | {
        "baseline": change.baseline,
        "new": change.new,
        "change": change.change,
        "low": change.low,
        "high": change.high,
        "significant": change.significant,
        "alert": bool(alert),
        "reason": None,
    }


def _compare_signal(
    key: tuple, base: pd.DataFrame, new: pd.DataFrame, paired: bool, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    signal = key[2]
    a, b = _answers(base, signal), _answers(new, signal)
    if paired:
        common = a.index.intersection(b.index).sort_values()
        a, b = a.loc[common], b.loc[common]
    pairing = "paired" if paired else "unpaired"
    counts = (len(a), len(b))
    rows = []
    for metric, fn in change_metrics(settings["n_bins"]).items():
        threshold = settings["thresholds"].get(metric)
        if not all(counts):
            reason = "no items with this signal in one of the runs"
            rows.append(_row(key, metric, pairing, counts, None, threshold, reason))
            continue
        try:
            change = metric_change(
                fn,
                (a[signal], a["correct"]),
                (b[signal], b["correct"]),
                paired,
                settings["n_resamples"],
                settings["level"],
                settings["seed"],
            )
        except InputError as exc:
            rows.append(_row(key, metric, pairing, counts, None, threshold, str(exc)))
            continue
        rows.append(_row(key, metric, pairing, counts, change, threshold, None))
    return rows


def compare_runs(
    baseline: Path,
    new: Path,
    n_bins: int | None = None,
    n_resamples: int | None = None,
    level: float | None = None,
    seed: int | None = None,
    thresholds: dict[str, float] | None = None,
) -> RunComparison:
    """Compare the run `new` against `baseline` (run directories, history entries or results
    folders); see the module docstring. Settings left None come from the new run's
    configuration (n_bins, bootstrap_resamples, ci_level, seed), else 15, 1000, 0.95 and 0.
    Raises InputError for missing or incompatible runs or a bad threshold."""
    roots = results_root(baseline, "baseline"), results_root(new, "new run")
    results = Results(roots[0]), Results(roots[1])
    graded = _graded(roots[0], "baseline"), _graded(roots[1], "new run")
    shared = sorted(graded[0].keys() & graded[1].keys())
    if not shared:
        listing = [sorted(f"{m}/{t}" for m, t in g) for g in graded]
        raise InputError(
            f"models/tasks: the runs share no model x task (baseline {listing[0]}, new "
            f"{listing[1]}); compare runs of the same configuration"
        )
    _check_tasks(*(_task_info(r) for r in results), {t for _, t in shared})
    settings = run_settings(results[1].config, n_bins, n_resamples, level, seed)
    settings["thresholds"] = check_thresholds(thresholds)
    rows = []
    for model, task in shared:
        base, fresh = _items(graded[0][(model, task)]), _items(graded[1][(model, task)])
        paired = set(base.index) == set(fresh.index)
        for signal in OF_GRADED_ANSWER:
            if signal in base.columns and signal in fresh.columns:
                rows += _compare_signal((model, task, signal), base, fresh, paired, settings)
    manifests = [r.manifest if (r.root / "manifest.json").is_file() else {} for r in results]
    models = {}
    for model in sorted({m for m, _ in shared}):
        hashes = [m.get("models", {}).get(model, {}).get("sha256") for m in manifests]
        models[model] = {
            "baseline_sha256": hashes[0],
            "new_sha256": hashes[1],
            "changed": hashes[0] != hashes[1],
        }
    return RunComparison(
        baseline=str(baseline),
        new=str(new),
        settings=settings,
        rows=pd.DataFrame(rows, columns=list(ROW_COLUMNS)),
        differences=tuple(config_differences(results[0].config, results[1].config)),
        models=models,
    )


def write_comparison(comparison: RunComparison, out: Path) -> list[Path]:
    """Write comparison.json (everything; `read_comparison` reads it), comparison.md and
    comparison.csv (the rows) into the folder `out`; returns the paths."""
    paths = [out / "comparison.json", out / "comparison.md", out / "comparison.csv"]
    write_json(comparison.to_json(), paths[0])
    write_text(comparison.markdown(), paths[1])
    write_csv(comparison.rows, paths[2])
    return paths


def read_comparison(path: Path) -> RunComparison:
    """A comparison written by `write_comparison` (its comparison.json, or the folder)."""
    path = path / "comparison.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the run comparison ({exc})") from None
    return RunComparison.from_json(data)
