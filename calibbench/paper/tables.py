"""The paper's tables: built as DataFrames from a results tree, written as CSV, Markdown and LaTeX.

- `headline`: one row per model and task, in the shape of the seed article's table: model, size,
  task, accuracy, Brier, ECE (each with its 95 % bootstrap interval, test split, primary
  confidence), Full-ECE (token level, T = 1, where the task scores full distributions) and the
  best recalibration method ("none significantly better" when no method's ECE interval lies below
  the raw one's); where the configuration maps models onto the seed article's table
  (`calibbench.paper.article`), the article's reported values beside them.
- `methods_<task>`: for one task, every model x confidence signal x method: ECE, Brier, NLL,
  AUROC, AURC, PRR and accuracy with intervals, or why a method could not be fitted.
- `methods_summary`: per method, over all model x task x signal cases: cases fitted, mean change
  in ECE against raw, cases where it was the best and significantly better.
- `temperature`: per model and task with token-level statistics: the one-pass fitted T, and
  top-1 ECE, Full-ECE, NLL, argmax and sampled accuracy at T = 1 and at the grid T nearest to it.
- `calibration_tuning`: per tuned model and task, ECE, AUROC and Brier with intervals of the raw
  confidence, zero-shot P(True), the linear probe, the LoRA-tuned model and tuned + temperature.
- `signals`: every confidence signal by task kind: one row per kind, task, model and signal of
  the registry (`calibbench.confidence.signals`; calibration-tuning and signals outside the
  registry are left out), ordered by kind (multiple choice, open-ended QA, code, then others),
  task, model and the registry's signal order. Columns: whether the signal is a probability,
  test items, raw ECE and smooth ECE (Błasiok & Nakkiran's, through relplot, without an
  interval; both NaN for a score, which is not a probability), ECE after Platt scaling fitted
  on the calibration half (the same fitted map for every signal, so the calibration each can
  reach is comparable) and the raw signal's ranking metrics AUROC, PRR (prediction-rejection
  ratio: 0 random, 1 oracle) and AURAC (area under the accuracy-rejection curve), each with its
  interval but smooth ECE.
- `signal_availability`: which of its kind's registered signals each model x task had (those
  with a comparison in the results) and why each other one is missing: "no prompt scoring" (it
  needs a follow-up scored as given text, which the model cannot score), "no token log-probs"
  (it is computed from token log-probs, which the model does not return: an API entry with
  `logprobs: false`), "option off" (the task's option that switches it on is off) or "not in
  the results" (none of these: the run has no comparison of it). The reasons are read off the
  run's configuration (its manifest) through the registries, in this order.
- `verbalized`: per model, task and form (one-stage: the model states a guess and its
  probability; two-stage: a probability for its graded answer, asked after it) with verbalized
  confidence, how its replies parsed: items, replies per parse status (ok, empty, no_answer,
  no_probability, out_of_range; none is dropped silently) and answer_accuracy, the share of
  correct answers the probabilities are about (one-stage: its guesses, graded like the
  answers; two-stage: the graded answers).

CSV files hold plain numbers (estimate, low, high columns); Markdown and LaTeX show
"estimate [low, high]" with three decimals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibbench.artifacts import atomic_write
from calibbench.confidence.signals import BY_NAME, SIGNALS, Signal
from calibbench.models.registry import RUNTIMES
from calibbench.paper.article import article_models, with_article
from calibbench.paper.results import TUNING_SIGNAL, Results

PRIMARY = "confidence"
SWEEP_METRICS = ("top1_ece", "full_ece", "nll", "argmax_accuracy", "sampled_accuracy")
INTERVAL_METRICS = ("accuracy", "brier", "ece", "nll", "auroc", "aurc", "prr")
#: Task kinds in table order; other kinds follow, by name.
KIND_ORDER = ("multiple_choice", "qa", "code")


def _metric(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    part = frame[frame["metric"] == metric][
        ["model", "task", "signal", "method", "estimate", "low", "high"]
    ]
    return part.rename(
        columns={"estimate": metric, "low": f"{metric}_low", "high": f"{metric}_high"}
    )


def _wide(comparisons: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    keys = ["model", "task", "signal", "method"]
    base = comparisons[[*keys, "best", "error"]].drop_duplicates(keys)
    for metric in metrics:
        base = base.merge(_metric(comparisons, metric), on=keys, how="left")
    return base


def headline(results: Results) -> pd.DataFrame:
    """One row per model and task (see the module docstring)."""
    comp = results.comparisons
    if comp.empty:
        return pd.DataFrame()
    raw = _wide(
        comp[(comp["signal"] == PRIMARY) & (comp["method"] == "raw")], ("accuracy", "brier", "ece")
    )
    models = results.models.set_index("model")
    kinds = results.tasks.set_index("task")["kind"]
    sweeps = results.sweeps
    rows = []
    for r in raw.itertuples():
        full = np.nan
        if not sweeps.empty:
            at_one = sweeps[
                (sweeps.model == r.model) & (sweeps.task == r.task) & (sweeps.temperature == 1.0)
            ]
            full = float(at_one["full_ece"].iloc[0]) if len(at_one) else np.nan
        # an API model's size is unknown (None in its manifest)
        n = models.loc[r.model, "n_parameters"] if r.model in models.index else None
        size = n / 1e6 if n is not None and not pd.isna(n) else np.nan
        rows.append({
            "model": r.model,
            "parameters_M": size,
            "task": r.task,
            "kind": kinds.get(r.task, ""),
            "accuracy": r.accuracy,
            "accuracy_low": r.accuracy_low,
            "accuracy_high": r.accuracy_high,
            "brier": r.brier, "brier_low": r.brier_low, "brier_high": r.brier_high,
            "ece": r.ece, "ece_low": r.ece_low, "ece_high": r.ece_high,
            "full_ece": full,
            "best_method": r.best if isinstance(r.best, str) else "none significantly better",
        })  # fmt: skip
    table = pd.DataFrame(rows).sort_values(["model", "task"], ignore_index=True)
    return with_article(table, article_models(results.config))


def methods_for_task(results: Results, task: str) -> pd.DataFrame:
    """Every model x signal x method of one task with its metrics and intervals."""
    comp = results.comparisons
    part = comp[comp["task"] == task]
    wide = _wide(part, INTERVAL_METRICS)
    wide["best"] = wide["best"].where(wide["best"].notna(), None)
    return wide.drop(columns=["task"]).sort_values(["model", "signal", "method"], ignore_index=True)


def methods_summary(results: Results) -> pd.DataFrame:
    """Per method: cases fitted, mean ECE change against raw, times best."""
    comp = results.comparisons
    ece = comp[comp["metric"] == "ece"]
    raw = ece[ece["method"] == "raw"].set_index(["model", "task", "signal"])["estimate"]
    rows = []
    for method in sorted(set(comp["method"]) - {"raw"}):
        mine = ece[ece["method"] == method].set_index(["model", "task", "signal"])["estimate"]
        delta = (mine - raw.reindex(mine.index)).dropna()
        cases = comp[comp["method"] == method].drop_duplicates(["model", "task", "signal"])
        rows.append({
            "method": method,
            "cases": len(cases),
            "fitted": int(cases["error"].isna().sum()),
            "mean_ece_change": float(delta.mean()) if len(delta) else np.nan,
            "ece_improved_in": int((delta < 0).sum()),
            "best_in": int((cases["best"] == method).sum()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def temperature(results: Results) -> pd.DataFrame:
    """Per model and task with a token-level sweep: fitted T and metrics at T = 1 and near it."""
    sweeps, fits = results.sweeps, results.fitted_temperatures
    if sweeps.empty:
        return pd.DataFrame()
    rows = []
    for (model, task), part in sweeps.groupby(["model", "task"], sort=True):
        fit = fits[(fits.model == model) & (fits.task == task)]
        t_fit = (
            float(fit["temperature"].iloc[0])
            if len(fit) and pd.notna(fit["temperature"].iloc[0])
            else np.nan
        )
        one = part[part.temperature == 1.0].iloc[0]
        near = (
            part.iloc[int(np.argmin(np.abs(part.temperature - t_fit)))]
            if np.isfinite(t_fit)
            else one
        )
        rows.append({
            "model": model, "task": task, "fitted_T": t_fit, "nearest_grid_T": near.temperature,
            **{f"{m}_T1": one[m] for m in SWEEP_METRICS},
            **{f"{m}_near": near[m] for m in ("top1_ece", "full_ece", "nll", "sampled_accuracy")},
            "argmax_accuracy_range": float(part.argmax_accuracy.max() - part.argmax_accuracy.min()),
            "approximation": one.get("approximation", ""),
        })  # fmt: skip
    return pd.DataFrame(rows)


def tuning(results: Results) -> pd.DataFrame:
    """Per calibration-tuned model and task: test ECE and AUROC with intervals of the raw
    confidence, zero-shot P(True), the probe, the tuned model and tuned + temperature."""
    comp = results.comparisons
    part = comp[comp["signal"] == TUNING_SIGNAL] if not comp.empty else comp
    if part.empty:
        return pd.DataFrame()
    wide = _wide(part, ("ece", "auroc", "brier"))
    order = {
        m: i for i, m in enumerate(("raw", "zero_shot", "probe", "tuned", "tuned_temperature"))
    }
    wide = wide.assign(order=wide["method"].map(order)).sort_values(["model", "task", "order"])
    return wide.drop(columns=["signal", "error", "order"]).reset_index(drop=True)


def signal_comparison(results: Results) -> pd.DataFrame:
    """Every registered confidence signal per task kind, task and model (see the module
    docstring); empty when the results have none."""
    comp = results.comparisons
    part = comp[comp["signal"].isin(BY_NAME)] if not comp.empty else comp
    if part.empty:
        return pd.DataFrame()
    keys = ["model", "task", "signal"]
    raw = _wide(part[part["method"] == "raw"], ("ece", "smooth_ece", "auroc", "prr", "aurac"))
    raw = raw.drop(columns=["method", "best", "error", "smooth_ece_low", "smooth_ece_high"])
    platt = (
        _metric(part[part["method"] == "platt"], "ece")
        .drop(columns="method")
        .rename(columns={f"ece{end}": f"ece_platt{end}" for end in ("", "_low", "_high")})
    )
    n_test = part[part["method"] == "raw"].drop_duplicates(keys)[[*keys, "n_test"]]
    table = (
        part[keys]
        .drop_duplicates()
        .merge(n_test, on=keys, how="left")
        .merge(raw, on=keys, how="left")
        .merge(platt, on=keys, how="left")
    )
    kinds = results.tasks.set_index("task")["kind"] if not results.tasks.empty else pd.Series()
    table.insert(0, "kind", [kinds.get(task, "unknown") for task in table["task"]])
    table.insert(4, "probability", ["yes" if BY_NAME[s].probability else "no"
                                    for s in table["signal"]])  # fmt: skip
    table["n_test"] = table["n_test"].astype("Int64")
    order = {name: i for i, name in enumerate(KIND_ORDER)}
    rank = {s.name: i for i, s in enumerate(SIGNALS)}
    table = table.assign(
        kind_rank=table["kind"].map(lambda k: order.get(k, len(order))),
        signal_rank=table["signal"].map(rank),
    ).sort_values(["kind_rank", "kind", "task", "model", "signal_rank"])
    columns = ["kind", "task", "model", "signal", "probability", "n_test", "ece", "ece_low",
               "ece_high", "smooth_ece"]  # fmt: skip
    columns += [f"{m}{end}" for m in ("ece_platt", "auroc", "prr", "aurac")
                for end in ("", "_low", "_high")]  # fmt: skip
    return table[columns].reset_index(drop=True)


def _missing_because(signal: Signal, model: dict[str, Any], task: dict[str, Any]) -> str:
    """Why a pair whose model entry is `model` and task entry `task` (configuration entries,
    {} when unknown) has no `signal` (see the module docstring)."""
    spec = model.get("spec", {})
    runtime = RUNTIMES.get(spec.get("runtime"))
    if runtime is not None and signal.needs_prompt_scores and not runtime.scores_prompts(spec):
        return "no prompt scoring"
    if runtime is not None and signal.needs_logprobs and not runtime.returns_logprobs(spec):
        return "no token log-probs"
    if signal.option is not None and not task.get("spec", {}).get(signal.option, False):
        return "option off"
    return "not in the results"


def signal_availability(results: Results) -> pd.DataFrame:
    """Per task kind, task and model with a registered signal in the results: the signals it
    had and those of its kind it did not, each with why (see the module docstring)."""
    comp = results.comparisons
    part = comp[comp["signal"].isin(BY_NAME)] if not comp.empty else comp
    if part.empty:
        return pd.DataFrame()
    had = part.groupby(["model", "task"])["signal"].agg(set)
    kinds = results.tasks.set_index("task")["kind"] if not results.tasks.empty else pd.Series()
    models, tasks = results.config.get("models", {}), results.config.get("tasks", {})
    order = {name: i for i, name in enumerate(KIND_ORDER)}
    rows = []
    for (model, task), present in had.items():
        kind = kinds.get(task, "unknown")
        own = [s for s in SIGNALS if kind in s.kinds or s.name in present]
        missing = [
            f"{s.name} ({_missing_because(s, models.get(model, {}), tasks.get(task, {}))})"
            for s in own
            if s.name not in present
        ]
        rows.append({
            "kind": kind, "task": task, "model": model,
            "available": ", ".join(s.name for s in own if s.name in present),
            "not_available": "; ".join(missing) or "none",
            "rank": order.get(kind, len(order)),
        })  # fmt: skip
    table = pd.DataFrame(rows).sort_values(["rank", "kind", "task", "model"])
    return table.drop(columns="rank").reset_index(drop=True)


def verbalized_replies(results: Results) -> pd.DataFrame:
    """Per model and task whose graded items have a verbalized status (see the module
    docstring); empty when none has."""
    from calibbench.confidence.verbalized import STATUSES

    forms = (("one-stage", "verbalized_status", "verbalized_correct"),
             ("two-stage", "verbalized_two_stage_status", "correct"))  # fmt: skip
    rows = []
    for path in results.graded_paths():
        graded = pd.read_parquet(path)
        for form, status_column, outcome in forms:
            if status_column not in graded.columns:
                continue
            counts = graded[status_column].value_counts()
            rows.append({
                "model": path.parent.name, "task": path.stem, "form": form, "items": len(graded),
                **{status: int(counts.get(status, 0)) for status in STATUSES},
                "answer_accuracy": float(graded[outcome].mean()) if len(graded) else np.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def _format(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers to three decimals, estimate/low/high columns folded into 'est [low, high]'."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        if column.endswith(("_low", "_high")):
            continue
        values = frame[column]
        if f"{column}_low" in frame.columns:
            out[column] = [
                "—" if pd.isna(e) else f"{e:.3f} [{lo:.3f}, {hi:.3f}]"
                for e, lo, hi in zip(
                    values, frame[f"{column}_low"], frame[f"{column}_high"], strict=True
                )
            ]
        elif pd.api.types.is_float_dtype(values):
            out[column] = ["—" if pd.isna(v) else f"{v:.3f}" for v in values]
        else:
            out[column] = [
                "—" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in values
            ]
    return out


def _write(frame: pd.DataFrame, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.csv", out / f"{name}.md", out / f"{name}.tex"]
    text = _format(frame)
    atomic_write(paths[0], lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
    atomic_write(paths[1], lambda tmp: Path(tmp).write_text(text.to_markdown(index=False) + "\n"))
    latex = text.to_latex(index=False, escape=True, column_format="l" * len(text.columns))
    atomic_write(paths[2], lambda tmp: Path(tmp).write_text(latex))
    return paths


def write_tables(results: Results, out: Path) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX into `out`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = _write(headline(results), out, "headline")
    paths += _write(methods_summary(results), out, "methods_summary")
    optional = {"temperature": temperature, "calibration_tuning": tuning,
                "signals": signal_comparison, "signal_availability": signal_availability,
                "verbalized": verbalized_replies}  # fmt: skip
    for name, build in optional.items():  # written only where the results have data for them
        frame = build(results)
        if not frame.empty:
            paths += _write(frame, out, name)
    for task in sorted(set(results.comparisons.get("task", []))):
        paths += _write(methods_for_task(results, task), out, f"methods_{task}")
    return paths
