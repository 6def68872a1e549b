"""Static HTML pages of the monitor: a configuration's dashboard over its dated runs, and the
report of a production log. One self-contained file each (inline SVG charts and CSS, no
JavaScript, nothing fetched when viewed), so a page can be opened from disk, attached or served
as a file.

Dashboard (`dashboard_data`, then `dashboard_html`): for each model x task, the primary
confidence signal's ECE, Brier, accuracy and AUROC in every dated run with 95 % (or `level`)
bootstrap intervals (`history.history_metrics`), the alert threshold as a dashed line at the
baseline's value plus the threshold in the harmful direction, runs that raised an alert ringed;
the latest run's reliability diagram; and the alerts: every run compared with the baseline
(`compare.compare_runs`; the baseline is the first run, another dated run, or any run folder),
the latest run's first.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibbench.errors import InputError
from calibbench.metrics.binned import reliability
from calibbench.monitor.change import WORSE
from calibbench.monitor.charts import COLOURS, reliability_chart, series_chart
from calibbench.monitor.compare import RunComparison, compare_runs, run_settings
from calibbench.monitor.history import history_entries, history_metrics
from calibbench.monitor.log import WINDOW_METRICS, LogReport
from calibbench.monitor.output import write_text
from calibbench.paper.results import Results

PRIMARY = "confidence"
LABELS = {
    "ece": "ECE",
    "brier": "Brier score",
    "accuracy": "accuracy",
    "auroc": "AUROC",
    "mean_confidence": "mean confidence",
    "overconfidence": "over-confidence",
}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0 auto;
max-width:72rem;padding:1rem 1.5rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
.note{color:#555;font-size:.9rem}.charts{display:flex;flex-wrap:wrap;gap:.5rem}
.charts svg{border:1px solid #eee}.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.alert{color:#b00020;font-weight:bold}.ok{color:#2e7d32;font-weight:bold}
"""


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard shows. dates: the dated runs, oldest first; baseline: the date or
    folder compared against; metrics: `history_metrics`; comparisons: per date (the baseline's
    own excluded) its comparison with the baseline; reliability: per (model, task) the latest
    run's bins of the primary signal; settings: n_bins, n_resamples, level, seed, thresholds."""

    title: str
    dates: list[str]
    baseline: str
    metrics: pd.DataFrame
    comparisons: dict[str, RunComparison]
    reliability: dict[tuple[str, str], pd.DataFrame]
    settings: dict[str, Any]


def _baseline(baseline: str, entries: list[tuple[str, Path]]) -> tuple[str, Path]:
    dates = dict(entries)
    if baseline == "first":
        return entries[0]
    if baseline in dates:
        return baseline, dates[baseline]
    path = Path(baseline)
    if not path.exists():
        raise InputError(
            f"--baseline: {baseline!r} is neither 'first', a dated run of the history "
            f"({', '.join(dates)}) nor a run folder"
        )
    return str(path), path


def dashboard_data(
    history: Path,
    baseline: str = "first",
    thresholds: dict[str, float] | None = None,
    title: str | None = None,
    n_bins: int | None = None,
    n_resamples: int | None = None,
    level: float | None = None,
    seed: int | None = None,
) -> Dashboard:
    """Everything the dashboard of the runs recorded in `history` shows (see the module
    docstring). Settings left None come from the latest run's configuration, as in
    `compare_runs`. Raises InputError for an empty or malformed history or a bad baseline."""
    entries = history_entries(history)
    base_label, base_path = _baseline(baseline, entries)
    comparisons = {
        date: compare_runs(base_path, root, n_bins, n_resamples, level, seed, thresholds)
        for date, root in entries
        if date != base_label
    }
    config = Results(entries[-1][1]).config
    settings = (
        next(iter(comparisons.values())).settings
        if comparisons
        else run_settings(config, n_bins, n_resamples, level, seed)
        | {"thresholds": thresholds or {}}
    )
    metrics = history_metrics(
        entries, settings["n_bins"], settings["n_resamples"], settings["level"], settings["seed"]
    )
    latest = entries[-1][1]
    bins = {}
    for path in sorted(latest.glob("graded/*/*.parquet")):
        graded = pd.read_parquet(path)
        if PRIMARY not in graded.columns:
            continue
        c = graded[PRIMARY].to_numpy(np.float64)
        keep = np.isfinite(c)
        if keep.any():
            bins[(path.parent.name, path.stem)] = reliability(
                c[keep],
                graded["correct"].to_numpy(bool)[keep],
                settings["n_bins"],
                level=settings["level"],
            ).to_frame()
    return Dashboard(
        title=title or f"Calibration monitor: {config.get('name') or history.parent.name}",
        dates=[d for d, _ in entries],
        baseline=base_label,
        metrics=metrics,
        comparisons=comparisons,
        reliability=bins,
        settings=settings,
    )


def _days(labels: list[str]) -> list[float]:
    return [float(np.datetime64(label[:10], "D").astype(np.int64)) for label in labels]


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for v in values:
            text = str(v)
            css = ' class="alert"' if text.endswith("ALERT") or text.endswith("ALARM") else ""
            cells.append(f"<td{css}>{escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _baseline_value(d: Dashboard, model: str, task: str, metric: str) -> float | None:
    m = d.metrics
    if d.baseline in d.dates:
        row = m[
            (m.date == d.baseline)
            & (m.model == model)
            & (m.task == task)
            & (m.signal == PRIMARY)
            & (m.metric == metric)
        ]
        value = row.estimate.iloc[0] if len(row) else None
        return None if value is None or pd.isna(value) else float(value)
    for comparison in d.comparisons.values():
        r = comparison.rows
        row = r[
            (r.model == model) & (r.task == task) & (r.signal == PRIMARY) & (r.metric == metric)
        ]
        if len(row) and row.baseline.iloc[0] is not None and pd.notna(row.baseline.iloc[0]):
            return float(row.baseline.iloc[0])
    return None


def _flags(d: Dashboard, model: str, task: str, metric: str) -> list[bool]:
    out = []
    for date in d.dates:
        comparison = d.comparisons.get(date)
        if comparison is None:
            out.append(False)
            continue
        a = comparison.alerts
        out.append(
            bool(
                (
                    (a.model == model)
                    & (a.task == task)
                    & (a.signal == PRIMARY)
                    & (a.metric == metric)
                ).any()
            )
        )
    return out


def _pair_section(d: Dashboard, model: str, task: str) -> list[str]:
    m = d.metrics[
        (d.metrics.model == model) & (d.metrics.task == task) & (d.metrics.signal == PRIMARY)
    ]
    thresholds = d.settings.get("thresholds") or {}
    charts = []
    x = _days(d.dates)
    for metric in WORSE:
        part = m[m.metric == metric].set_index("date").reindex(d.dates)
        threshold = thresholds.get(metric)
        base = _baseline_value(d, model, task, metric)
        line = base + WORSE[metric] * threshold if threshold and base is not None else None
        values = [
            [None if pd.isna(v) else float(v) for v in part[k]] for k in ("estimate", "low", "high")
        ]
        charts.append(
            series_chart(
                x,
                d.dates,
                *values,
                title=LABELS[metric],
                colour=COLOURS[metric],
                threshold=line,
                flagged=_flags(d, model, task, metric),
            )
        )
    bins = d.reliability.get((model, task))
    if bins is not None:
        charts.append(
            reliability_chart(
                *(
                    bins[k]
                    for k in ("bin_low", "bin_high", "accuracy", "ci_low", "ci_high", "count")
                ),
                title=f"Reliability, {d.dates[-1]}",
            )
        )
    n = m[m.date == d.dates[-1]].n
    items = f"{int(n.iloc[0])} items in the latest run" if len(n) else "not in the latest run"
    return [
        f"<h2>{escape(model)} / {escape(task)}</h2>",
        f'<p class="note">Primary confidence; {items}.</p>',
        '<div class="charts">' + "\n".join(charts) + "</div>",
    ]


def dashboard_html(d: Dashboard) -> str:
    """The dashboard page (see the module docstring)."""
    s = d.settings
    thresholds = s.get("thresholds") or {}
    latest = d.comparisons.get(d.dates[-1])
    body = [
        f"<h1>{escape(d.title)}</h1>",
        f'<p class="note">{len(d.dates)} dated run(s), {d.dates[0]} to {d.dates[-1]}; baseline '
        f"{escape(d.baseline)}. Points: each run's value on all its graded items; bands: "
        f"{s['level']:.0%} bootstrap intervals ({s['n_resamples']} resamples); dashed red "
        "line: the baseline's value plus the alert threshold in the harmful direction; red "
        "ring: a run whose change from the baseline crossed the threshold with an interval "
        f"excluding zero. ECE with {s['n_bins']} equal-width bins. Thresholds: "
        + (", ".join(f"{LABELS[k]} {v:g}" for k, v in thresholds.items()) or "none set")
        + ".</p>",
        "<h2>Alerts</h2>",
    ]
    if latest is None:
        body.append('<p class="note">The latest run is the baseline: nothing to compare.</p>')
    elif latest.alerts.empty:
        body.append(f'<p class="ok">No threshold crossed by the latest run ({d.dates[-1]}).</p>')
    else:
        body.append(
            f'<p class="alert">{len(latest.alerts)} threshold(s) crossed by the latest '
            f"run ({d.dates[-1]}):</p>"
        )
        body.append(_table(_alerts_frame({d.dates[-1]: latest})))
    earlier = {k: v for k, v in d.comparisons.items() if k != d.dates[-1] and len(v.alerts)}
    if earlier:
        body += ["<h3>Earlier alerts</h3>", _table(_alerts_frame(earlier))]
    pairs = sorted({(r.model, r.task) for r in d.metrics.itertuples()})
    for model, task in pairs:
        body += _pair_section(d, model, task)
    if latest is not None:
        body += [
            "<h2>Every signal: the latest run against the baseline</h2>",
            _table(latest.wide()),
        ]
    return _page(d.title, body)


def _alerts_frame(comparisons: dict[str, RunComparison]) -> pd.DataFrame:
    rows = []
    for date, comparison in comparisons.items():
        for r in comparison.alerts.itertuples():
            rows.append(
                {
                    "run": date,
                    "model": r.model,
                    "task": r.task,
                    "signal": r.signal,
                    "metric": LABELS[r.metric],
                    "baseline -> run": f"{r.baseline:.3f} -> {r.new:.3f}",
                    "change [interval]": f"{r.change:+.3f} [{r.low:+.3f}, {r.high:+.3f}]",
                    "threshold": f"{r.threshold:g}",
                }
            )
    return pd.DataFrame(rows)


def write_page(html: str, out: Path) -> Path:
    """Write a page atomically; returns `out`."""
    return write_text(html, out)


def log_html(report: LogReport) -> str:
    """The page of a production log's report: per segment, every window metric over time
    with its interval (alarms ringed), the latest window's reliability diagram, the alarms
    and the refit what-if."""
    w = report.windows
    title = f"Calibration of {Path(report.file).name}"
    s = report.settings
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">{report.n_rows} predictions; windows {escape(s["window"])}; '
        f"reference {report.reference['label']}; drift alarms at a false-alarm rate of "
        f"{s['alpha']} over the report's {s['n_tests']} tests (Bonferroni). Bands: "
        f"{s['level']:.0%} intervals.</p>",
        "<h2>Alarms</h2>",
    ]
    fired = w[w["alarm"]]
    if fired.empty:
        body.append('<p class="ok">No drift detected.</p>')
    else:
        shown = fired.assign(
            segment=[_segment(r) for r in fired.itertuples()],
            p_value=[f"{p:.2g}" for p in fired["p_value"]],
        )
        body.append(_table(shown[["window", "segment", "n", "p_value"]]))
    for (column, value), part in w.groupby(["segment", "value"], sort=False):
        ends = list(part["end"])
        x = _days(ends)
        charts = []
        for metric in WINDOW_METRICS:
            values = [list(part[k]) for k in (metric, f"{metric}_low", f"{metric}_high")]
            charts.append(
                series_chart(
                    x,
                    ends,
                    *values,
                    title=LABELS[metric],
                    colour=COLOURS[metric],
                    flagged=list(part["alarm"]),
                )
            )
        if column == "":
            r = report.reliability
            charts.append(
                reliability_chart(
                    r.bin_low,
                    r.bin_high,
                    r.accuracy,
                    r.ci_low,
                    r.ci_high,
                    r["count"],
                    title="Reliability, latest window",
                )
            )
        name = "All predictions" if column == "" else f"{column} = {value}"
        body += [
            f"<h2>{escape(name)}</h2>",
            '<p class="note">x: the last day of each window.</p>',
            '<div class="charts">' + "\n".join(charts) + "</div>",
        ]
    body.append("<h2>Refitting on the latest window</h2>")
    refit = report.refit
    if "error" in refit:
        body.append(f"<p>Not done: {escape(refit['error'])}.</p>")
    else:
        body.append(
            f'<p class="note">Window {refit["window"]}: fitted on the earlier '
            f"{refit['n_fit']} predictions, scored on the later {refit['n_score']}; "
            f"T = {refit['temperature']:.3f}.</p>"
        )
        body.append(_table(pd.DataFrame(refit["rows"]).round(4)))
    return _page(title, body)


def _segment(r: Any) -> str:
    return "all" if r.segment == "" else f"{r.segment} = {r.value}"
