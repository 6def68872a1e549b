"""Each task kind end to end through the CLI the workflow calls: prepare, collect, (follow-up),
grade and split, offline, on the built-in models with --limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.model


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "calibbench", *args], capture_output=True, text=True, timeout=900
    )


def ok(*args: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]


def run_task(tmp: Path, task: str, spec: dict, model: str = "smollm2-135m", limit: int = 3):
    spec_json = json.dumps(spec)
    prep = tmp / "prep"
    ok("prepare", "--task", task, "--spec", spec_json, "--limit", str(limit), "--out", str(prep))
    ok("collect", "--model", model, "--requests", str(prep / "requests.parquet"),
       "--out", str(tmp / "collect"), "--no-progress")  # fmt: skip
    records = str(tmp / "collect" / "records.parquet")
    grade = ["grade", "--task", task, "--spec", spec_json, "--items", str(prep / "items.parquet"),
             "--records", records, "--out", str(tmp / "graded.parquet")]  # fmt: skip
    follow = cli("followup", "--task", task, "--spec", spec_json, "--items",
                 str(prep / "items.parquet"), "--records", str(tmp / "collect" / "records.parquet"),
                 "--out", str(tmp / "followup.parquet"))  # fmt: skip
    if follow.returncode == 0:
        ok("collect", "--model", model, "--requests", str(tmp / "followup.parquet"),
           "--out", str(tmp / "collect_followup"), "--no-progress")  # fmt: skip
        grade += ["--followup-records", str(tmp / "collect_followup" / "records.parquet")]
    else:
        assert "asks no follow-up questions" in follow.stderr
    ok(*grade)
    ok("split", "--items", str(prep / "items.parquet"), "--out", str(tmp / "split.parquet"))
    graded = pd.read_parquet(tmp / "graded.parquet")
    split = pd.read_parquet(tmp / "split.parquet")
    task_info = json.loads((prep / "task.json").read_text())
    assert len(graded) == len(split) == limit == task_info["n_items"]
    assert set(split["split"]) <= {"calibration", "test"}
    return graded, task_info


@pytest.mark.parametrize(
    ("task", "spec"),
    [
        ("mmlu", {"format": "letter", "subsets": ["anatomy"]}),
        ("arc_challenge", {}),
        ("triviaqa", {"n_samples": 2, "num_fewshot": 3}),
        ("humaneval", {"n_samples": 1, "max_tokens": 48}),
    ],
)
def test_answer_level_tasks(tmp_path, task, spec):
    graded, info = run_task(tmp_path, task, spec, limit=2 if task == "humaneval" else 3)
    assert graded["correct"].dtype == bool
    assert graded["confidence"].dropna().between(0, 1).all()
    assert info["dataset"]["licence"]
    if task == "triviaqa":
        assert graded["p_true"].between(0, 1).all()


def test_language_modelling_task_fills_the_accumulator(tmp_path):
    graded, _ = run_task(tmp_path, "lm", {"source": "hellaswag"})
    manifest = json.loads((tmp_path / "collect" / "manifest.json").read_text())
    assert manifest["kind"] == "score" and "token_calibration.npz" in manifest["outputs"]
    assert (graded["n_tokens"] > 5).all()


def test_the_262k_vocabulary_model_runs_a_task(tmp_path):
    graded, _ = run_task(tmp_path, "arc_easy", {}, model="gemma3-270m", limit=2)
    assert graded["confidence"].between(0, 1).all()


def test_user_multiple_choice_file(tmp_path):
    data = tmp_path / "quiz.jsonl"
    rows = [
        {"q": "What is 2 + 2?", "opts": ["3", "4", "5"], "ans": "4"},
        {"q": "The capital of France is", "opts": ["Berlin", "Paris"], "ans": 1},
        {"q": "Water freezes at", "opts": ["0 degrees Celsius", "50 degrees Celsius"], "ans": 0},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = {"path": str(data), "fields": {"question": "q", "choices": "opts", "gold": "ans"}}
    graded, info = run_task(tmp_path, "user_multiple_choice", spec)
    assert graded["gold"].tolist() == [1, 1, 0]
    assert info["dataset"]["source"] == str(data)


def test_bad_task_names_and_files_are_one_line_errors(tmp_path):
    proc = cli("prepare", "--task", "mmlu_pro", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "unknown task 'mmlu_pro'" in proc.stderr
    data = tmp_path / "bad.jsonl"
    data.write_text('{"q": "a", "opts": ["x", "y"]}\n{"q": "b", "opts": ["x", "y"], "ans": 0}\n')
    spec = json.dumps(
        {"path": str(data), "fields": {"question": "q", "choices": "opts", "gold": "ans"}}
    )
    proc = cli(
        "prepare", "--task", "user_multiple_choice", "--spec", spec, "--out", str(tmp_path / "y")
    )
    assert proc.returncode == 2
    assert f"{data}: line 1: field 'gold' ('ans') is missing" in proc.stderr
    data.write_text('{"q": "a", "opts": ["x", "y"], "ans": 0}\n{"q": "b", "opts": \n')
    proc = cli(
        "prepare", "--task", "user_multiple_choice", "--spec", spec, "--out", str(tmp_path / "z")
    )
    assert proc.returncode == 2 and f"{data}:2: not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
