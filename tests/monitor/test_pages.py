"""The dashboard and the log report as pages in a real browser: headless Chromium screenshots,
whose pixels must show every chart's series, the thresholds, the alerts and the reliability
diagram, on a page that fits its window and fetches nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.csv as pcsv
import pytest
from headless_chromium import layout, pixels, screenshot
from monitor_runs import answers, calibbench, write_run

from calibbench.monitor.charts import ALERT, BARS, COLOURS
from calibbench.monitor.dashboard import dashboard_data, dashboard_html, log_html, write_page
from calibbench.monitor.history import record_run
from calibbench.monitor.log import LogSettings, log_report, scan_log
from calibbench.monitor.reader import LogColumns
from calibbench.monitor.synthetic import Shift, synthetic_log

KEYS = (("m", "arc_easy"), ("m", "mmlu"))
#: Fewest pixels of a series' own colour in a rendered chart (a 2.5 px line and 4 px points
#: over a few hundred pixels of width leave well over this many).
SERIES = 150


def _history(tmp_path: Path) -> Path:
    """Three monthly runs: the baseline, one like it, one with a calibration drop."""
    history = tmp_path / "runs" / "tiny" / "history"
    for i, (date, shift) in enumerate(
        (("2024-01-01", 0.0), ("2024-02-01", 0.0), ("2024-03-01", 0.25))
    ):
        graded = {key: answers(400, seed=10 * i + k, shift=shift) for k, key in enumerate(KEYS)}
        run = write_run(tmp_path / f"run{i}", graded, config={"name": "tiny", "n_bins": 10})
        record_run(run / "results", history, date)
    return history


def _fetches_nothing(html: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html


def test_dashboard_renders_every_chart_threshold_and_alert(tmp_path: Path):
    history = _history(tmp_path)
    data = dashboard_data(history, thresholds={"ece": 0.05, "accuracy": 0.05}, n_resamples=200)
    latest = data.comparisons["2024-03-01"]
    assert {(r.task, r.metric) for r in latest.alerts.itertuples()} >= {
        ("arc_easy", "ece"),
        ("mmlu", "accuracy"),
    }
    page = write_page(dashboard_html(data), tmp_path / "dashboard.html")
    html = page.read_text()
    _fetches_nothing(html)
    assert html.count("<svg") == 2 * 5  # per model x task: four metrics and a reliability diagram
    image = screenshot(page, tmp_path / "dashboard.png", height=2600)
    for metric in ("ece", "brier", "accuracy", "auroc"):
        assert pixels(image, COLOURS[metric]) > 2 * SERIES, metric
    assert pixels(image, BARS) > 2000  # the reliability diagrams' bars
    assert pixels(image, ALERT) > 2 * SERIES  # threshold lines and rings around the alerts
    assert layout(page, "document.documentElement.scrollWidth <= window.innerWidth") == "true"


def test_without_thresholds_or_alerts_no_red_is_drawn(tmp_path: Path):
    history = _history(tmp_path)
    page = write_page(
        dashboard_html(dashboard_data(history, n_resamples=100)), tmp_path / "plain.html"
    )
    image = screenshot(page, tmp_path / "plain.png", height=2600)
    assert pixels(image, ALERT) == 0
    assert pixels(image, COLOURS["ece"]) > 2 * SERIES


def test_dashboard_from_the_command_line(tmp_path: Path, capsys):
    history = _history(tmp_path)
    out = tmp_path / "dashboard.html"
    argv = (
        "monitor",
        "dashboard",
        "--history",
        str(history),
        "--out",
        str(out),
        "--threshold-ece",
        "0.05",
        "--bootstrap",
        "100",
    )
    assert calibbench(*argv) == 0
    assert "3 dated run(s), latest 2024-03-01, " in capsys.readouterr().out
    assert "Calibration monitor: tiny" in out.read_text()


def test_log_report_page_renders_its_windows_and_alarms(tmp_path: Path):
    log = tmp_path / "log.csv"
    pcsv.write_csv(synthetic_log(24_000, days=180, seed=4, shift=Shift("inflate", 120, 2.0)), log)
    settings = LogSettings(n_resamples=100)
    report = log_report(scan_log(log, LogColumns(segments=("task",)), settings), settings)
    page = write_page(log_html(report), tmp_path / "report.html")
    _fetches_nothing(page.read_text())
    image = screenshot(page, tmp_path / "report.png", height=3200)
    for metric in ("ece", "brier", "accuracy", "mean_confidence", "overconfidence"):
        assert pixels(image, COLOURS[metric]) > 3 * SERIES, metric
    assert pixels(image, ALERT) > SERIES and pixels(image, BARS) > 1000


@pytest.mark.parametrize("width", [1280, 700])
def test_pages_fit_their_window(tmp_path: Path, width: int):
    history = _history(tmp_path)
    page = write_page(dashboard_html(dashboard_data(history, n_resamples=50)), tmp_path / "d.html")
    assert (
        layout(page, "document.documentElement.scrollWidth <= window.innerWidth", width=width)
        == "true"
    )
