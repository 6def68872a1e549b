"""The paper document: Markdown and a styled HTML page built from the results, tables and figures.

Every number is computed here from the results tree or read from the tables' CSV files (which
this module never changes); none is typed by hand. The page opens with a claims table: each
testable claim of the seed article, what this run measured (with its 95 % interval where there
is one), a verdict and why. A claim the results cannot speak to (no code task ran, no sweep) is
"not testable here" rather than left out. Each claim then gets a short section with its numbers
as a small table and the figures that support it. Tables show human headers with units and
intervals as "estimate [low, high]"; on the HTML page a wide table scrolls inside its own box.

Verdicts (decided by `claims`, stated with each claim): "supported", "not supported" or "not
testable here", by the rule in the claim's function docstring.

The confidence signals get their own section: every signal's calibration and ranking metrics by
task kind (the `signals` table and figure), under the claim that token probabilities work for
multiple choice but not for open-ended generation.

Given a run comparison (`calibbench.monitor.compare.RunComparison`), the paper gains a "Change
since the baseline" section: the change of each metric on the primary confidence with its
interval, the alerts and the configuration differences.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from calibbench.artifacts import atomic_write
from calibbench.confidence.signals import SIGNALS
from calibbench.paper.results import TUNING_SIGNAL, Results
from calibbench.paper.tables import PRIMARY, signal_comparison

if TYPE_CHECKING:
    from calibbench.monitor.compare import RunComparison

SUPPORTED, NOT_SUPPORTED, UNTESTABLE = "supported", "not supported", "not testable here"
FIGURE_CAPTIONS = {
    "reliability": "Reliability before and after recalibration (test split, primary confidence)",
    "temperature": "Token-level temperature curves; the marker is the one-pass fitted T",
    "pavg": "Mean token probability (pavg) against the actual success rate on code generation",
    "ece_vs_size": "Calibration error against model size",
    "ece_by_kind": "Calibration error on multiple choice against generation tasks",
    "risk": "Risk-coverage curves before and after recalibration",
    "signals_by_kind": "Raw AUROC and PRR of every confidence signal by task kind (test split)",
}
#: Signals read off the answer's own token probabilities (the others sample more answers or ask
#: a follow-up question): the seed article's "token probabilities".
TOKEN_SIGNALS = ("confidence", "confidence_token_norm", "geometric_mean", "min_token_prob")
#: Task kinds whose answers are generated rather than chosen among options.
GENERATION_KINDS = ("qa", "code")
#: Human column headers (with units) of the tables as the page shows them; other columns keep
#: their name with underscores as spaces.
HEADERS = {
    "model": "Model", "task": "Task", "kind": "Kind", "runtime": "Runtime", "family": "Family",
    "n_parameters": "Parameters (M)", "parameters_M": "Parameters (M)",
    "vocab_size": "Vocabulary (tokens)", "quantization": "Quantization",
    "logprob_source": "Log-probs", "dataset": "Data set", "split": "Split", "licence": "Licence",
    "n_items": "Items", "accuracy": "Accuracy", "brier": "Brier score", "ece": "ECE",
    "full_ece": "Full-ECE (T = 1)", "best_method": "Best method", "best": "Best method",
    "method": "Method", "signal": "Confidence signal", "error": "Not fitted because",
    "nll": "NLL (nats)", "auroc": "AUROC", "aurc": "AURC", "cases": "Cases", "fitted": "Fitted",
    "mean_ece_change": "Mean ECE change", "ece_improved_in": "ECE lower in (cases)",
    "best_in": "Best in (cases)", "fitted_T": "Fitted T", "nearest_grid_T": "Nearest grid T",
    "top1_ece_T1": "Top-1 ECE, T = 1", "full_ece_T1": "Full-ECE, T = 1",
    "nll_T1": "NLL, T = 1 (nats)", "argmax_accuracy_T1": "Argmax accuracy, T = 1",
    "sampled_accuracy_T1": "Sampled accuracy, T = 1", "top1_ece_near": "Top-1 ECE, grid T",
    "full_ece_near": "Full-ECE, grid T", "nll_near": "NLL, grid T (nats)",
    "sampled_accuracy_near": "Sampled accuracy, grid T",
    "argmax_accuracy_range": "Argmax accuracy range over T", "approximation": "Approximation",
    "article_model": "Article's model", "article_size": "Article: size",
    "article_brier": "Article: Brier", "article_ece": "Article: ECE",
    "article_best_method": "Article: best method",
    "probability": "Probability", "n_test": "Test items", "ece_platt": "ECE after Platt",
    "prr": "PRR", "smooth_ece": "Smooth ECE", "aurac": "AURAC",
}  # fmt: skip
KIND_NAMES = {"multiple_choice": "multiple choice", "qa": "open-ended QA",
              "code": "code generation", "language_modelling": "language modelling"}  # fmt: skip
STYLE = """
body{font-family:Georgia,"Times New Roman",serif;color:#1d1d1f;background:#fff;margin:0 auto;
max-width:62rem;padding:1.5rem 2rem;line-height:1.55}
h1{font-size:1.9rem;line-height:1.2;margin-bottom:.3rem}
h2{font-size:1.35rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.25rem}
h3{font-size:1.1rem;margin-top:1.6rem}
h1,h2,h3,table,figcaption,.note{font-family:system-ui,-apple-system,"Segoe UI",sans-serif}
.note,figcaption{color:#555;font-size:.88rem}
.table-box{overflow-x:auto;max-width:100%;margin:.6rem 0 1rem;border:1px solid #e3e3e3}
table{border-collapse:collapse;font-size:.82rem;width:100%}
th,td{border-bottom:1px solid #e8e8e8;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f6f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.wrap{min-width:12rem}
td.supported{color:#1b5e20;font-weight:600}td.not-supported{color:#b00020;font-weight:600}
td.not-testable-here{color:#666;font-style:italic}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(19rem,1fr));gap:1rem}
figure{margin:0}figure img{width:100%;height:auto;border:1px solid #eee}
"""


@dataclass(frozen=True)
class Table:
    """A table as the document shows it: `frame` holds display text, `numeric` the columns to
    right-align, `wrap` the columns of long text."""

    frame: pd.DataFrame
    numeric: tuple[str, ...] = ()
    wrap: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figures:
    """Figure files (PNG paths) shown together, each with its caption."""

    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Claim:
    """One claim of the seed article: title; measured (what this run found, one line);
    verdict (SUPPORTED, NOT_SUPPORTED or UNTESTABLE); why (the rule's outcome); text (the
    section's paragraph); details (per model and task numbers, or None); figures (stems'
    prefixes of the figures that support it)."""

    title: str
    measured: str
    verdict: str
    why: str
    text: str
    details: Table | None = None
    figures: tuple[str, ...] = field(default_factory=tuple)


Block = str | Table | Figures


def _ci(estimate: float, low: float, high: float, scale: float = 1.0, digits: int = 3) -> str:
    return (f"{scale * estimate:.{digits}f} [{scale * low:.{digits}f}, "
            f"{scale * high:.{digits}f}]")  # fmt: skip


def _raw(results: Results, metric: str, signal: str = PRIMARY) -> pd.DataFrame:
    comp = results.comparisons
    if comp.empty:
        return comp
    sel = comp[(comp.metric == metric) & (comp.signal == signal) & (comp.method == "raw")]
    return sel.sort_values(["model", "task"])


def _text_table(rows: list[dict[str, str]], numeric: Sequence[str] = ()) -> Table:
    return Table(pd.DataFrame(rows), tuple(numeric))


def claims(results: Results) -> list[Claim]:
    """Every claim of the seed article the page states, in the page's order."""
    kinds = results.tasks.set_index("task")["kind"] if not results.tasks.empty else pd.Series()
    return [
        _overconfidence_claim(results),
        _code_claim(results, kinds),
        _temperature_claim(results),
        _temperature_range_claim(results),
        _full_ece_claim(results),
        _tuning_claim(results),
        _best_method_claim(results),
        _kind_claim(results, kinds),
        _signal_claim(results),
    ]


def _untestable(title: str, why: str, figures: tuple[str, ...] = ()) -> Claim:
    return Claim(title, "—", UNTESTABLE, why, f"Untested here: {why}.", None, figures)


def _overconfidence_claim(results: Results) -> Claim:
    """Supported when mean confidence minus accuracy (primary confidence, test split) has an
    interval above zero in more than half of the model-task pairs and below zero in none."""
    title = "Models claim more than they deliver"
    over = _raw(results, "overconfidence")
    if not len(over):
        return _untestable(title, "no model-task comparison in the results", ("reliability",))
    above, below = int((over.low > 0).sum()), int((over.high < 0).sum())
    verdict = SUPPORTED if above * 2 > len(over) and below == 0 else NOT_SUPPORTED
    conf, acc = _raw(results, "mean_confidence"), _raw(results, "accuracy")
    rows = []
    for r in over.itertuples():
        c = conf[(conf.model == r.model) & (conf.task == r.task)].estimate
        a = acc[(acc.model == r.model) & (acc.task == r.task)].estimate
        rows.append({"Model": r.model, "Task": r.task,
                     "Mean confidence": f"{c.iloc[0]:.3f}" if len(c) else "—",
                     "Accuracy": f"{a.iloc[0]:.3f}" if len(a) else "—",
                     "Over-confidence [95 % CI]": _ci(r.estimate, r.low, r.high)})  # fmt: skip
    span = f"{over.estimate.min():.2f} to {over.estimate.max():.2f}"
    return Claim(
        title,
        f"mean confidence - accuracy from {span}",
        verdict,
        f"the interval lies above zero in {above} of {len(over)} model-task pairs and below "
        f"zero in {below}",
        "Mean confidence minus accuracy on the test split, primary confidence. It is "
        f"significantly above zero in {above} of {len(over)} model-task pairs.",
        _text_table(rows, ("Mean confidence", "Accuracy", "Over-confidence [95 % CI]")),
        ("reliability",),
    )


def _scored(row: pd.Series) -> str:
    """Over how many test problems pavg is measured, where some have none (empty completions)."""
    counts = [row.get(k) for k in ("n_calibration", "n_test", "n_missing")]
    if any(c is None or pd.isna(c) for c in counts) or not counts[2]:
        return ""
    n_cal, n_test, n_missing = (int(c) for c in counts)
    return f"{n_test} of {n_cal + n_test + n_missing} ({n_missing} without a completion)"


def _code_claim(results: Results, kinds: pd.Series) -> Claim:
    """Supported when pavg minus the pass rate has an interval above zero on every code task."""
    title = "pavg over-estimates success on code generation"
    over = _raw(results, "overconfidence")
    code = over[over.task.map(kinds).eq("code")] if len(over) else over
    if not len(code):
        return _untestable(title, "no code task in the results", ("pavg",))
    conf, acc = _raw(results, "mean_confidence"), _raw(results, "accuracy")
    rows = []
    for r in code.itertuples():
        pavg = conf[(conf.model == r.model) & (conf.task == r.task)].estimate.iloc[0]
        passed = acc[(acc.model == r.model) & (acc.task == r.task)].iloc[0]
        rows.append({"Model": r.model, "Task": r.task, "pavg (%)": f"{100 * pavg:.1f}",
                     "Unit tests passed (%)": f"{100 * passed.estimate:.1f}",
                     "Over-estimate (points) [95 % CI]": _ci(r.estimate, r.low, r.high, 100, 1),
                     "Test problems with pavg": _scored(passed) or "all"})  # fmt: skip
    above = int((code.low > 0).sum())
    verdict = SUPPORTED if above == len(code) else NOT_SUPPORTED
    return Claim(
        title,
        "pavg - pass rate: " + "; ".join(
            f"{r.model} +{100 * r.estimate:.1f} points [{100 * r.low:.1f}, {100 * r.high:.1f}]"
            for r in code.itertuples()),
        verdict,
        f"the over-estimate's interval lies above zero on {above} of {len(code)} code tasks",
        "The mean token probability of the greedy completion (pavg) against the share of "
        "problems whose unit tests pass, on the test split: pavg over-estimates success on "
        f"code generation in {above} of {len(code)} model-task pairs.",
        _text_table(rows, ("pavg (%)", "Unit tests passed (%)",
                           "Over-estimate (points) [95 % CI]")),
        ("pavg",),
    )  # fmt: skip


def _spans(results: Results) -> pd.DataFrame:
    return results.sweeps.groupby(["model", "task"]).agg(
        argmax=("argmax_accuracy", lambda a: a.max() - a.min()),
        sampled=("sampled_accuracy", lambda a: a.max() - a.min()),
        t_min=("temperature", "min"),
        t_max=("temperature", "max"),
    )


def _temperature_claim(results: Results) -> Claim:
    """Supported when argmax accuracy does not move over the temperature grid in any sweep
    (range below 1e-9) while sampled accuracy does (range above 1e-3) in every sweep."""
    title = "Temperature changes calibration and sampled accuracy, never the argmax"
    if results.sweeps.empty:
        return _untestable(title, "no token-level sweep in the results", ("temperature",))
    spans = _spans(results)
    fixed = int((spans.argmax < 1e-9).sum())
    moved = int((spans.sampled > 1e-3).sum())
    verdict = SUPPORTED if fixed == moved == len(spans) else NOT_SUPPORTED
    grid = f"T = {spans.t_min.min():g} to {spans.t_max.max():g}"
    return Claim(
        title,
        f"argmax accuracy range at most {spans.argmax.max():.2g}; sampled accuracy range "
        f"{spans.sampled.min():.3f} to {spans.sampled.max():.3f} ({grid})",
        verdict,
        f"argmax accuracy stayed fixed in {fixed} and sampled accuracy moved in {moved} of "
        f"{len(spans)} sweeps",
        f"Across the temperature grid ({grid}), argmax accuracy moved by at most "
        f"{spans.argmax.max():.2g} in every model-task sweep, while sampled accuracy (the mean "
        f"probability of the right token) moved by {spans.sampled.min():.3f} to "
        f"{spans.sampled.max():.3f}. The temperature table below has every sweep.",
        None,
        ("temperature",),
    )


def _temperature_range_claim(results: Results) -> Claim:
    """Supported when every NLL-optimal token-level temperature lies in [0.7, 1.3]."""
    title = '"Try temperatures between 0.7 and 1.3"'
    fits = results.fitted_temperatures
    fitted = fits.dropna(subset=["temperature"]) if len(fits) else fits
    if not len(fitted):
        return _untestable(title, "no fitted token-level temperature in the results")
    inside = int(fitted.temperature.between(0.7, 1.3).sum())
    rows = [{"Model": r.model, "Task": r.task, "Fitted T": f"{r.temperature:.2f}"}
            for r in fitted.itertuples()]  # fmt: skip
    return Claim(
        title,
        f"fitted T from {fitted.temperature.min():.2f} to {fitted.temperature.max():.2f}",
        SUPPORTED if inside == len(fitted) else NOT_SUPPORTED,
        f"{inside} of {len(fitted)} fitted temperatures fall inside [0.7, 1.3]",
        f"The NLL-optimal token-level temperatures, fitted in one pass: {inside} of "
        f"{len(fitted)} fall inside the range.",
        _text_table(rows, ("Fitted T",)),
        ("temperature",),
    )


def _full_ece_claim(results: Results) -> Claim:
    """Supported when Full-ECE exceeds top-1 ECE at T = 1 in every sweep."""
    title = "Full-ECE sees what top-1 ECE misses"
    sweeps = results.sweeps
    at_one = sweeps[sweeps.temperature == 1.0] if len(sweeps) else sweeps
    if not len(at_one):
        return _untestable(title, "no token-level sweep at T = 1 in the results")
    more = int((at_one.full_ece > at_one.top1_ece).sum())
    rows = [{"Model": r.model, "Task": r.task, "Top-1 ECE": f"{r.top1_ece:.3f}",
             "Full-ECE": f"{r.full_ece:.3f}"} for r in at_one.itertuples()]  # fmt: skip
    ratio = at_one.full_ece / at_one.top1_ece
    return Claim(
        title,
        f"Full-ECE / top-1 ECE from {ratio.min():.1f} to {ratio.max():.1f} at T = 1",
        SUPPORTED if more == len(at_one) else NOT_SUPPORTED,
        f"Full-ECE exceeds top-1 ECE in {more} of {len(at_one)} sweeps",
        "Over whole next-token distributions at T = 1, the calibration error of every "
        "vocabulary entry (Full-ECE) against that of the top token only.",
        _text_table(rows, ("Top-1 ECE", "Full-ECE")),
    )


def _tuning_claim(results: Results) -> Claim:
    """Supported when, for every tuned model and task, the best variant (lowest test ECE with
    an interval below raw's) is a tuned one (tuned or tuned_temperature)."""
    title = "Calibration-tuning is the strongest fix"
    comp = results.comparisons
    part = comp[(comp.signal == TUNING_SIGNAL) & comp.metric.isin(["ece", "auroc"])] if len(
        comp) else comp  # fmt: skip
    if len(part) == 0:
        errors = results.tuning.dropna(subset=["error"]) if len(results.tuning) else results.tuning
        why = errors.error.iloc[0] if len(errors) else "no calibration-tuning in the results"
        return _untestable(title, why)
    rows, tuned_best, cases = [], 0, 0
    for (model, task), group in part.groupby(["model", "task"]):
        ece = group[group.metric == "ece"].set_index("method")
        auroc = group[group.metric == "auroc"].set_index("method")
        best = group.best.iloc[0]
        cases += 1
        tuned_best += best in ("tuned", "tuned_temperature")
        for m in ("raw", "zero_shot", "probe", "tuned", "tuned_temperature"):
            if m in ece.index:
                e, a = ece.loc[m], auroc.loc[m] if m in auroc.index else None
                rows.append({"Model": model, "Task": task, "Variant": m,
                             "ECE [95 % CI]": _ci(e.estimate, e.low, e.high),
                             "AUROC": "—" if a is None or pd.isna(a.estimate)
                             else f"{a.estimate:.2f}",
                             "Best": "yes" if m == best else ""})  # fmt: skip
    return Claim(
        title,
        f"a tuned variant is the best in {tuned_best} of {cases} tuned model-task pairs",
        SUPPORTED if tuned_best == cases else NOT_SUPPORTED,
        f"the best variant is a tuned one in {tuned_best} of {cases} cases (see AUROC: better "
        "calibration need not mean better discrimination)",
        "LoRA on the uncertainty query, trained on the calibration items only, against the raw "
        "confidence, zero-shot P(True) and a linear probe; test split.",
        _text_table(rows, ("ECE [95 % CI]", "AUROC")),
    )


def _best_method_claim(results: Results) -> Claim:
    """Supported when in more than half of all model x task x signal cases some method's test
    ECE interval lies below the raw confidence's."""
    title = "Post-hoc recalibration fixes it"
    best = results.best()
    if not len(best):
        return _untestable(title, "no comparison of methods in the results", ("risk",))
    counts = best.best.fillna("none significantly better").value_counts()
    fixed = int(best.best.notna().sum())
    rows = [{"Best method": name, "Cases": str(n)} for name, n in counts.items()]
    return Claim(
        title,
        ", ".join(f"{name} {n}" for name, n in counts.items()) + f" (of {len(best)} cases)",
        SUPPORTED if fixed * 2 > len(best) else NOT_SUPPORTED,
        f"a method is significantly better calibrated than the raw confidence in {fixed} of "
        f"{len(best)} cases",
        "Over every model, task and confidence signal, the method with the lowest test ECE "
        "whose interval lies below the raw confidence's.",
        _text_table(rows, ("Cases",)),
        ("risk",),
    )


def _kind_claim(results: Results, kinds: pd.Series) -> Claim:
    """Supported when, for every model with both, the mean raw test ECE on generation tasks
    (open-ended QA, code) exceeds that on multiple choice."""
    title = "Generation is calibrated worse than multiple choice"
    ece = _raw(results, "ece")
    if not (len(ece) and kinds.size):
        return _untestable(title, "no raw ECE in the results", ("ece_by_kind",))
    kind = ece.task.map(kinds)
    by = ece.assign(group=np.where(kind.eq("multiple_choice"), "mc",
                                   np.where(kind.isin(["qa", "code"]), "gen", "")))  # fmt: skip
    means = by[by.group != ""].groupby(["model", "group"]).estimate.mean().unstack()
    both = means.dropna() if {"mc", "gen"} <= set(means.columns) else means.iloc[0:0]
    rows = [{"Model": m, "Kind": KIND_NAMES.get(k, k), "Mean raw ECE": f"{v:.3f}"}
            for (m, k), v in ece.assign(kind=kind).groupby(["model", "kind"]).estimate.mean()
            .items()]  # fmt: skip
    if not len(both):
        return Claim(title, "—", UNTESTABLE, "no model ran both multiple choice and generation",
                     "Untested here: no model ran both kinds.", _text_table(rows),
                     ("ece_by_kind",))  # fmt: skip
    worse = int((both.gen > both.mc).sum())
    return Claim(
        title,
        "; ".join(f"{m}: {r.gen:.3f} against {r.mc:.3f}" for m, r in both.iterrows()),
        SUPPORTED if worse == len(both) else NOT_SUPPORTED,
        f"generation's mean raw ECE is higher for {worse} of {len(both)} models with both",
        "Mean raw test ECE (primary confidence) by model and task kind.",
        _text_table(rows, ("Mean raw ECE",)),
        ("ece_by_kind",),
    )


def _best_auroc(signals: pd.DataFrame) -> pd.DataFrame:
    """Per model and task, the `signal_comparison` row with the highest AUROC estimate (the
    first in the registry's order on a tie)."""
    ranked = signals.sort_values(["model", "task", "auroc"], ascending=[True, True, False],
                                 kind="stable")  # fmt: skip
    return ranked.drop_duplicates(["model", "task"])


def _signal_claim(results: Results) -> Claim:
    """Supported when, for every model and every pair of a multiple-choice and a generation
    task (open-ended QA, code) it ran, the raw test AUROC of the primary confidence on multiple
    choice has an interval entirely above that of the best token-level signal (`TOKEN_SIGNALS`,
    the highest AUROC estimate) on the generation task."""
    title = "Token probabilities rank answers on multiple choice, not on generation"
    figures = ("signals_by_kind",)
    table = signal_comparison(results)
    ranked = table.dropna(subset=["auroc"]) if len(table) else table
    if not len(ranked):
        return _untestable(title, "no confidence signal with a raw AUROC in the results", figures)
    mc = ranked[(ranked.kind == "multiple_choice") & (ranked.signal == PRIMARY)]
    generation = ranked[ranked.kind.isin(GENERATION_KINDS)]
    token = generation[generation.signal.isin(TOKEN_SIGNALS)]
    if not len(mc):
        return _untestable(title, "no multiple-choice task with a raw AUROC of the primary "
                           "confidence", figures)  # fmt: skip
    if not len(token):
        return _untestable(title, "no open-ended QA or code task with a raw AUROC of a "
                           "token-level signal", figures)  # fmt: skip
    best, best_any = _best_auroc(token), _best_auroc(generation)
    pairs = mc.merge(best, on="model", suffixes=("", "_gen"))
    if not len(pairs):
        return _untestable(title, "no model ran both multiple choice and generation", figures)
    pairs = pairs.sort_values(["model", "task", "task_gen"], ignore_index=True)
    anyone = best_any.set_index(["model", "task"])
    rows = []
    for r in pairs.itertuples():
        top = anyone.loc[(r.model, r.task_gen)]
        rows.append({"Model": r.model, "Multiple choice": r.task,
                     "AUROC of confidence [95 % CI]": _ci(r.auroc, r.auroc_low, r.auroc_high),
                     "Generation": r.task_gen, "Best token-level signal": r.signal_gen,
                     "Its AUROC [95 % CI]": _ci(r.auroc_gen, r.auroc_low_gen, r.auroc_high_gen),
                     "Best signal of any kind": f"{top.signal} ({top.auroc:.3f})",
                     "Multiple choice above": "yes" if r.auroc_low > r.auroc_high_gen
                     else "no"})  # fmt: skip
    above = int((pairs.auroc_low > pairs.auroc_high_gen).sum())
    chance = int(((best.auroc_low <= 0.5) & (best.auroc_high >= 0.5)).sum())
    return Claim(
        title,
        f"AUROC of confidence on multiple choice {mc.auroc.min():.2f} to {mc.auroc.max():.2f}; "
        f"of the best token-level signal on generation {best.auroc.min():.2f} to "
        f"{best.auroc.max():.2f}",
        SUPPORTED if above == len(pairs) else NOT_SUPPORTED,
        f"the multiple-choice interval lies above the generation one in {above} of "
        f"{len(pairs)} model-task pairs",
        "Raw test AUROC (0.5 = chance) of the primary confidence on multiple choice against "
        "that of the best signal read off the answer's own token probabilities "
        f"({', '.join(TOKEN_SIGNALS)}) on open-ended QA and code, per model. The best "
        "token-level signal is indistinguishable from chance (its interval holds 0.5) in "
        f"{chance} of {len(best)} generation model-task pairs; the best signal of any kind "
        "there (sampled answers and follow-up questions included) reaches AUROC "
        f"{best_any.auroc.min():.2f} to {best_any.auroc.max():.2f}. Every signal's numbers are "
        'under "Confidence signals by task kind".',
        _text_table(rows, ("AUROC of confidence [95 % CI]", "Its AUROC [95 % CI]")),
        figures,
    )


def _signals_note(results: Results) -> str:
    """What the signals table shows, naming the score signals of these results and the
    monotone map each enters Platt scaling through."""
    present = set(results.comparisons.get("signal", []))
    scores = [f"{s.name} as {s.feature_text}" for s in SIGNALS
              if not s.probability and s.name in present]  # fmt: skip
    note = (
        "Every confidence signal by task kind, on the test split: its raw ECE, the ECE after "
        "Platt scaling fitted on the calibration half (the same fitted map for every signal, "
        "so the calibration each signal can reach is comparable), and how well it ranks right "
        "answers above wrong ones: AUROC (0.5 = chance) and the prediction-rejection ratio "
        "PRR (0 = a random order, 1 = the oracle's)."
    )
    if scores:
        note += (" Scores that are not probabilities have no raw ECE; Platt scaling takes them "
                 "through a fixed monotone map: " + ", ".join(scores) + ".")  # fmt: skip
    return note


def claims_table(found: list[Claim]) -> Table:
    """The claims up front: claim, measured, verdict, why."""
    rows = [{"Claim (seed article)": c.title, "Measured here": c.measured,
             "Verdict": c.verdict, "Why": c.why} for c in found]  # fmt: skip
    return Table(pd.DataFrame(rows), wrap=("Measured here", "Why"))


def _number(column: str, value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if column == "n_parameters":
        return f"{float(value) / 1e6:.1f}"
    if column == "parameters_M":
        return f"{float(value):.1f}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    text = str(value)
    return KIND_NAMES.get(text, text) if column == "kind" else text


def present(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> Table:
    """A results frame (or a table's CSV) as shown: estimate/low/high folded into
    'estimate [low, high]', numbers with three decimals, NaN as '—', human headers."""
    columns = list(columns or [c for c in frame.columns if not c.endswith(("_low", "_high"))])
    out, numeric = {}, []
    for column in columns:
        values = frame[column]
        header = HEADERS.get(column, column.replace("_", " "))
        if f"{column}_low" in frame.columns:
            out[header] = [
                "—" if pd.isna(e) else _ci(e, lo, hi)
                for e, lo, hi in zip(values, frame[f"{column}_low"], frame[f"{column}_high"],
                                     strict=True)
            ]  # fmt: skip
        else:
            out[header] = [_number(column, v) for v in values]
        if pd.api.types.is_numeric_dtype(values):
            numeric.append(header)
    return Table(pd.DataFrame(out), tuple(numeric), wrap=(HEADERS["error"],))


def _csv_table(tables: Path, name: str) -> Table | str:
    path = tables / f"{name}.csv"
    if not path.exists():
        return f"*(no {name} table in these results)*"
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a table with no columns (e.g. no method beyond raw)
        frame = pd.DataFrame()
    if frame.empty:
        return f"*(the {name} table is empty)*"
    return present(frame)


def _figures(figures: Path, prefixes: Sequence[str]) -> Figures | None:
    found = tuple(p for p in sorted(figures.glob("*.png")) if p.stem.startswith(tuple(prefixes)))
    return Figures(found) if found else None


def _caption(path: Path) -> str:
    caption = next((c for k, c in FIGURE_CAPTIONS.items() if path.stem.startswith(k)), "")
    case = path.stem.split("__")[1:]
    return f"{caption}: {' / '.join(case)}." if case else f"{caption}."


def baseline_section(comparison: RunComparison) -> list[Block]:
    """ "Change since the baseline": the primary confidence's changes with intervals, the
    alerts and the configuration differences of a run comparison."""
    s = comparison.settings
    wide = comparison.wide(PRIMARY)
    alerts = comparison.alerts
    blocks: list[Block] = [
        "## Change since the baseline",
        f"This run against the baseline `{comparison.baseline}`: the change (this run minus "
        "the baseline) on every graded item, primary confidence, with "
        f"{s['level']:.0%} bootstrap intervals ({s['n_resamples']} resamples), paired by item "
        "id where both runs graded the same items. * marks a change whose interval excludes "
        "zero; ALERT one that is also worse than its threshold ("
        + (", ".join(f"{k} {v:g}" for k, v in (s.get("thresholds") or {}).items()) or "none set")
        + ").",
    ]
    if len(wide):
        blocks.append(Table(wide.rename(columns={
            "model": "Model", "task": "Task", "signal": "Confidence signal",
            "items": "Items (pairing, n)", "ece": "ECE change [95 % CI]",
            "brier": "Brier change [95 % CI]", "accuracy": "Accuracy change [95 % CI]",
            "auroc": "AUROC change [95 % CI]"})))  # fmt: skip
    blocks.append(
        f"Alerts: {len(alerts)}"
        + (": " + "; ".join(f"{r.model} / {r.task} / {r.signal} {r.metric} {r.change:+.3f}"
                            for r in alerts.itertuples()) if len(alerts) else "")
        + ". Configuration differences: "
        + ("; ".join(f"`{d}`" for d in comparison.differences[:12]) or "none")
        + ("; ..." if len(comparison.differences) > 12 else "")
        + "."
    )  # fmt: skip
    return blocks


def blocks(
    results: Results,
    tables: Path,
    figures: Path,
    baseline_comparison: RunComparison | None = None,
) -> list[Block]:
    """The document as a sequence of Markdown paragraphs (headings included), tables and
    figure groups."""
    manifest = results.manifest
    found = claims(results)
    used: set[Path] = set()
    out: list[Block] = [
        "# Calibration of small language models' token probabilities",
        "Generated by calibbench from the results of one workflow run "
        f"(code {str(manifest['code'].get('commit'))[:12]}"
        f"{' with local changes' if manifest['code'].get('dirty') else ''}, "
        f"configuration {manifest['config_sha256'][:12]}, seed {manifest['seed']}). Every number "
        "below is computed from those results; intervals are 95 % bootstrap intervals over the "
        "test split's items.",
        "## Claims at a glance",
        claims_table(found),
    ]
    if baseline_comparison is not None:
        out += baseline_section(baseline_comparison)
    out += ["## Headline", _csv_table(tables, "headline")]
    size = _figures(figures, ("ece_vs_size",))
    if size:
        out.append(size)
        used |= set(size.paths)
    out.append("## What the benchmark found")
    for claim in found:
        out += [f"### {claim.title}", f"**{claim.verdict.capitalize()}.** {claim.text}"]
        if claim.details is not None and len(claim.details.frame):
            out.append(claim.details)
        shown = _figures(figures, claim.figures)
        if shown:
            out.append(shown)
            used |= set(shown.paths)
    out += ["## Setup", "Models (parameters in millions; vocabulary in tokens, — where the "
            "runtime does not report it):"]  # fmt: skip
    columns = ["model", "runtime", "family", "n_parameters", "vocab_size", "quantization",
               "logprob_source"]  # fmt: skip
    out.append(present(results.models, columns) if len(results.models) else "*(no models)*")
    out.append("Tasks (test metrics on the seeded test half of each task's items):")
    columns = ["task", "kind", "dataset", "split", "licence", "n_items"]
    out.append(present(results.tasks, columns) if len(results.tasks) else "*(no tasks)*")
    out += ["## Recalibration methods", _csv_table(tables, "methods_summary"),
            "## Temperature", _csv_table(tables, "temperature"),
            "## Calibration-tuning", _csv_table(tables, "calibration_tuning"),
            "## Confidence signals by task kind", _signals_note(results),
            _csv_table(tables, "signals")]  # fmt: skip
    if (tables / "signal_availability.csv").exists():
        out += ["Which signals each model had on each task, and why it lacked the others: a "
                "model that cannot score given text has no P(True) (no prompt scoring), an API "
                "model that returns no token log-probs has none of the signals computed from "
                "them, the primary confidence included (no token log-probs; such a pair has no "
                "row in the headline, which reports the primary confidence), and an optional "
                "signal needs its task option (option off):",
                _csv_table(tables, "signal_availability")]  # fmt: skip
    if (tables / "verbalized.csv").exists():
        out += ["Verbalized confidence: how each model's replies parsed, one-stage (a guess and "
                "its probability) and two-stage (a probability for its graded answer, asked after "
                "it). A reply without a readable probability has no verbalized confidence and is "
                "counted here, not dropped:", _csv_table(tables, "verbalized")]  # fmt: skip
    rest = _figures(figures, ("",))
    if rest and set(rest.paths) - used:
        out += ["## Other figures", Figures(tuple(p for p in rest.paths if p not in used))]
    versions = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items() if v)
    per_task = ", ".join(f"[`{p.name}`](tables/{p.name})"
                         for p in sorted(tables.glob("methods_*.csv")))  # fmt: skip
    out += ["## Reproducibility",
            f"Python {manifest['python']}; {versions}. Per-task tables: {per_task}."]  # fmt: skip
    return out


def _link(path: Path, relative_to: Path) -> str:
    """`path` as a link from a document in the folder `relative_to` (`../` where it lies
    outside that folder)."""
    return Path(os.path.relpath(path.resolve(), relative_to.resolve())).as_posix()


def _markdown_block(block: Block, relative_to: Path) -> str:
    if isinstance(block, Table):
        return block.frame.to_markdown(index=False, disable_numparse=True) + "\n"
    if isinstance(block, Figures):
        return "\n".join(
            f"![{_caption(p)}]({_link(p, relative_to)})\n\n*{_caption(p)}*\n" for p in block.paths
        )
    return block + "\n"


def markdown(
    results: Results,
    tables: Path,
    figures: Path,
    relative_to: Path,
    baseline_comparison: RunComparison | None = None,
) -> str:
    """The paper as Markdown, linking figures relative to the folder `relative_to`."""
    return render_markdown(blocks(results, tables, figures, baseline_comparison), relative_to)


def render_markdown(parts: Sequence[Block], relative_to: Path) -> str:
    """The blocks of `blocks` as Markdown, linking figures relative to the folder `relative_to`."""
    return "\n".join(_markdown_block(b, relative_to) for b in parts)


def _cell_class(column: str, text: str, table: Table) -> str:
    if column == "Verdict":
        return text.replace(" ", "-")
    if column in table.numeric:
        return "num"
    return "wrap" if column in table.wrap else ""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.frame.columns)
    rows = []
    for values in table.frame.itertuples(index=False):
        cells = []
        for column, value in zip(table.frame.columns, values, strict=True):
            css = _cell_class(column, str(value), table)
            attr = f' class="{css}"' if css else ""
            cells.append(f"<td{attr}>{escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="table-box"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>")  # fmt: skip


def _html_block(block: Block, relative_to: Path, render: Callable[[str], str]) -> str:
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figures):
        items = (
            f'<figure><img src="{escape(_link(p, relative_to))}" '
            f'alt="{escape(_caption(p))}"><figcaption>{escape(_caption(p))}'
            "</figcaption></figure>"
            for p in block.paths
        )
        return '<div class="figures">' + "\n".join(items) + "</div>"
    return render(block)


def html(
    results: Results,
    tables: Path,
    figures: Path,
    relative_to: Path,
    baseline_comparison: RunComparison | None = None,
) -> str:
    """The paper as a self-contained HTML page (its figures linked relative to
    `relative_to`), with the module's stylesheet."""
    return render_html(blocks(results, tables, figures, baseline_comparison), relative_to)


def render_html(parts: Sequence[Block], relative_to: Path) -> str:
    """The blocks of `blocks` as the HTML page of `html`."""
    import markdown as md

    body = "\n".join(_html_block(b, relative_to, md.markdown) for b in parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>calibbench: calibration of language models</title><style>{STYLE}</style>"
        f"</head><body>\n{body}\n</body></html>\n"
    )


def write_document(
    results: Results,
    tables: Path,
    figures: Path,
    out: Path,
    html_out: Path | None = None,
    baseline_comparison: RunComparison | None = None,
) -> None:
    """Write the Markdown document to `out` and, if asked, the HTML page to `html_out`; with a
    run comparison, both gain the "Change since the baseline" section."""
    parts = blocks(results, tables, figures, baseline_comparison)  # built once for both pages
    text = render_markdown(parts, out.parent)
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    if html_out is not None:
        page = render_html(parts, html_out.parent)
        atomic_write(html_out, lambda tmp: Path(tmp).write_text(page))
