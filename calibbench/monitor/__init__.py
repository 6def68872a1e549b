"""Calibration over time: a run against a baseline run, a production log in windows, drift
alarms, and a static dashboard of a configuration's dated runs.

One module per concern (arrays in, arrays out at the core; files only where a module says so):

- `change`: the bootstrap of a metric's change between two sets of answers, paired or not;
- `compare`: two runs' graded items, every model x task x signal they share (`compare_runs`);
- `reader`: a production log (CSV or Parquet) read and validated in chunks;
- `windows`: binned sums per day and segment (`DailyCells`), calendar and rolling windows, and
  each window's metrics with intervals from those sums;
- `drift`: the test of a window's calibration against a reference window;
- `refit`: the latest window's sample and what refitting temperature or Platt on it would change;
- `log`: one streaming pass over a log into all of the above (`scan_log`, `log_report`);
- `history`: dated copies of a configuration's runs (`record_run`, `history_entries`);
- `charts`: inline SVG charts; `dashboard`: the static HTML pages.
"""
