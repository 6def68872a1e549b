"""A run against a baseline run: pairing by item id, the metrics' changes, alerts, bad runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from monitor_runs import DATASET, answers, calibbench, write_run

from calibbench.errors import InputError
from calibbench.metrics import accuracy, brier, ece
from calibbench.monitor.change import metric_change
from calibbench.monitor.compare import compare_runs, read_comparison

KEY = ("m", "arc_easy")


def _row(comparison, metric: str, signal: str = "confidence") -> pd.Series:
    rows = comparison.rows
    return rows[(rows.metric == metric) & (rows.signal == signal)].iloc[0]


def test_same_items_are_paired_by_id_whatever_their_order(tmp_path: Path):
    base = answers(200, seed=1)
    new = answers(200, seed=2, shift=0.1)
    base_run = write_run(tmp_path / "a", {KEY: base})
    new_run = write_run(tmp_path / "b", {KEY: new.sample(frac=1.0, random_state=0)})
    got = compare_runs(base_run, new_run, n_bins=10, n_resamples=300, seed=4)
    r = _row(got, "brier")
    assert (r.pairing, r.n_baseline, r.n_new) == ("paired", 200, 200)
    order = base.item_id.sort_values().index  # the comparison aligns items by sorted id
    expected = metric_change(
        brier,
        (base.confidence[order], base.correct[order]),
        (new.confidence[order], new.correct[order]),
        True,
        300,
        0.95,
        4,
    )
    assert (r.baseline, r.new, r.low, r.high) == pytest.approx(
        (expected.baseline, expected.new, expected.low, expected.high), abs=1e-12
    )
    e = _row(got, "ece")
    assert e.change == pytest.approx(
        ece(new.confidence, new.correct, n_bins=10) - ece(base.confidence, base.correct, n_bins=10)
    )
    assert set(got.rows.signal) == {"confidence", "confidence_token_norm"}


def test_other_items_are_compared_unpaired(tmp_path: Path):
    base, new = answers(150, seed=1), answers(120, seed=2, ids=1000)
    got = compare_runs(
        write_run(tmp_path / "a", {KEY: base}),
        write_run(tmp_path / "b", {KEY: new}),
        n_resamples=200,
    )
    r = _row(got, "accuracy")
    assert (r.pairing, r.n_baseline, r.n_new) == ("unpaired", 150, 120)
    assert r.change == pytest.approx(
        accuracy(new.confidence, new.correct) - accuracy(base.confidence, base.correct)
    )


def test_items_without_the_signal_leave_both_runs_of_a_paired_comparison(tmp_path: Path):
    base, new = answers(100, seed=1), answers(100, seed=2)
    new.loc[:9, "confidence"] = np.nan  # e.g. empty completions have no pavg
    got = compare_runs(
        write_run(tmp_path / "a", {KEY: base}),
        write_run(tmp_path / "b", {KEY: new}),
        n_resamples=100,
    )
    r = _row(got, "brier")
    assert (r.pairing, r.n_baseline, r.n_new) == ("paired", 90, 90)
    kept = base.iloc[10:]
    assert r.baseline == pytest.approx(brier(kept.confidence, kept.correct))


def test_a_significant_change_beyond_its_threshold_alerts(tmp_path: Path):
    base, worse = answers(600, seed=1), answers(600, seed=1, shift=0.25)
    a, b = write_run(tmp_path / "a", {KEY: base}), write_run(tmp_path / "b", {KEY: worse})
    got = compare_runs(a, b, n_resamples=300, thresholds={"ece": 0.05, "accuracy": 0.05})
    ece_row, acc_row = _row(got, "ece"), _row(got, "accuracy")
    assert ece_row.change > 0.05 and ece_row.significant and ece_row.alert
    assert acc_row.change < -0.05 and acc_row.alert  # accuracy alerts when it falls
    lenient = compare_runs(a, b, n_resamples=300, thresholds={"ece": 0.5})
    assert _row(lenient, "ece").significant and not _row(lenient, "ece").alert
    better = compare_runs(b, a, n_resamples=300, thresholds={"ece": 0.05, "accuracy": 0.05})
    assert better.alerts.empty  # improvements never alert


def test_incompatible_or_malformed_runs_are_refused_naming_the_key(tmp_path: Path):
    a = write_run(tmp_path / "a", {KEY: answers(50, seed=1)})
    mmlu = DATASET | {"name": "mmlu", "split": "test"}
    b = write_run(tmp_path / "b", {KEY: answers(50, seed=2)}, datasets={"arc_easy": mmlu})
    with pytest.raises(InputError, match=r"tasks.arc_easy: .*dataset 'arc_easy' -> 'mmlu'"):
        compare_runs(a, b)
    c = write_run(tmp_path / "c", {("m", "triviaqa"): answers(50, seed=2)})
    with pytest.raises(InputError, match=r"models/tasks: the runs share no model x task"):
        compare_runs(a, c)
    twice = answers(50, seed=3)
    twice.loc[7, "item_id"] = twice.loc[2, "item_id"]
    d = write_run(tmp_path / "d", {KEY: twice})
    with pytest.raises(InputError, match=r"arc_easy.parquet: row 8: item_id 'item/2' repeats"):
        compare_runs(a, d)
    with pytest.raises(InputError, match=r"baseline: .* holds no graded items"):
        compare_runs(tmp_path / "nowhere", a)
    with pytest.raises(InputError, match="threshold brier: expected a positive number"):
        compare_runs(a, a, thresholds={"brier": -1})


def test_command_line_exit_status_and_outputs(tmp_path: Path, capsys):
    a = write_run(tmp_path / "a", {KEY: answers(400, seed=1)})
    b = write_run(tmp_path / "b", {KEY: answers(400, seed=1, shift=0.25)})
    out = tmp_path / "out"
    args = ("monitor", "compare", str(a), str(b), "--out", str(out), "--bootstrap", "200")
    assert calibbench(*args, "--threshold-ece", "0.05") == 1
    assert "ALERT m / arc_easy / confidence: ece" in capsys.readouterr().out
    written = read_comparison(out)
    assert written.rows.alert.any() and (out / "comparison.md").is_file()
    assert written.rows.drop(columns="reason").equals(
        compare_runs(a, b, n_resamples=200, thresholds={"ece": 0.05})
        .rows.drop(columns="reason")
        .astype(written.rows.drop(columns="reason").dtypes)
    )
    assert calibbench(*args, "--threshold-ece", "0.05", "--report-only") == 0
    assert calibbench(*args) == 0  # no threshold set: nothing to alert on
    c = write_run(tmp_path / "c", {("m", "triviaqa"): answers(50, seed=2)})
    fresh = tmp_path / "fresh"
    assert calibbench("monitor", "compare", str(a), str(c), "--out", str(fresh)) == 2
    assert "models/tasks" in capsys.readouterr().err and not fresh.exists()
