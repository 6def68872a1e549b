"""The drift detector: its false-alarm rate on stationary streams over many seeds, and injected
shifts caught in the right windows of a whole log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv
import pytest
from monitor_runs import calibbench
from scipy.stats import binom

from calibbench.monitor.drift import alarms, calibration_shift
from calibbench.monitor.log import LogSettings, log_report, scan_log
from calibbench.monitor.reader import LogColumns
from calibbench.monitor.synthetic import Shift, synthetic_log
from calibbench.monitor.windows import Cells

ALPHA = 0.05


def _stationary(rng: np.random.Generator, n: int) -> Cells:
    c = rng.beta(5.0, 1.5, n)
    return Cells.of(c, rng.uniform(size=n) < 0.8 * c + 0.1, 15)


def test_false_alarm_rate_on_stationary_streams_is_within_the_stated_rate():
    seeds, windows, n = 2000, 6, 600
    p = np.empty((seeds, windows))
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        reference = _stationary(rng, n)
        p[seed] = [
            calibration_shift(reference, _stationary(rng, n)).p_value for _ in range(windows)
        ]
    # The test is valid: each window's p-value is below 0.05 about 5 % of the time (a two-sided
    # binomial band at 0.999 over the 12,000 tests; correlated through the shared reference).
    tests = p.size
    lo, hi = binom.ppf([0.0005, 0.9995], tests, ALPHA)
    assert lo <= (p < ALPHA).sum() <= hi
    # The report's false-alarm probability (any alarm among its windows) is at most alpha.
    fired = np.array([alarms(row, ALPHA).any() for row in p])
    assert fired.sum() <= binom.ppf(0.999, seeds, ALPHA)


def _report(tmp_path: Path, shift: Shift | None, seed: int = 0):
    path = tmp_path / f"log-{seed}.csv"
    pcsv.write_csv(synthetic_log(36_000, days=180, seed=seed, shift=shift), path)
    settings = LogSettings(window="30D", n_resamples=200)
    report = log_report(scan_log(path, LogColumns(segments=("task",)), settings), settings)
    w = report.windows
    fired = {
        (r.segment or "all", r.value): set(
            w[(w.segment == r.segment) & (w.value == r.value) & w.alarm].start
        )
        for r in w.itertuples()
    }
    return report, fired


AFTER = {"2024-04-30", "2024-05-30"}  # the windows that start on or after day 120


@pytest.mark.parametrize("shift", [Shift("inflate", 120, 2.0), Shift("accuracy", 120, 0.12)])
def test_a_shift_of_the_whole_stream_fires_from_its_window_on(tmp_path: Path, shift: Shift):
    report, fired = _report(tmp_path, shift)
    assert fired[("all", "all")] == AFTER
    assert set(report.windows.start) >= AFTER | {"2024-01-01"}
    assert len(report.latest_alarms) >= 1


def test_a_segment_that_drifts_while_the_total_does_not_fires_only_for_the_segment(tmp_path):
    _, fired = _report(tmp_path, Shift("segment", 120, 0.15))
    assert fired[("all", "all")] == set()
    assert fired[("task", "qa")] == AFTER and fired[("task", "code")] == AFTER


def test_a_stationary_log_raises_no_alarm_and_the_command_exits_by_the_latest_window(
    tmp_path: Path, capsys
):
    _, fired = _report(tmp_path, None, seed=3)
    assert not any(fired.values())
    log = tmp_path / "drift.csv"
    pcsv.write_csv(synthetic_log(20_000, days=180, seed=1, shift=Shift("accuracy", 120, 0.15)), log)
    out = tmp_path / "out"
    assert calibbench("monitor", "log", str(log), "--out", str(out), "--bootstrap", "100") == 1
    assert "ALARM 2024-05-30..2024-06-28 (all)" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "windows.csv"}
    args = ("monitor", "log", str(log), "--out", str(out), "--report-only", "--bootstrap", "100")
    assert calibbench(*args) == 0
