"""The paper's figures: each one's data is a DataFrame built from a results tree, drawn separately.

Files written by `write_figures` (each as `.pdf` and `.png`; the answer-level figures use the
primary confidence signal, `confidence`, on the test split):

- `reliability__{model}__{task}`: reliability diagram of raw against the shown method (see
  `shown_methods`), with Wilson intervals and the bin counts underneath.
- `risk_coverage__{model}__{task}`: risk against coverage for the same two methods, AURC in the
  legend.
- `temperature__{model}__{task}`: token-level sweep: top-1 ECE, Full-ECE, NLL, sampled and argmax
  accuracy against T, with the one-pass fitted T.
- `pavg_code`: code generation: mean pavg against the greedy pass rate and the samples' pass
  rate (pass@1) per model and task (pavg's gap to the greedy pass rate annotated), and the
  reliability diagram of pavg.
- `ece_vs_size`: raw ECE against the number of parameters (log scale), one line per task.
- `ece_by_kind`: raw ECE per model and task, grouped by task kind (multiple choice vs generation).
- `signals_by_kind`: every confidence signal's raw AUROC (top row, 0.5 = chance) and PRR (bottom
  row, 0 = random), one column of panels per task kind, one colour per model and one marker per
  task (the rows of the `signals` table, `calibbench.paper.tables.signal_comparison`).

A figure with no data (no code task, no token-level sweep, no model of known size, no signal
with a ranking metric) is not drawn and the skip is logged. Figures are drawn on the Agg canvas
(no pyplot) at fixed sizes and dpi; `write_figures` draws them in matplotlib's default style plus
`STYLE` (the `draw_*` functions alone use the current rcParams), and the files carry no dates, so
a rerun writes identical bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from calibbench.artifacts import atomic_write
from calibbench.errors import InputError
from calibbench.metrics.bootstrap import bootstrap_ci
from calibbench.metrics.summary import mean_confidence
from calibbench.paper.results import Results
from calibbench.paper.tables import signal_comparison

PRIMARY = "confidence"
#: Methods shown against raw, in order, when no method is significantly better.
FALLBACKS = ("temperature", "isotonic")
KINDS = {"multiple_choice": "multiple choice", "qa": "open-ended QA", "code": "code generation"}
SWEEP_METRICS = ("top1_ece", "full_ece", "nll", "sampled_accuracy", "argmax_accuracy")
DPI = 150
#: Unit-interval axes, padded so points on 0 and 1 stay visible.
UNIT = (-0.02, 1.02)
#: Markers of the tasks in `draw_signals`, in the order the tasks first appear.
MARKERS = "osD^vP*X"
STYLE = {"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 7, "figure.titlesize": 9}

_BIN_COLUMNS = ["bin_low", "bin_high", "count", "mean_confidence", "accuracy", "ci_low", "ci_high"]
_BIN_FLOATS = [c for c in _BIN_COLUMNS if c != "count"]
_CASE_COLUMNS = ["model", "task", "method", "role", "choice"]
_CHOICE_TEXT = {
    "best": "best method",
    "fallback": "none significantly better",
    "none fitted": "no method could be fitted",
}
_METADATA = {"pdf": {"CreationDate": None}, "png": {"Software": "calibbench"}}
_log = logging.getLogger(__name__)


def _kinds(results: Results) -> dict[str, str]:
    tasks = results.tasks
    return {} if tasks.empty else dict(zip(tasks["task"], tasks["kind"], strict=True))


def shown_methods(results: Results, signal: str = PRIMARY) -> pd.DataFrame:
    """Per model and task whose raw `signal` was summarised: the method drawn against raw.

    Columns: model, task, best (the signal's best method; missing when none is significantly
    better), after (best; else temperature scaling if fitted, else isotonic if fitted; else
    missing) and choice ("best", "fallback" or "none fitted").
    """
    columns = ["model", "task", "best", "after", "choice"]
    comp = results.comparisons
    if comp.empty:
        return pd.DataFrame(columns=columns)
    fitted = comp[(comp["signal"] == signal) & comp["error"].isna() & comp["metric"].notna()]
    rows = []
    for (model, task), case in fitted.groupby(["model", "task"], sort=True):
        methods = set(case["method"])
        if "raw" not in methods:
            continue
        best = case["best"].iloc[0]
        if isinstance(best, str):
            after, choice = best, "best"
        else:
            best = None
            after = fallback_method(methods)
            choice = "fallback" if after else "none fitted"
        rows.append({"model": model, "task": task, "best": best, "after": after, "choice": choice})
    return pd.DataFrame(rows, columns=columns)


def fallback_method(fitted: Collection[str]) -> str | None:
    """The method drawn against raw where none is best: the first of FALLBACKS among the
    `fitted` methods, or None."""
    return next((m for m in FALLBACKS if m in fitted), None)


def typed_bins(data: pd.DataFrame) -> pd.DataFrame:
    """Reliability rows with float bin edges, means and intervals and int64 counts."""
    return data.astype({c: float for c in _BIN_FLOATS} | {"count": np.int64})


def _before_after(shown: pd.DataFrame) -> Iterator[tuple[Any, str, str]]:
    """(case, role, method) for raw ("before") and the shown method ("after") of each case."""
    for case in shown.itertuples(index=False):
        yield case, "before", "raw"
        if isinstance(case.after, str):
            yield case, "after", case.after


def reliability_data(results: Results, signal: str = PRIMARY) -> pd.DataFrame:
    """Reliability bins (test split) of raw and the shown method per model and task.

    Columns: model, task, method, role ("before" / "after"), choice (see `shown_methods`),
    bin_low, bin_high, count, mean_confidence, accuracy, ci_low, ci_high (Wilson interval);
    empty bins have NaN means and interval.
    """
    frames = [
        results.reliability(case.model, case.task, signal, method).assign(
            model=case.model, task=case.task, method=method, role=role, choice=case.choice
        )
        for case, role, method in _before_after(shown_methods(results, signal))
    ]
    if not frames:
        return pd.DataFrame(columns=_CASE_COLUMNS + _BIN_COLUMNS)
    return typed_bins(pd.concat(frames, ignore_index=True)[_CASE_COLUMNS + _BIN_COLUMNS])


def risk_coverage(confidence: ArrayLike, correct: ArrayLike) -> pd.DataFrame:
    """Risk-coverage curve of (N,) answers: k = 1..N, coverage k / N, risk = error rate among
    the k most confident answers. Tied confidences take the expectation over random tie-breaking
    (as `calibbench.metrics.scores.aurc` does), so the mean risk is the AURC.
    """
    c = np.asarray(confidence, dtype=float)
    wrong = ~np.asarray(correct, dtype=bool)
    n = c.shape[0]
    if n == 0:
        return pd.DataFrame({"k": [], "coverage": [], "risk": []})
    order = np.argsort(-c, kind="stable")
    _, start, size = np.unique(-c[order], return_index=True, return_counts=True)
    group_errors = np.add.reduceat(wrong[order].astype(np.int64), start)
    errors_before = np.cumsum(group_errors) - group_errors
    group = np.repeat(np.arange(start.shape[0]), size)
    k = np.arange(1, n + 1)
    expected = errors_before[group] + (k - start[group]) * group_errors[group] / size[group]
    return pd.DataFrame({"k": k, "coverage": k / n, "risk": expected / k})


def risk_coverage_data(results: Results, signal: str = PRIMARY) -> pd.DataFrame:
    """Risk-coverage curves of the test predictions of raw and the shown method per model and
    task. Columns: model, task, method, role, choice, k, coverage, risk, aurc (mean risk)."""
    frames = []
    for case, role, method in _before_after(shown_methods(results, signal)):
        predictions = results.predictions(case.model, case.task, signal, method)
        curve = risk_coverage(predictions["confidence"], predictions["correct"])
        if curve.empty:
            continue
        frames.append(
            curve.assign(
                model=case.model,
                task=case.task,
                method=method,
                role=role,
                choice=case.choice,
                aurc=curve["risk"].mean(),
            )
        )
    columns = [*_CASE_COLUMNS, "k", "coverage", "risk", "aurc"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def temperature_data(results: Results) -> pd.DataFrame:
    """Token-level sweeps: per model, task and grid temperature, the `SWEEP_METRICS` and
    fitted_temperature (the one-pass fit; NaN where it failed or is missing)."""
    columns = ["model", "task", "temperature", *SWEEP_METRICS, "fitted_temperature"]
    sweeps = results.sweeps
    if sweeps.empty:
        return pd.DataFrame(columns=columns)
    fits = results.fitted_temperatures
    if fits.empty:
        fits = pd.DataFrame(columns=["model", "task", "temperature"])
    fitted = fits[["model", "task", "temperature"]].rename(
        columns={"temperature": "fitted_temperature"}
    )
    data = sweeps.merge(fitted, on=["model", "task"], how="left")[columns]
    data["fitted_temperature"] = data["fitted_temperature"].astype(float)
    return data.sort_values(["model", "task", "temperature"], ignore_index=True)


def _raw_metrics(results: Results, names: dict[str, str], signal: str) -> pd.DataFrame:
    """model, task and, per metric, `name`, `name_low`, `name_high` of the raw test summary."""
    keys = ["model", "task"]
    columns = keys + [f"{name}{end}" for name in names.values() for end in ("", "_low", "_high")]
    comp = results.comparisons
    if comp.empty:
        return pd.DataFrame(columns=columns)
    part = comp[(comp["signal"] == signal) & (comp["method"] == "raw")]
    part = part[part["metric"].isin(list(names))]
    if part.empty:
        return pd.DataFrame(columns=columns)
    wide = part.pivot(index=keys, columns="metric", values=["estimate", "low", "high"])
    out = pd.DataFrame(index=wide.index)
    for metric, name in names.items():
        for value, end in (("estimate", ""), ("low", "_low"), ("high", "_high")):
            out[f"{name}{end}"] = wide[(value, metric)].astype(float)
    return out.reset_index()[columns]


def pavg_data(results: Results) -> pd.DataFrame:
    """Code tasks: per model and task, the test split's mean pavg (raw `confidence`), pass rate
    (the greedy completion passes its tests), gap = mean pavg - pass rate (over-confidence) and
    sampled_pass_rate (the mean of the graded `pass_at_1`, the share of each item's samples that
    pass), each with its bootstrap interval (`_low`, `_high`). Empty completions have no pavg
    and are not counted, in any of them: the sampled pass rate is the mean over the raw test
    predictions' items, its percentile bootstrap over those items with the run's
    bootstrap_resamples, ci_level and seed (1000, 0.95 and 0 for a run without a manifest); it
    is NaN without a graded table, a pass_at_1 column or samples (n_samples 0)."""
    code = [task for task, kind in _kinds(results).items() if kind == "code"]
    names = {"mean_confidence": "mean_pavg", "accuracy": "pass_rate", "overconfidence": "gap"}
    data = _raw_metrics(results, names, PRIMARY)
    data = data[data["task"].isin(code)].reset_index(drop=True)
    sampled = [_sampled_pass_rate(results, model, task)
               for model, task in zip(data["model"], data["task"], strict=True)]  # fmt: skip
    columns = [f"sampled_pass_rate{end}" for end in ("", "_low", "_high")]
    return data.join(pd.DataFrame(sampled, columns=columns, index=data.index, dtype=float))


def _sampled_pass_rate(results: Results, model: str, task: str) -> tuple[float, float, float]:
    """(mean, low, high) of the graded pass_at_1 over the raw test predictions' items."""
    try:
        graded = results.graded(model, task)
        tested = results.predictions(model, task, PRIMARY, "raw")["item_id"].astype(str)
    except InputError:
        return math.nan, math.nan, math.nan
    if "pass_at_1" not in graded.columns:
        return math.nan, math.nan, math.nan
    by_item = graded.assign(item_id=graded["item_id"].astype(str)).set_index("item_id")
    rates = by_item["pass_at_1"].reindex(tested).dropna().to_numpy(dtype=float)
    if rates.size == 0:
        return math.nan, math.nan, math.nan
    config = results.config
    ci = bootstrap_ci(
        mean_confidence,
        rates,
        np.zeros(rates.size, dtype=bool),
        n_resamples=config.get("bootstrap_resamples", 1000),
        level=config.get("ci_level", 0.95),
        seed=config.get("seed", 0),
    )
    return ci.estimate, ci.low, ci.high


def raw_ece_data(results: Results, signal: str = PRIMARY) -> pd.DataFrame:
    """Per model and task: raw test-split ECE of `signal` (ece, ece_low, ece_high), the task's
    kind and the model's n_parameters (NaN when unknown)."""
    data = _raw_metrics(results, {"ece": "ece"}, signal)
    kinds = _kinds(results)
    models = results.models
    sizes = {} if models.empty else dict(zip(models["model"], models["n_parameters"], strict=True))
    data.insert(1, "n_parameters", data["model"].map(sizes).astype(float))
    data.insert(3, "kind", [kinds.get(task, "unknown") for task in data["task"]])
    return data


def signals_data(results: Results) -> pd.DataFrame:
    """Per task kind, task, model and registered confidence signal (in the `signals` table's
    order): the raw signal's test-split AUROC and PRR, each with its interval (`_low`, `_high`);
    rows where both are undefined are left out."""
    columns = ["kind", "task", "model", "signal"]
    columns += [f"{m}{end}" for m in ("auroc", "prr") for end in ("", "_low", "_high")]
    table = signal_comparison(results)
    if table.empty:
        return pd.DataFrame(columns=columns)
    table = table[table[["auroc", "prr"]].notna().any(axis=1)]
    return table[columns].astype({c: float for c in columns[4:]}).reset_index(drop=True)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _one(data: pd.DataFrame, column: str) -> str:
    values = data[column].unique()
    if len(values) != 1:
        raise InputError(f"expected the data of one {column}, got {list(values)}")
    return str(values[0])


def _subtitle(data: pd.DataFrame) -> str:
    methods = list(dict.fromkeys(data["method"]))
    return f"{' vs '.join(methods)} ({_CHOICE_TEXT[_one(data, 'choice')]})"


def draw_reliability(data: pd.DataFrame) -> Figure:
    """Reliability diagram of one model and task from `reliability_data` rows."""
    fig = _figure(4.0, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for i, (method, bins) in enumerate(data.groupby("method", sort=False)):
        color = f"C{i}"
        filled = bins[bins["count"] > 0]
        top.plot(
            filled["mean_confidence"],
            filled["accuracy"],
            color=color,
            marker="o",
            markersize=3,
            label=f"{bins['role'].iloc[0]}: {method}",
        )
        _intervals(top, filled["mean_confidence"], filled["ci_low"], filled["ci_high"], color)
        edges = np.append(bins["bin_low"].to_numpy(), bins["bin_high"].iloc[-1])
        bottom.stairs(bins["count"].to_numpy(), edges, color=color, label=method)
    top.set(xlim=UNIT, ylim=UNIT, ylabel="accuracy")
    top.legend(loc="upper left")
    bottom.set(xlabel="mean confidence", ylabel="count")
    fig.suptitle(f"{_one(data, 'model')} · {_one(data, 'task')}\n{_subtitle(data)}")
    return fig


def draw_risk_coverage(data: pd.DataFrame) -> Figure:
    """Risk-coverage curves of one model and task from `risk_coverage_data` rows."""
    fig = _figure(4.0, 3.4)
    ax = fig.subplots()
    for method, curve in data.groupby("method", sort=False):
        label = f"{curve['role'].iloc[0]}: {method} (AURC {curve['aurc'].iloc[0]:.3f})"
        ax.plot(curve["coverage"], curve["risk"], marker=".", markersize=3, label=label)
    ax.set(xlim=(0, 1.02), ylim=UNIT, xlabel="coverage k / N", ylabel="risk (error rate)")
    ax.legend(loc="upper left")
    fig.suptitle(f"{_one(data, 'model')} · {_one(data, 'task')}\n{_subtitle(data)}")
    return fig


def _sparse_labels(grid: np.ndarray, min_ratio: float = 1.12) -> list[str]:
    """Tick labels for a (log-scale) temperature grid: a label only where it is at least
    `min_ratio` times the last labelled value and 1 is always labelled, so that labels of close
    grid points (0.8, 0.85, 0.9) do not overlap."""
    labels, last = [], None
    for t in grid:
        crowds_one = 1.0 in grid and t < 1.0 < t * min_ratio
        show = t == 1.0 or (not crowds_one and (last is None or t >= last * min_ratio))
        labels.append(f"{t:g}" if show else "")
        last = t if show else last
    return labels


def draw_temperature(data: pd.DataFrame) -> Figure:
    """Metrics against temperature for one model and task from `temperature_data` rows."""
    fig = _figure(9.0, 3.0)
    axes = fig.subplots(1, 3)
    panels = (
        (("top1_ece", "top-1 ECE"), ("full_ece", "Full-ECE")),
        (("nll", "NLL (nats)"),),
        (("sampled_accuracy", "sampled accuracy"), ("argmax_accuracy", "argmax accuracy")),
    )
    grid = data["temperature"].to_numpy()
    fitted = data["fitted_temperature"].iloc[0]
    for ax, panel in zip(axes, panels, strict=True):
        for column, label in panel:
            ax.plot(grid, data[column], marker="o", markersize=3, label=label)
        if np.isfinite(fitted):
            ax.axvline(fitted, color="0.3", linestyle=":", label=f"fitted T = {fitted:.2f}")
        ax.set_xscale("log")
        ax.set_xticks(grid, labels=_sparse_labels(grid))
        ax.minorticks_off()
        ax.set_xlabel("temperature T")
        ax.legend()
    axes[2].set_ylim(bottom=0)
    note = "" if np.isfinite(fitted) else " (no fitted temperature)"
    fig.suptitle(f"{_one(data, 'model')} · {_one(data, 'task')}: token level{note}")
    return fig


def _case_labels(data: pd.DataFrame) -> list[str]:
    return [f"{m}\n{t}" for m, t in zip(data["model"], data["task"], strict=True)]


def _intervals(ax: Axes, x: ArrayLike, low: ArrayLike, high: ArrayLike, color: str) -> None:
    """Interval lines from low to high (a percentile bootstrap interval need not hold the
    estimate, so these are not symmetric error bars around it)."""
    ax.vlines(x, low, high, color=color, linewidth=1)


def draw_pavg(summary: pd.DataFrame, reliability: pd.DataFrame) -> Figure:
    """Code generation: `pavg_data` rows as bars (mean pavg, greedy pass rate, sampled pass
    rate; the gap of pavg to the greedy pass rate annotated) and pavg's raw reliability diagram
    from the `reliability_data` rows of method "raw" of the same models and tasks."""
    fig = _figure(9.0, 3.6)
    bars, rel = fig.subplots(1, 2)
    x = np.arange(len(summary))
    parts = ((-0.27, "mean_pavg", "mean pavg", "C0"),
             (0.0, "pass_rate", "pass rate (greedy)", "C1"),
             (0.27, "sampled_pass_rate", "pass rate (samples, pass@1)", "C2"))  # fmt: skip
    for offset, name, label, color in parts:
        bars.bar(x + offset, summary[name], width=0.27, color=color, label=label)
        _intervals(bars, x + offset, summary[f"{name}_low"], summary[f"{name}_high"], "0.2")
    heights = [f"{name}{end}" for _, name, _, _ in parts for end in ("", "_high")]
    for xi, r in zip(x, summary.itertuples(index=False), strict=True):
        top = np.nanmax([getattr(r, h) for h in heights])
        text = f"gap {r.gap:+.2f}\n[{r.gap_low:+.2f}, {r.gap_high:+.2f}]"
        bars.annotate(text, (xi, top), xytext=(0, 3), textcoords="offset points", ha="center")
    bars.set_xticks(x, labels=_case_labels(summary))
    bars.set(ylim=(0, 1.45), yticks=np.linspace(0, 1, 6), ylabel="mean over the test split")
    bars.legend(loc="upper center", ncols=3, handlelength=1, columnspacing=1)
    rel.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
    for i, ((model, task), bins) in enumerate(reliability.groupby(["model", "task"], sort=True)):
        filled = bins[bins["count"] > 0]
        rel.plot(
            filled["mean_confidence"],
            filled["accuracy"],
            color=f"C{i}",
            marker="o",
            markersize=3,
            label=f"{model} · {task} (n = {bins['count'].sum()})",
        )
        _intervals(rel, filled["mean_confidence"], filled["ci_low"], filled["ci_high"], f"C{i}")
    rel.set(xlim=UNIT, ylim=UNIT, xlabel="pavg (mean token probability)", ylabel="pass rate")
    rel.legend(loc="upper left")
    fig.suptitle("Code generation: pavg (greedy completion, raw) against actual success")
    return fig


def draw_ece_vs_size(data: pd.DataFrame) -> Figure:
    """Raw ECE against n_parameters, one line per task, from `raw_ece_data` rows (rows of
    unknown size are left out). Tasks are dodged by up to ±3 % in x so intervals stay apart."""
    fig = _figure(5.0, 3.4)
    ax = fig.subplots()
    known = data[data["n_parameters"].notna()]
    tasks = sorted(set(known["task"]))
    dodge = np.linspace(-0.03, 0.03, len(tasks)) if len(tasks) > 1 else [0.0]
    for i, (task, shift) in enumerate(zip(tasks, dodge, strict=True)):
        part = known[known["task"] == task].sort_values("n_parameters")
        x = part["n_parameters"] * (1 + shift)
        ax.plot(x, part["ece"], color=f"C{i}", marker="o", markersize=3, label=task)
        _intervals(ax, x, part["ece_low"], part["ece_high"], f"C{i}")
    ax.set_xscale("log")
    ax.set(xlabel="parameters", ylabel="ECE (raw, test split)", ylim=(0, None))
    ax.legend()
    fig.suptitle("Calibration error against model size")
    return fig


def draw_ece_by_kind(data: pd.DataFrame) -> Figure:
    """Raw ECE per model and task, one panel per task kind, from `raw_ece_data` rows."""
    kinds = [k for k in KINDS if k in set(data["kind"])]
    kinds += sorted(set(data["kind"]) - set(kinds))
    widths = [data.loc[data["kind"] == k, "task"].nunique() for k in kinds]
    fig = _figure(7.0, 3.4)
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False, width_ratios=widths)[0]
    models = sorted(set(data["model"]))
    width = 0.8 / len(models)
    for ax, kind in zip(axes, kinds, strict=True):
        part = data[data["kind"] == kind]
        tasks = sorted(set(part["task"]))
        for i, model in enumerate(models):
            mine = part[part["model"] == model].set_index("task").reindex(tasks)
            x = np.arange(len(tasks)) - 0.4 + width * (i + 0.5)
            ax.bar(x, mine["ece"], width=width, color=f"C{i}", label=model)
            _intervals(ax, x, mine["ece_low"], mine["ece_high"], "0.2")
        ax.set_xticks(np.arange(len(tasks)), labels=tasks)
        ax.set_title(KINDS.get(kind, kind))
    axes[0].set(ylabel="ECE (raw, test split)", ylim=(0, None))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(models), 4))
    fig.suptitle("Calibration error: multiple choice vs generation")
    return fig


def draw_signals(data: pd.DataFrame) -> Figure:
    """Raw AUROC (top row, dashed at chance, 0.5) and PRR (bottom row, dashed at a random
    order, 0) of every confidence signal, one column of panels per task kind (in `KINDS` order,
    others after), from `signals_data` rows: one colour per model, one marker per task (the
    legend lists both). Signals keep the rows' order; the (model, task) series of a kind are
    dodged within ±0.4 of their signal."""
    kinds = [k for k in KINDS if k in set(data["kind"])]
    kinds += sorted(set(data["kind"]) - set(kinds))
    widths = [max(2, data.loc[data["kind"] == k, "signal"].nunique()) for k in kinds]
    fig = _figure(max(6.0, 1.5 + 0.55 * sum(widths)), 5.4)
    axes = fig.subplots(2, len(kinds), sharex="col", sharey="row", squeeze=False,
                        width_ratios=widths)  # fmt: skip
    models = sorted(set(data["model"]))
    tasks = list(dict.fromkeys(data["task"]))
    colors = {model: f"C{i}" for i, model in enumerate(models)}
    markers = {task: MARKERS[i % len(MARKERS)] for i, task in enumerate(tasks)}
    for column, kind in enumerate(kinds):
        top, bottom = axes[:, column]
        part = data[data["kind"] == kind]
        signals = list(dict.fromkeys(part["signal"]))
        series = sorted(set(zip(part["model"], part["task"], strict=True)))
        step = 0.8 / len(series)
        for i, (model, task) in enumerate(series):
            mine = part[(part["model"] == model) & (part["task"] == task)]
            mine = mine.set_index("signal").reindex(signals)
            x = np.arange(len(signals)) - 0.4 + step * (i + 0.5)
            for ax, metric in ((top, "auroc"), (bottom, "prr")):
                ax.plot(x, mine[metric], color=colors[model], marker=markers[task],
                        linestyle="none", markersize=4)  # fmt: skip
                _intervals(ax, x, mine[f"{metric}_low"], mine[f"{metric}_high"], colors[model])
        top.axhline(0.5, color="0.6", linestyle="--", linewidth=1)
        bottom.axhline(0.0, color="0.6", linestyle="--", linewidth=1)
        top.set_title(KINDS.get(kind, kind.replace("_", " ")))
        bottom.set_xticks(np.arange(len(signals)), labels=signals, rotation=35, ha="right")
    axes[0, 0].set(ylabel="AUROC (raw, test split)", ylim=UNIT)
    axes[1, 0].set(ylabel="PRR (raw, test split)")
    handles = [Line2D([], [], color=colors[m], marker="o", linestyle="none", label=m)
               for m in models]  # fmt: skip
    handles += [Line2D([], [], color="0.4", marker=markers[t], linestyle="none", label=t)
                for t in tasks]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
    fig.suptitle("Confidence signals by task kind: do they rank right answers above wrong ones?")
    return fig


def save_figure(fig: Figure, path: Path, fmt: str) -> None:
    """Write `fig` to `path` as `fmt` ("pdf" or "png") at DPI, with reproducible metadata."""
    metadata = _METADATA[fmt]
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata))


def _save(fig: Figure, out: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in _METADATA:
        path = out / f"{stem}.{fmt}"
        save_figure(fig, path, fmt)
        paths.append(path)
    return paths


def _skip(name: str, why: str) -> None:
    _log.warning("figure %s not drawn: %s", name, why)


def _per_case(
    data: pd.DataFrame, draw: Callable[[pd.DataFrame], Figure], out: Path, name: str
) -> list[Path]:
    paths = []
    for (model, task), part in data.groupby(["model", "task"], sort=True):
        paths += _save(draw(part), out, f"{name}__{model}__{task}")
    if not paths:
        _skip(name, "no data in the results")
    return paths


def write_figures(results: Results, out: Path) -> list[Path]:
    """Write every figure that has data as PDF and PNG into `out` (created); returns the paths.

    Figures without data are skipped with a logged warning (see the module docstring).
    """
    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.style.context(["default", STYLE]):
        reliability = reliability_data(results)
        paths = _per_case(reliability, draw_reliability, out, "reliability")
        paths += _per_case(risk_coverage_data(results), draw_risk_coverage, out, "risk_coverage")
        paths += _per_case(temperature_data(results), draw_temperature, out, "temperature")
        pavg = pavg_data(results)
        if pavg.empty:
            _skip("pavg_code", "no code-generation task with a raw summary")
        else:
            code = reliability["task"].isin(pavg["task"]) & (reliability["method"] == "raw")
            paths += _save(draw_pavg(pavg, reliability[code]), out, "pavg_code")
        ece = raw_ece_data(results)
        if ece["n_parameters"].notna().any():
            paths += _save(draw_ece_vs_size(ece), out, "ece_vs_size")
        else:
            _skip("ece_vs_size", "no raw ECE of a model of known size")
        if ece.empty:
            _skip("ece_by_kind", "no raw ECE in the results")
        else:
            paths += _save(draw_ece_by_kind(ece), out, "ece_by_kind")
        signals = signals_data(results)
        if signals.empty:
            _skip("signals_by_kind", "no confidence signal with a raw AUROC or PRR")
        else:
            paths += _save(draw_signals(signals), out, "signals_by_kind")
    return paths
