"""The dated history of one configuration's runs, which the dashboard reads.

Layout, in the run directory (DATE is YYYY-MM-DD or YYYY-MM-DDTHHMMSS, UTC, so that names sort
in time order):

    runs/<name>/history/<DATE>/results/manifest.json              the run's provenance and config
    runs/<name>/history/<DATE>/results/tasks/<task>/task.json     each task's data set
    runs/<name>/history/<DATE>/results/graded/<model>/<task>.parquet   graded items

`record_run` makes an entry from a finished run's results/ (those files only: graded items, not
the collections, so an entry stays small), in a temporary folder renamed into place: an entry is
complete or absent. Any entry is also a run that `calibbench monitor compare` accepts.

`history_metrics`: per entry, model, task and confidence signal, ECE, Brier, accuracy and AUROC
(`calibbench.monitor.change.change_metrics`) on every graded item with the signal, each with its
percentile bootstrap interval (`calibbench.metrics.bootstrap_ci`).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from calibbench.confidence.signals import OF_GRADED_ANSWER
from calibbench.errors import InputError
from calibbench.metrics.bootstrap import bootstrap_ci
from calibbench.monitor.change import change_metrics

#: The files of a run's results/ an entry keeps (glob patterns).
RECORDED = ("manifest.json", "tasks/*/task.json", "graded/*/*.parquet")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{6})?$")


def today() -> str:
    """Today's UTC date, YYYY-MM-DD."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def _check_date(date: str) -> str:
    if not DATE.match(date):
        raise InputError(f"--date: expected YYYY-MM-DD or YYYY-MM-DDTHHMMSS, got {date!r}")
    try:
        dt.datetime.strptime(date[:10], "%Y-%m-%d")
    except ValueError:
        raise InputError(f"--date: {date!r} is not a calendar date") from None
    return date


def record_run(
    results: Path, history: Path, date: str | None = None, replace: bool = False
) -> Path:
    """Copy the RECORDED files of the results tree `results` into `history/<date>/results/`
    (date: today, UTC, by default); returns the entry. Raises InputError when `results` has no
    manifest or graded items, or the entry exists and `replace` is False."""
    date = _check_date(date or today())
    if not (results / "manifest.json").is_file() or not list(results.glob("graded/*/*.parquet")):
        raise InputError(
            f"--run: {results} has no manifest.json and graded items; record a finished run"
        )
    entry = history / date
    if entry.exists() and not replace:
        raise InputError(
            f"--date: {entry} exists; pass --replace to overwrite it, or another --date"
        )
    history.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=history, prefix=f".{date}."))
    try:
        for pattern in RECORDED:
            for source in sorted(results.glob(pattern)):
                target = staging / "results" / source.relative_to(results)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        if entry.exists():
            shutil.rmtree(entry)
        staging.rename(entry)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return entry


def history_entries(history: Path) -> list[tuple[str, Path]]:
    """(DATE, results folder) of every entry, oldest first. Raises InputError when `history`
    holds none or a folder that is not a dated entry."""
    if not history.is_dir():
        raise InputError(f"--history: {history} is not a folder")
    entries = []
    for path in sorted(p for p in history.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not DATE.match(path.name) or not (path / "results" / "graded").is_dir():
            raise InputError(
                f"--history: {path} is not a dated entry (DATE/results/graded with DATE "
                "YYYY-MM-DD or YYYY-MM-DDTHHMMSS); record runs with `calibbench monitor record`"
            )
        entries.append((path.name, path / "results"))
    if not entries:
        raise InputError(f"--history: {history} holds no entries; record runs into it first")
    return entries


def history_metrics(
    entries: list[tuple[str, Path]],
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per entry date x model x task x signal x metric: n, estimate, low, high (None
    where the metric is undefined, e.g. AUROC when every answer is wrong)."""
    metrics = change_metrics(n_bins)
    rows = []
    for date, root in entries:
        for path in sorted(root.glob("graded/*/*.parquet")):
            graded = pd.read_parquet(path)
            for signal in (s for s in OF_GRADED_ANSWER if s in graded.columns):
                c = graded[signal].to_numpy(np.float64)
                keep = np.isfinite(c)
                answers = c[keep], graded["correct"].to_numpy(bool)[keep]
                base = {
                    "date": date,
                    "model": path.parent.name,
                    "task": path.stem,
                    "signal": signal,
                    "n": int(keep.sum()),
                }
                for metric, fn in metrics.items():
                    try:
                        ci = bootstrap_ci(
                            fn,
                            *answers,
                            n_resamples=n_resamples,
                            level=level,
                            seed=seed,
                        )
                        values = {"estimate": ci.estimate, "low": ci.low, "high": ci.high}
                    except InputError:
                        values = {"estimate": None, "low": None, "high": None}
                    rows.append(base | {"metric": metric} | values)
    return pd.DataFrame(rows)
