"""`calibbench monitor ...`: calibration over time, from the command line (files in, files out).

    calibbench monitor compare BASELINE NEW --out DIR [--threshold-ece 0.05 ...]
    calibbench monitor log FILE --out DIR [--window 30D] [--segment task] [--html]
    calibbench monitor record --run runs/NAME [--date YYYY-MM-DD]
    calibbench monitor dashboard --history runs/NAME/history --out dashboard.html
    calibbench monitor synthetic --out log.csv [--shift accuracy:120:0.15]

Exit status: 0; 1 when `compare` crossed a threshold or `log` raised a drift alarm in the latest
window (unless --report-only), for cron and CI; 2 for an InputError (via `calibbench.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: Exit status when a threshold is crossed or the latest window raises a drift alarm.
ALERT_STATUS = 1


def _thresholds(args: argparse.Namespace) -> dict[str, float]:
    names = ("ece", "brier", "accuracy", "auroc")
    return {
        m: getattr(args, f"threshold_{m}")
        for m in names
        if getattr(args, f"threshold_{m}") is not None
    }


def _compare(args: argparse.Namespace) -> int:
    from calibbench.monitor.compare import compare_runs, write_comparison

    comparison = compare_runs(
        args.baseline,
        args.new,
        args.n_bins,
        args.bootstrap,
        args.level,
        args.seed,
        _thresholds(args),
    )
    paths = write_comparison(comparison, args.out)
    alerts = comparison.alerts
    print(
        f"{len(comparison.rows)} changes, {int(comparison.rows.significant.sum())} significant, "
        f"{len(alerts)} alert(s); wrote {', '.join(str(p) for p in paths)}"
    )
    for r in alerts.itertuples():
        print(
            f"ALERT {r.model} / {r.task} / {r.signal}: {r.metric} {r.baseline:.3f} -> "
            f"{r.new:.3f} ({r.change:+.3f} [{r.low:+.3f}, {r.high:+.3f}], threshold "
            f"{r.threshold:g})"
        )
    return ALERT_STATUS if len(alerts) and not args.report_only else 0


def _log(args: argparse.Namespace) -> int:
    from calibbench.monitor.dashboard import log_html, write_page
    from calibbench.monitor.log import LogSettings, log_report, scan_log, write_log_report
    from calibbench.monitor.reader import LogColumns

    columns = LogColumns(
        args.time_column,
        args.confidence_column,
        args.outcome_column,
        tuple(args.segment),
        args.id_column,
    )
    settings = LogSettings(
        args.window,
        args.step,
        args.reference,
        args.n_bins,
        args.alpha,
        n_resamples=args.bootstrap,
        level=args.level,
        seed=args.seed,
    )
    report = log_report(scan_log(args.file, columns, settings), settings)
    paths = write_log_report(report, args.out)
    if args.html:
        paths.append(write_page(log_html(report), args.out / "report.html"))
    w = report.windows
    print(
        f"{report.n_rows} predictions, {w.window.nunique()} windows x "
        f"{len(w.groupby(['segment', 'value']))} segments, {int(w.alarm.sum())} drift "
        f"alarm(s); wrote {', '.join(str(p) for p in paths)}"
    )
    for r in w[w.alarm].itertuples():
        where = "all" if r.segment == "" else f"{r.segment} = {r.value}"
        print(
            f"ALARM {r.window} ({where}): calibration moved from the reference, p = {r.p_value:.2g}"
        )
    return ALERT_STATUS if len(report.latest_alarms) and not args.report_only else 0


def _record(args: argparse.Namespace) -> int:
    from calibbench.monitor.history import record_run

    history = args.history or args.run / "history"
    entry = record_run(args.run / "results", history, args.date, args.replace)
    print(f"recorded {args.run / 'results'} as {entry}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from calibbench.monitor.dashboard import dashboard_data, dashboard_html, write_page

    data = dashboard_data(
        args.history,
        args.baseline,
        _thresholds(args),
        args.title,
        args.n_bins,
        args.bootstrap,
        args.level,
        args.seed,
    )
    write_page(dashboard_html(data), args.out)
    latest = data.comparisons.get(data.dates[-1])
    alerts = 0 if latest is None else len(latest.alerts)
    print(
        f"{len(data.dates)} dated run(s), latest {data.dates[-1]}, {alerts} alert(s); "
        f"wrote {args.out}"
    )
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from calibbench.artifacts import atomic_write
    from calibbench.monitor.synthetic import Shift, synthetic_log

    shift = Shift.parse(args.shift) if args.shift else None
    table = synthetic_log(args.n, args.days, args.start, args.seed, shift)
    write = pq.write_table if args.out.suffix == ".parquet" else pcsv.write_csv
    atomic_write(args.out, lambda tmp: write(table, tmp))
    print(f"wrote {args.n} predictions to {args.out}")
    return 0


def _settings(p: argparse.ArgumentParser, defaults: str) -> None:
    p.add_argument("--n-bins", type=int, help=f"ECE bins ({defaults})")
    p.add_argument("--bootstrap", type=int, help=f"bootstrap resamples ({defaults})")
    p.add_argument("--level", type=float, help=f"interval coverage ({defaults})")
    p.add_argument("--seed", type=int, help=f"bootstrap seed ({defaults})")


def _threshold_args(p: argparse.ArgumentParser) -> None:
    for metric, worse in (
        ("ece", "rise"),
        ("brier", "rise"),
        ("accuracy", "fall"),
        ("auroc", "fall"),
    ):
        p.add_argument(
            f"--threshold-{metric}",
            type=float,
            metavar="T",
            help=f"alert when {metric} {worse}s by more than T, significantly",
        )


def _args_monitor(p: argparse.ArgumentParser) -> None:
    """The `monitor` command's subcommands and their arguments."""
    sub = p.add_subparsers(dest="monitor_command", required=True)
    c = sub.add_parser("compare", help="a run against a baseline run, with bootstrap intervals")
    c.add_argument(
        "baseline",
        type=Path,
        help="baseline run (runs/<name>, a history entry or a results folder)",
    )
    c.add_argument("new", type=Path, help="the run to compare with it")
    c.add_argument("--out", type=Path, required=True, help="folder for comparison.json/.md/.csv")
    _threshold_args(c)
    _settings(c, "default: the new run's configuration")
    c.add_argument("--report-only", action="store_true", help="exit 0 even when alerting")
    c.set_defaults(monitor=_compare)

    g = sub.add_parser("log", help="windows, drift alarms and a refit what-if of a prediction log")
    g.add_argument("file", type=Path, help="the log: CSV or Parquet, sorted by time")
    g.add_argument(
        "--out", type=Path, required=True, help="folder for report.json/.md, windows.csv"
    )
    g.add_argument("--window", default="30D", help="day, week, month, or N days such as 30D")
    g.add_argument("--step", help="rolling windows: N days between window ends (default: N)")
    g.add_argument(
        "--reference", default="first", help="the reference window: first, or START:END dates"
    )
    g.add_argument(
        "--segment",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a segment column (repeatable), e.g. task or customer",
    )
    g.add_argument("--time-column", default="timestamp")
    g.add_argument("--confidence-column", default="confidence")
    g.add_argument("--outcome-column", default="outcome")
    g.add_argument("--id-column", help="a column of unique prediction ids (checked)")
    g.add_argument("--alpha", type=float, default=0.05, help="the report's false-alarm rate")
    g.add_argument("--n-bins", type=int, default=15)
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    g.add_argument("--level", type=float, default=0.95, help="interval coverage")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--html", action="store_true", help="also write report.html with charts")
    g.add_argument("--report-only", action="store_true", help="exit 0 even on a drift alarm")
    g.set_defaults(monitor=_log)

    r = sub.add_parser("record", help="keep a finished run as a dated history entry")
    r.add_argument("--run", type=Path, required=True, help="the run directory, runs/<name>")
    r.add_argument("--history", type=Path, help="history folder (default: RUN/history)")
    r.add_argument("--date", help="YYYY-MM-DD or YYYY-MM-DDTHHMMSS (default: today, UTC)")
    r.add_argument("--replace", action="store_true", help="overwrite an entry of that date")
    r.set_defaults(monitor=_record)

    d = sub.add_parser("dashboard", help="a static HTML page of a configuration's dated runs")
    d.add_argument("--history", type=Path, required=True, help="runs/<name>/history")
    d.add_argument("--out", type=Path, required=True, help="the HTML page to write")
    d.add_argument(
        "--baseline",
        default="first",
        help="first (default), a date of the history, or a run folder",
    )
    d.add_argument("--title", help="the page's title")
    _threshold_args(d)
    _settings(d, "default: the latest run's configuration")
    d.set_defaults(monitor=_dashboard)

    s = sub.add_parser("synthetic", help="a seeded synthetic prediction log, to try `log`")
    s.add_argument("--out", type=Path, required=True, help="a .csv or .parquet file")
    s.add_argument("--n", type=int, default=20000, help="predictions")
    s.add_argument("--days", type=int, default=180)
    s.add_argument("--start", default="2024-01-01", help="first day, YYYY-MM-DD")
    s.add_argument(
        "--shift",
        help="a drift from a day on: KIND:DAY:SIZE with KIND inflate, "
        "accuracy or segment, e.g. accuracy:120:0.15",
    )
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(monitor=_synthetic)


def _cmd_monitor(args: argparse.Namespace) -> None:
    """Run the chosen subcommand; exits with ALERT_STATUS when it alerts."""
    status = args.monitor(args)
    if status:
        raise SystemExit(status)
