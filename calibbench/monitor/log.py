"""A production log in one streaming pass: windows of calibration metrics per segment, drift
alarms against a reference window, and the refit what-if on the latest window.

`scan_log` reads the file once (`calibbench.monitor.reader`) into `DailyCells` (binned sums per
day and segment) and a `LatestSample` (the latest window's rows for the refit); memory is
O(segments x days x bins + the sample), whatever the file's size. `log_report` turns the scan
into the report: per window and segment, n, accuracy, mean confidence, over-confidence, Brier and
ECE with intervals (`windows.window_metrics`), and the drift test against the reference window
(`drift.calibration_shift`, Bonferroni over every window and segment tested, so the report's
false-alarm probability is at most alpha).

Reference: the first window (default), or a range of days `START:END` (YYYY-MM-DD, inclusive).
Windows that share a day with the reference are not tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibbench.artifacts import write_json
from calibbench.errors import InputError
from calibbench.monitor.drift import MIN_COUNT, alarms, calibration_shift
from calibbench.monitor.output import json_records, write_csv, write_text
from calibbench.monitor.reader import LogColumns, read_log
from calibbench.monitor.refit import MAX_ROWS, MIN_ROWS, LatestSample, refit_whatif
from calibbench.monitor.windows import (
    DailyCells,
    Window,
    WindowSpec,
    cells_reliability,
    day_text,
    window_metrics,
)

#: Metrics of a window, in report order.
WINDOW_METRICS = ("accuracy", "mean_confidence", "overconfidence", "brier", "ece")


@dataclass(frozen=True)
class LogSettings:
    """window, step: `WindowSpec.parse`'s arguments; reference: "first" or "START:END";
    n_bins: ECE and drift bins; alpha: the report's false-alarm rate; min_count: fewest
    predictions per bin in both windows for the drift test; n_resamples, level, seed: intervals;
    refit_rows: rows of the latest window sampled for the refit."""

    window: str = "30D"
    step: str | None = None
    reference: str = "first"
    n_bins: int = 15
    alpha: float = 0.05
    min_count: int = MIN_COUNT
    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0
    refit_rows: int = MAX_ROWS

    @property
    def spec(self) -> WindowSpec:
        """The parsed windows."""
        return WindowSpec.parse(self.window, self.step)


@dataclass
class LogScan:
    """What one pass over a log keeps: the file, its columns, the cells, the latest window's
    sample, the row count."""

    path: Path
    columns: LogColumns
    cells: DailyCells
    sample: LatestSample
    n_rows: int


def scan_log(path: Path, columns: LogColumns, settings: LogSettings) -> LogScan:
    """Read the log once into its cells and the latest window's sample. Raises InputError for
    bad rows (see `calibbench.monitor.reader`) or settings."""
    spec = settings.spec
    cells = DailyCells(settings.n_bins, columns.segments)
    sample = LatestSample(spec.latest_start, settings.refit_rows, settings.seed)
    n_rows = 0
    for chunk in read_log(path, columns):
        day = chunk.day
        cells.update(day, chunk.confidence, chunk.correct, chunk.segments)
        rows = np.arange(chunk.first_row, chunk.first_row + len(day))
        sample.update(day, rows, chunk.confidence, chunk.correct)
        n_rows += len(day)
    return LogScan(Path(path), columns, cells, sample, n_rows)


def _day(text: str, what: str) -> int:
    try:
        return int(np.datetime64(text, "D").astype(np.int64))
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def reference_window(reference: str, windows: list[Window]) -> Window:
    """The reference: "first" (the first window) or "START:END" (inclusive dates)."""
    if reference == "first":
        return windows[0]
    start, sep, end = reference.partition(":")
    if not sep:
        raise InputError(f"--reference: expected 'first' or START:END dates, got {reference!r}")
    window = Window(_day(start, "--reference"), _day(end, "--reference"))
    if window.end < window.start:
        raise InputError(f"--reference: {reference} ends before it starts")
    return window


@dataclass(frozen=True)
class LogReport:
    """windows: one row per window and segment (window, start, end, segment column and value,
    n, each metric's estimate/low/high, the drift test's statistic, df, p_value, whether it was
    tested and whether it fired). reference: its label and n. refit: the what-if on the latest
    window, or {"error": why not}. reliability: the latest window's bins (all predictions;
    `windows.cells_reliability`). settings, file, n_rows."""

    file: str
    n_rows: int
    settings: dict[str, Any]
    reference: dict[str, Any]
    windows: pd.DataFrame
    refit: dict[str, Any]
    reliability: pd.DataFrame

    @property
    def latest_alarms(self) -> pd.DataFrame:
        """The rows of the latest window whose drift test fired."""
        latest = self.windows["end"] == self.windows["end"].max()
        return self.windows[latest & self.windows["alarm"]]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        return {
            "file": self.file,
            "n_rows": self.n_rows,
            "settings": self.settings,
            "reference": self.reference,
            "refit": self.refit,
            "windows": json_records(self.windows),
            "reliability": json_records(self.reliability),
        }

    def markdown(self) -> str:
        """The report as Markdown."""
        s = self.settings
        shown = self.windows.assign(
            **{m: [_interval(r, m) for _, r in self.windows.iterrows()] for m in WINDOW_METRICS}
        )
        shown["drift p"] = [_p_text(r) for _, r in self.windows.iterrows()]
        columns = ["window", "segment", "value", "n", *WINDOW_METRICS, "drift p"]
        lines = [
            f"# Calibration of {self.file}",
            "",
            f"{self.n_rows} predictions; windows: {s['window']}; reference: "
            f"{self.reference['label']} ({self.reference['n']} predictions). Intervals at "
            f"{s['level']:.0%} (accuracy Wilson; mean confidence, over-confidence, Brier normal; "
            f"ECE bootstrap of the binned sums, {s['n_bins']} bins). Drift: per-bin calibration "
            f"gap against the reference; ALARM when p < alpha / m with alpha = {s['alpha']} and "
            f"m = {s['n_tests']} tests (false-alarm probability of this report at most alpha).",
            "",
            shown[columns].to_markdown(index=False),
            "",
            "## Alarms",
            "",
        ]
        fired = self.windows[self.windows["alarm"]]
        lines += [
            f"- {r.window} {_segment_text(r)}: p = {r.p_value:.2g}" for r in fired.itertuples()
        ] or ["- none"]
        lines += ["", "## Refitting on the latest window", "", _refit_text(self.refit)]
        return "\n".join(lines) + "\n"


def _segment_text(r: Any) -> str:
    return "(all)" if r.segment == "" else f"({r.segment} = {r.value})"


def _interval(r: pd.Series, metric: str) -> str:
    return f"{r[metric]:.3f} [{r[f'{metric}_low']:.3f}, {r[f'{metric}_high']:.3f}]"


def _p_text(r: pd.Series) -> str:
    if not r["tested"]:
        return "reference" if r["is_reference"] else "—"
    return f"{r['p_value']:.2g}" + (" ALARM" if r["alarm"] else "")


def _refit_text(refit: dict[str, Any]) -> str:
    if "error" in refit:
        return f"Not done: {refit['error']}."
    lines = [
        f"Window {refit['window']}: fitted on the earlier {refit['n_fit']} predictions, scored "
        f"on the later {refit['n_score']} (T = {refit['temperature']:.3f}; Platt a = "
        f"{refit['platt']['a']:.3f}, b = {refit['platt']['b']:.3f}).",
        "",
        "| method | metric | value | change against raw [interval] |",
        "|---|---|---|---|",
    ]
    for r in refit["rows"]:
        lines.append(
            f"| {r['method']} | {r['metric']} | {r['value']:.3f} | {r['change']:+.3f} "
            f"[{r['low']:+.3f}, {r['high']:+.3f}] |"
        )
    return "\n".join(lines)


def log_report(scan: LogScan, settings: LogSettings) -> LogReport:
    """The report of a scanned log (see the module docstring)."""
    days = scan.cells.days
    if days is None:
        raise InputError(f"{scan.path}: the log holds no predictions")
    spec = settings.spec
    windows = spec.windows(*days)
    reference = reference_window(settings.reference, windows)
    reference_n = scan.cells.cells(0, reference).n
    if reference_n == 0:
        raise InputError(f"--reference: no predictions in {reference.label}")
    cells = scan.cells.compute(windows)
    rows = []
    for s, (column, value) in enumerate(scan.cells.labels):
        ref = scan.cells.cells(s, reference)
        for w, window in enumerate(windows):
            part = cells[s][w]
            if part.n == 0:
                continue
            overlaps = window.start <= reference.end and reference.start <= window.end
            shift = calibration_shift(ref, part, settings.min_count) if not overlaps else None
            row = {
                "window": window.label,
                "start": day_text(window.start),
                "end": day_text(window.end),
                "segment": column,
                "value": value,
                "n": part.n,
                "is_reference": window == reference,
                "statistic": shift.statistic if shift else np.nan,
                "df": shift.df if shift else 0,
                "p_value": shift.p_value if shift else np.nan,
            }
            metrics = window_metrics(part, settings.level, settings.n_resamples, settings.seed)
            for name in WINDOW_METRICS:
                m = metrics[name]
                row |= {name: m["estimate"], f"{name}_low": m["low"], f"{name}_high": m["high"]}
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame["tested"] = frame["p_value"].notna()
    frame["alarm"] = alarms(frame["p_value"].to_numpy(), settings.alpha)
    return LogReport(
        file=str(scan.path),
        n_rows=scan.n_rows,
        settings={
            "window": spec.text,
            "n_bins": settings.n_bins,
            "alpha": settings.alpha,
            "min_count": settings.min_count,
            "n_resamples": settings.n_resamples,
            "level": settings.level,
            "seed": settings.seed,
            "n_tests": int(frame["tested"].sum()),
            "segments": list(scan.columns.segments),
        },
        reference={"label": reference.label, "n": reference_n},
        windows=frame,
        refit=_refit(scan, windows[-1], settings),
        reliability=cells_reliability(cells[0][-1], settings.level),
    )


def _refit(scan: LogScan, latest: Window, settings: LogSettings) -> dict[str, Any]:
    _, confidence, correct = scan.sample.compute()
    if len(confidence) < MIN_ROWS:
        return {
            "window": latest.label,
            "error": f"the latest window holds {len(confidence)} predictions; {MIN_ROWS} "
            "are needed",
        }
    out = refit_whatif(
        confidence, correct, settings.n_bins, settings.n_resamples, settings.level, settings.seed
    )
    return {"window": latest.label} | out


def write_log_report(report: LogReport, out: Path) -> list[Path]:
    """Write report.json, report.md and windows.csv into the folder `out`; returns the paths."""
    paths = [out / "report.json", out / "report.md", out / "windows.csv"]
    write_json(report.to_json(), paths[0])
    write_text(report.markdown(), paths[1])
    write_csv(report.windows, paths[2])
    return paths
