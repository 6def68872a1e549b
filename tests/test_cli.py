"""The CLI the rules call: files in, files out, user errors as one line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from calibbench.cli import main
from calibbench.metrics import ece
from calibbench.records import read_answer_records, write_parquet
from calibbench.synthetic import overconfident_answers, true_accuracy


def test_synthetic_then_metrics_round_trip(tmp_path):
    records = tmp_path / "r.parquet"
    out = tmp_path / "m.json"
    assert main(["synthetic", "--out", str(records), "--n", "500", "--seed", "3"]) == 0
    frame = read_answer_records(records)
    assert len(frame) == 500 and frame["source"].str.startswith("synthetic").all()
    assert main(["metrics", "--records", str(records), "--out", str(out), "--bootstrap", "50"]) == 0
    summary = json.loads(out.read_text())
    got = summary["metrics"]["ece"]
    assert got["estimate"] == pytest.approx(ece(frame["confidence"], frame["correct"]))
    assert got["low"] <= got["high"]
    assert sum(b["count"] for b in summary["reliability"]) == 500


def test_synthetic_records_follow_their_calibration_map():
    frame = overconfident_answers(200_000, seed=0, tau=2.0)
    conf, correct = frame["confidence"].to_numpy(), frame["correct"].to_numpy()
    # Over-confidence of the simulated model equals E[c - sigmoid(logit(c) / tau)] in expectation.
    expected = float(np.mean(conf - true_accuracy(conf, 2.0)))
    assert conf.mean() - correct.mean() == pytest.approx(expected, abs=0.005)
    calibrated = overconfident_answers(200_000, seed=1, tau=1.0)
    assert ece(calibrated["confidence"], calibrated["correct"]) < 0.01


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"confidence": [0.5]}), "no column 'correct'"),
        (pd.DataFrame({"confidence": [0.5, 1.5], "correct": [1, 0]}), "row 1 holds 1.5"),
        (pd.DataFrame({"confidence": [0.5, None], "correct": [1, 0]}), "missing a value at row 1"),
        (pd.DataFrame({"confidence": [0.5, 0.2], "correct": [1, 2]}), "row 1 holds 2"),
    ],
)
def test_bad_records_give_one_line_error_naming_file_and_row(tmp_path, capsys, frame, message):
    records = tmp_path / "bad.parquet"
    write_parquet(frame, records)
    status = main(["metrics", "--records", str(records), "--out", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert status == 2
    assert str(records) in err and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def test_unreadable_file_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "not.parquet"
    path.write_text("hello")
    assert main(["metrics", "--records", str(path), "--out", str(tmp_path / "m.json")]) == 2
    assert "cannot read as Parquet" in capsys.readouterr().err
