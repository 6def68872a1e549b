"""Dated entries of a configuration's runs: what an entry keeps, all or nothing, and the metrics
the dashboard plots from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from monitor_runs import answers, calibbench, write_run

from calibbench.errors import InputError
from calibbench.metrics import bootstrap_ci, brier
from calibbench.monitor import history
from calibbench.monitor.history import history_entries, history_metrics, record_run

KEY = ("m", "arc_easy")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_an_entry_keeps_the_manifest_tasks_and_graded_items(tmp_path: Path):
    run = write_run(tmp_path / "run", {KEY: answers(30, seed=1)})
    (run / "results" / "collect" / "m").mkdir(parents=True)
    (run / "results" / "collect" / "m" / "records.parquet").write_text("large")
    entry = record_run(run / "results", tmp_path / "history", "2024-05-01")
    assert entry == tmp_path / "history" / "2024-05-01"
    assert _files(entry) == [
        "results/graded/m/arc_easy.parquet",
        "results/manifest.json",
        "results/tasks/arc_easy/task.json",
    ]
    with pytest.raises(InputError, match="2024-05-01 exists; pass --replace"):
        record_run(run / "results", tmp_path / "history", "2024-05-01")
    record_run(run / "results", tmp_path / "history", "2024-05-01", replace=True)
    with pytest.raises(InputError, match="--date: expected YYYY-MM-DD"):
        record_run(run / "results", tmp_path / "history", "May 1")


def test_a_failed_copy_leaves_no_entry(tmp_path: Path, monkeypatch):
    run = write_run(tmp_path / "run", {KEY: answers(30, seed=1), ("m", "mmlu"): answers(9, 2)})
    copies = []

    def copy_then_fail(source, target):
        copies.append(source)
        if len(copies) == 3:
            raise OSError("disk full")
        shutil.copy2(source, target)

    monkeypatch.setattr(history.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        record_run(run / "results", tmp_path / "history", "2024-05-01")
    assert list((tmp_path / "history").iterdir()) == []


def test_entries_are_dated_folders_in_time_order(tmp_path: Path):
    run = write_run(tmp_path / "run", {KEY: answers(30, seed=1)})
    for date in ("2024-06-01", "2024-05-01T120000", "2024-05-01"):
        record_run(run / "results", tmp_path / "history", date)
    assert [d for d, _ in history_entries(tmp_path / "history")] == [
        "2024-05-01",
        "2024-05-01T120000",
        "2024-06-01",
    ]
    (tmp_path / "history" / "latest").mkdir()
    with pytest.raises(InputError, match="history/latest is not a dated entry"):
        history_entries(tmp_path / "history")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no entries"):
        history_entries(tmp_path / "empty")


def test_history_metrics_are_each_runs_bootstrap_intervals(tmp_path: Path):
    graded = answers(80, seed=5)
    run = write_run(tmp_path / "run", {KEY: graded})
    record_run(run / "results", tmp_path / "history", "2024-05-01")
    got = history_metrics(history_entries(tmp_path / "history"), n_resamples=200, seed=2)
    row = got[(got.metric == "brier") & (got.signal == "confidence")].iloc[0]
    want = bootstrap_ci(brier, graded.confidence, graded.correct, n_resamples=200, seed=2)
    assert (row.estimate, row.low, row.high, row.n) == (want.estimate, want.low, want.high, 80)
    assert set(got.metric) == {"ece", "brier", "accuracy", "auroc"}
    assert isinstance(got, pd.DataFrame) and set(got.signal) == {
        "confidence",
        "confidence_token_norm",
    }


def test_record_from_the_command_line(tmp_path: Path, capsys):
    run = write_run(tmp_path / "run", {KEY: answers(30, seed=1)})
    assert calibbench("monitor", "record", "--run", str(run), "--date", "2024-05-01") == 0
    assert (run / "history" / "2024-05-01" / "results" / "manifest.json").is_file()
    assert calibbench("monitor", "record", "--run", str(tmp_path / "nothing")) == 2
    assert "record a finished run" in capsys.readouterr().err
