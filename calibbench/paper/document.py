"""The paper document: Markdown that includes the generated tables and figures, rendered to HTML.

Every number in the text is computed here from the results tree; none is typed by hand. Each
claim of the seed article that the benchmark can test gets a paragraph stating what the models
that ran actually show, with the interval where there is one. Claims the results cannot speak
to (e.g. no code task ran) are said to be untested rather than left out silently.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calibbench.artifacts import atomic_write
from calibbench.paper.results import TUNING_SIGNAL, Results
from calibbench.paper.tables import PRIMARY

FIGURE_CAPTIONS = {
    "reliability": "Reliability before and after recalibration (test split, primary confidence).",
    "temperature": "Token-level temperature curves; the marker is the one-pass fitted T.",
    "pavg": "Mean token probability (pavg) against the actual success rate on code generation.",
    "ece_vs_size": "Calibration error against model size.",
    "ece_by_kind": "Calibration error on multiple choice against generation tasks.",
    "risk": "Risk-coverage curves before and after recalibration.",
}


def _scored(row: pd.Series) -> str:
    """Over how many test problems pavg is measured, where some have none (empty completions)."""
    counts = [row.get(k) for k in ("n_calibration", "n_test", "n_missing")]
    if any(c is None or pd.isna(c) for c in counts) or not counts[2]:
        return ""
    n_cal, n_test, n_missing = (int(c) for c in counts)
    return (
        f", over the {n_test} test problems with a non-empty greedy completion ({n_missing} of "
        f"all {n_cal + n_test + n_missing} problems stopped at once and have no pavg)"
    )


def _ci(row: pd.Series, metric: str = "estimate") -> str:
    return f"{row[metric]:.3f} (95 % CI {row['low']:.3f}-{row['high']:.3f})"


def _raw(results: Results, metric: str, signal: str = PRIMARY) -> pd.DataFrame:
    comp = results.comparisons
    if comp.empty:
        return comp
    sel = comp[(comp.metric == metric) & (comp.signal == signal) & (comp.method == "raw")]
    return sel.sort_values(["model", "task"])


def claims(results: Results) -> list[str]:
    """Paragraphs testing the seed article's claims on these results, in the paper's order."""
    kinds = results.tasks.set_index("task")["kind"] if not results.tasks.empty else pd.Series()
    over = _raw(results, "overconfidence")
    return [
        *_overconfidence_claim(over),
        _code_claim(results, over, kinds),
        *_temperature_claims(results),
        _tuning_claim(results),
        *_best_method_claim(results),
        *_kind_claim(results, kinds),
    ]


def _overconfidence_claim(over: pd.DataFrame) -> list[str]:
    """Mean confidence minus accuracy per model and task (none without results)."""
    if not len(over):
        return []
    significant = over[over.low > 0]
    lines = "; ".join(f"{r.model} on {r.task}: {_ci(r)}" for _, r in over.iterrows())
    return [
        "**Models claim more than they deliver.** Mean confidence minus accuracy on the test "
        f"split (primary confidence): {lines}. It is significantly above zero in "
        f"{len(significant)} of {len(over)} model-task pairs."
    ]


def _code_claim(results: Results, over: pd.DataFrame, kinds: pd.Series) -> str:
    """pavg against the pass rate on code generation, or that no code task ran."""
    code = over[over.task.map(kinds).eq("code")] if len(over) else over
    if not len(code):
        return "**pavg on code generation:** untested here (no code task in the results)."
    conf = _raw(results, "mean_confidence")
    acc = _raw(results, "accuracy")
    parts = []
    for _, r in code.iterrows():
        pavg = conf[(conf.model == r.model) & (conf.task == r.task)].estimate.iloc[0]
        row = acc[(acc.model == r.model) & (acc.task == r.task)].iloc[0]
        parts.append(
            f"{r.model} averages {100 * pavg:.1f} % token probability but passes "
            f"{100 * row.estimate:.1f} % of the unit tests, over-estimating success by "
            f"{100 * r.estimate:.1f} points (95 % CI {100 * r.low:.1f}-{100 * r.high:.1f})"
            + _scored(row)
        )
    return "**pavg over-estimates success on code generation.** " + "; ".join(parts) + "."


def _temperature_claims(results: Results) -> list[str]:
    """What the token-level sweeps show: argmax fixed, sampled accuracy moving, the fitted
    temperatures against 0.7-1.3, Full-ECE against top-1 ECE (none without sweeps)."""
    sweeps, fits = results.sweeps, results.fitted_temperatures
    if sweeps.empty:
        return []
    spans = sweeps.groupby(["model", "task"]).agg(
        argmax=("argmax_accuracy", lambda a: a.max() - a.min()),
        sampled=("sampled_accuracy", lambda a: a.max() - a.min()),
        t_min=("temperature", "min"),
        t_max=("temperature", "max"),
    )
    worst = spans.argmax.max()
    moved = spans.sampled.min(), spans.sampled.max()
    out = [
        "**Temperature changes calibration and sampled accuracy, never the argmax.** Across "
        f"the temperature grid ({spans.t_min.min():g} to {spans.t_max.max():g}), argmax "
        f"accuracy moved by at most {worst:.2g} in every model-task sweep, while sampled "
        f"accuracy (mean probability of the right token) moved by between {moved[0]:.3f} "
        f"and {moved[1]:.3f}."
    ]
    fitted = fits.dropna(subset=["temperature"])
    if len(fitted):
        inside = fitted.temperature.between(0.7, 1.3)
        values = ", ".join(
            f"{r.model}/{r.task} T = {r.temperature:.2f}" for r in fitted.itertuples()
        )
        out.append(
            '**"Try temperatures between 0.7 and 1.3."** The NLL-optimal token-level '
            f"temperatures fitted in one pass are {values}: {int(inside.sum())} of "
            f"{len(fitted)} fall inside that range."
        )
    at_one = sweeps[sweeps.temperature == 1.0]
    if len(at_one):
        pairs = "; ".join(
            f"{r.model}/{r.task}: top-1 ECE {r.top1_ece:.3f}, Full-ECE {r.full_ece:.3f}"
            for r in at_one.itertuples()
        )
        out.append(
            "**Full-ECE sees what top-1 ECE misses.** At T = 1, over whole next-token "
            f"distributions: {pairs}."
        )
    return out


def _best_method_claim(results: Results) -> list[str]:
    """How often each method was the best one (none without comparisons)."""
    best = results.best()
    if not len(best):
        return []
    counts = best.best.fillna("none significantly better").value_counts()
    tally = ", ".join(f"{name}: {n}" for name, n in counts.items())
    return [
        "**Which fix works.** Over every model, task and confidence signal, the method with "
        "the lowest test ECE whose interval lies below the raw confidence's was: "
        f"{tally} (of {len(best)} cases)."
    ]


def _kind_claim(results: Results, kinds: pd.Series) -> list[str]:
    """Mean raw test ECE by model and task kind (none without results)."""
    ece = _raw(results, "ece")
    if not (len(ece) and kinds.size):
        return []
    by_kind = ece.assign(kind=ece.task.map(kinds)).groupby(["model", "kind"]).estimate.mean()
    text = "; ".join(f"{m} {k}: {v:.3f}" for (m, k), v in by_kind.items())
    return [f"**Multiple choice against generation.** Mean raw test ECE by task kind: {text}."]


def _tuning_claim(results: Results) -> str:
    """What calibration-tuning did against its baselines, per tuned model and task."""
    comp = results.comparisons
    part = (
        comp[(comp.signal == TUNING_SIGNAL) & comp.metric.isin(["ece", "auroc"])]
        if len(comp)
        else comp
    )
    if len(part) == 0:
        errors = results.tuning.dropna(subset=["error"]) if len(results.tuning) else results.tuning
        why = f" ({errors.error.iloc[0]})" if len(errors) else ""
        return f"**Calibration-tuning:** untested here{why}."
    sentences = []
    for (model, task), rows in part.groupby(["model", "task"]):
        ece = rows[rows.metric == "ece"].set_index("method")
        auroc = rows[rows.metric == "auroc"].set_index("method")
        listed = ", ".join(
            f"{m} {ece.loc[m, 'estimate']:.3f} (AUROC {auroc.loc[m, 'estimate']:.2f})"
            for m in ("raw", "zero_shot", "probe", "tuned", "tuned_temperature")
            if m in ece.index
        )
        best = rows.best.iloc[0]
        verdict = (f"{best} is significantly better calibrated than the raw confidence"
                   if isinstance(best, str) else "no variant is significantly better calibrated "
                   "than the raw confidence")  # fmt: skip
        sentences.append(f"{model} on {task}: test ECE {listed}; {verdict}")
    return (
        "**Calibration-tuning** (the seed article's strongest fix; LoRA on the uncertainty "
        "query, trained on the calibration items only). " + "; ".join(sentences) + "."
    )


def _table(tables: Path, name: str) -> str:
    path = tables / f"{name}.md"
    return path.read_text() if path.exists() else f"*(no {name} table in these results)*\n"


def markdown(results: Results, tables: Path, figures: Path, relative_to: Path) -> str:
    """The paper as Markdown, linking figures relative to the document's folder."""
    manifest = results.manifest
    models = results.models
    tasks = results.tasks
    parts = [
        "# Calibration of small language models' token probabilities\n",
        "Generated by calibbench from the results of one workflow run "
        f"(code {str(manifest['code'].get('commit'))[:12]}"
        f"{' with local changes' if manifest['code'].get('dirty') else ''}, "
        f"configuration {manifest['config_sha256'][:12]}, seed {manifest['seed']}). Every number "
        "below is computed from those results.\n",
        "## Setup\n",
        "Models:\n",
        models[
            [
                "model",
                "runtime",
                "family",
                "n_parameters",
                "vocab_size",
                "quantization",
                "logprob_source",
            ]
        ].to_markdown(index=False)
        + "\n"
        if len(models)
        else "*(no models)*\n",
        "Tasks (test metrics on the seeded test half of each task's items):\n",
        tasks[["task", "kind", "dataset", "split", "licence", "n_items"]].to_markdown(index=False)
        + "\n"
        if len(tasks)
        else "*(no tasks)*\n",
        "## Headline\n",
        _table(tables, "headline"),
        "## What the benchmark found\n",
        *(p + "\n" for p in claims(results)),
        "## Recalibration methods\n",
        _table(tables, "methods_summary"),
        "## Temperature\n",
        _table(tables, "temperature"),
        "## Calibration-tuning\n",
        _table(tables, "calibration_tuning"),
        "## Figures\n",
    ]
    for png in sorted(figures.glob("*.png")):
        caption = next((c for k, c in FIGURE_CAPTIONS.items() if png.stem.startswith(k)), png.stem)
        link = png.relative_to(relative_to).as_posix()
        parts.append(f"![{caption}]({link})\n\n*{caption}* ({png.stem})\n")
    parts.append("## Reproducibility\n")
    versions = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items() if v)
    per_task = ", ".join(f"`{p.name}`" for p in sorted(tables.glob("methods_*.csv")))
    parts.append(f"Python {manifest['python']}; {versions}. Per-task tables: {per_task}.\n")
    return "\n".join(parts)


def write_document(
    results: Results, tables: Path, figures: Path, out: Path, html: Path | None = None
) -> None:
    """Write the Markdown document to `out` and, if asked, its HTML rendering to `html`."""
    text = markdown(results, tables, figures, out.parent)
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    if html is not None:
        import markdown as md

        body = md.markdown(text, extensions=["tables"])
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>calibbench</title>'
            "<style>body{max-width:60em;margin:auto;font-family:sans-serif}table{border-collapse:"
            "collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
            f"</style></head><body>\n{body}\n</body></html>\n"
        )
        atomic_write(html, lambda tmp: Path(tmp).write_text(page))
