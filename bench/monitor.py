"""`calibbench monitor log` on a large production log, against reading it whole with pandas.

The log: `calibbench.monitor.synthetic.synthetic_log` (seed 0, 180 days, an accuracy drop of
0.1 from day 120, segment column `task`), written once as CSV into bench/.cache/ (10 million
rows, about 0.6 GB; --quick: 200,000 rows in a temporary folder).

Methods, each in a fresh worker process that imports what it needs first (`harness.measure`:
seconds, peak resident memory above what the worker held before, and the process's whole peak):

- calibbench streamed: `scan_log` + `log_report` with 30-day windows and the `task` segments:
  one pass in CSV blocks; every window's accuracy, mean confidence, over-confidence, Brier and
  ECE with intervals (1000 bootstrap resamples for ECE), the drift test of every window and
  segment, and the refit what-if on the latest window.
- pandas whole file: `pd.read_csv` of the four columns, then `groupby` per window x segment
  (and per window x confidence bin for ECE): the same windows' n, accuracy, mean confidence,
  Brier and ECE, without intervals, drift test or refit (what one would write by hand).

Both compute every window's ECE and accuracy (all predictions); the table shows the largest
difference between them, which should be at rounding level.

    python bench/monitor.py            # writes bench/results/monitor.*
    python bench/monitor.py --quick    # a small smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CACHE, machine_info, markdown_table, measure, run_worker, write_results

SCRIPT = Path(__file__).resolve()
N_FULL, N_QUICK = 10_000_000, 200_000
N_BINS, WINDOW_DAYS = 15, 30
METHODS = ("calibbench streamed", "pandas whole file")


def write_log(path: Path, n: int) -> None:
    """The synthetic log of the module docstring, as CSV at `path` (kept if already there)."""
    import pyarrow.csv as pcsv

    from calibbench.artifacts import atomic_write
    from calibbench.monitor.synthetic import Shift, synthetic_log

    if path.is_file():
        return
    table = synthetic_log(n, days=180, seed=0, shift=Shift("accuracy", 120, 0.1))
    atomic_write(path, lambda tmp: pcsv.write_csv(table, tmp))


def _peak_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024


def calibbench_windows(path: Path) -> dict[str, list[float]]:
    """Per window end (YYYY-MM-DD), [n, accuracy, ece] of all predictions."""
    from calibbench.monitor.log import LogSettings, log_report, scan_log
    from calibbench.monitor.reader import LogColumns

    settings = LogSettings(window=f"{WINDOW_DAYS}D", n_bins=N_BINS)
    report = log_report(scan_log(path, LogColumns(segments=("task",)), settings), settings)
    w = report.windows[report.windows.segment == ""]
    return {r.end: [int(r.n), float(r.accuracy), float(r.ece)] for r in w.itertuples()}


def pandas_windows(path: Path) -> dict[str, list[float]]:
    """The same windows by pandas on the whole file (see the module docstring)."""
    import pandas as pd

    df = pd.read_csv(path, usecols=["timestamp", "confidence", "outcome", "task"])
    times = pd.to_datetime(df["timestamp"], utc=True).dt.tz_convert(None)
    day = times.to_numpy().astype("datetime64[D]").astype(np.int64)
    last = int(day.max())
    df["window"] = (last - day) // WINDOW_DAYS
    df["bin"] = np.minimum((df["confidence"].to_numpy() * N_BINS).astype(int), N_BINS - 1)
    df["sq"] = (df["confidence"] - df["outcome"]) ** 2
    per_segment = df.groupby(["window", "task"]).agg(
        n=("outcome", "size"), accuracy=("outcome", "mean"),
        mean_confidence=("confidence", "mean"), brier=("sq", "mean"),
    )  # fmt: skip
    totals = df.groupby("window").agg(n=("outcome", "size"), accuracy=("outcome", "mean"),
                                      brier=("sq", "mean"))  # fmt: skip
    cells = df.groupby(["window", "bin"]).agg(hits=("outcome", "sum"), mass=("confidence", "sum"))
    gap = (cells["hits"] - cells["mass"]).abs().groupby(level="window").sum()
    ece = gap / totals["n"]
    if not (per_segment["n"].groupby(level="window").sum() == totals["n"]).all():
        raise RuntimeError("the segments' counts do not add up to the windows'")
    return {
        str(np.datetime64(last - WINDOW_DAYS * int(w), "D")): [
            int(totals.loc[w, "n"]),
            float(totals.loc[w, "accuracy"]),
            float(ece.loc[w]),
        ]
        for w in totals.index
    }


def worker(method: str, path: Path) -> None:
    import pandas  # noqa: F401  (imports are not what is measured)

    import calibbench.monitor.log  # noqa: F401

    fn = {"calibbench streamed": calibbench_windows, "pandas whole file": pandas_windows}[method]
    out = measure(lambda: fn(path), repeats=1)
    out["peak_rss_mib"] = _peak_mib()
    out.pop("times")
    print(json.dumps(out))


def rows_for(path: Path, n: int) -> list[dict]:
    found = {m: run_worker(SCRIPT, [m, str(path)]) for m in METHODS}
    for m, out in found.items():
        if "error" in out:
            raise SystemExit(f"{m} failed: {out['error']}")
    ours, theirs = (found[m]["result"] for m in METHODS)
    if ours.keys() != theirs.keys():
        raise SystemExit(f"the windows differ: {sorted(ours)} and {sorted(theirs)}")
    if any(ours[k][0] != theirs[k][0] for k in ours):
        raise SystemExit("the windows' counts differ")
    diff = max(abs(ours[k][i] - theirs[k][i]) for k in ours for i in (1, 2))
    base = found["calibbench streamed"]
    rows = []
    for m in METHODS:
        out = found[m]
        rows.append({
            "rows": n, "method": m, "seconds": out["seconds"],
            "rows per second": n / out["seconds"], "peak extra MiB": out["peak_extra_mib"],
            "peak RSS MiB": out["peak_rss_mib"],
            "time / calibbench": out["seconds"] / base["seconds"],
            "memory / calibbench": out["peak_rss_mib"] / base["peak_rss_mib"],
            "max diff (acc, ECE)": diff, "windows": len(out["result"]),
        })  # fmt: skip
    return rows


COLUMNS = ("rows", "method", "seconds", "rows per second", "peak extra MiB", "peak RSS MiB",
           "time / calibbench", "memory / calibbench", "max diff (acc, ECE)",
           "windows")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run, writes nothing")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "log.csv"
            write_log(path, N_QUICK)
            print(markdown_table(rows_for(path, N_QUICK), COLUMNS))
        return
    path = CACHE / f"monitor-log-{N_FULL}.csv"
    write_log(path, N_FULL)
    rows = rows_for(path, N_FULL)
    table = markdown_table(rows, COLUMNS)
    print(table)
    notes = (
        f"`calibbench monitor log`'s computation (scan_log + log_report: {WINDOW_DAYS}-day "
        "windows, segment column task, intervals, drift tests, refit) streamed over a synthetic "
        f"CSV log of {N_FULL:,} predictions ({path.stat().st_size / 2**20:.0f} MiB), against "
        "pandas reading the whole file and grouping (the windows' n, accuracy, mean "
        "confidence, Brier and ECE only). Each in its own process; peak RSS is the process's "
        "whole peak resident memory (Python and imports included); ratios: pandas / calibbench. "
        "max diff: the largest difference of any window's accuracy or ECE between the two."
    )
    write_results("monitor", table, {"machine": machine_info(), "rows": rows}, notes)


if __name__ == "__main__":
    main()
