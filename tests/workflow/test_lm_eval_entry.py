"""A run of lm-evaluation-harness as a model of the workflow (`lm_eval:` in a configuration): its
tasks are read from the log instead of collected and join the paper beside a model calibbench
ran itself; a bad entry fails at start-up, before any job."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from lm_eval_runs import ARC, GENERATE, MMLU, run_lm_eval, write_tasks

pytestmark = pytest.mark.model

MODEL = "dummy-lmeval"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(output directory, lm-eval's in-memory results) of lm-eval's dummy model, 30 documents."""
    root = tmp_path_factory.mktemp("lmeval-workflow")
    include = write_tasks(root / "tasks")
    out = root / "out"
    return out, run_lm_eval(out, include, [ARC, MMLU, GENERATE], limit=30, model="dummy")


def _config(log: Path, tasks: list[str]) -> dict:
    return {
        "name": "with-lm-eval", "seed": 0, "n_bins": 10, "bootstrap_resamples": 50,
        "ci_level": 0.95, "calibration_fraction": 0.5, "temperatures": [0.7, 1.0, 1.5],
        "methods": ["raw", "temperature", "platt"], "collect_chunk_size": 8,
        "models": {"smollm2-135m": {"spec": {"runtime": "llamacpp", "builtin": "smollm2-135m",
                                             "n_ctx": 512}}},
        "tasks": {"arc_easy": {"spec": {"task": "arc_easy"}, "limit": 8}},
        "lm_eval": {MODEL: {"path": str(log), "tasks": tasks}},
    }  # fmt: skip


def _write(workdir: Path, config: dict) -> str:
    path = workdir / "with-lm-eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_an_lm_eval_log_joins_the_paper_beside_a_collected_model(log, tmp_path, run_snakemake):
    out, reference = log
    configfile = _write(tmp_path, _config(out, [ARC, MMLU]))
    proc = run_snakemake(tmp_path, "--cores", "2", "--configfile", configfile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "with-lm-eval"
    results = run / "results"
    for task in (ARC, MMLU):
        name = f"lm-eval.{task}"
        graded = pd.read_parquet(results / "graded" / MODEL / f"{name}.parquet")
        assert graded["correct"].mean() == reference["results"][task]["acc,none"]
        assert len(graded) == 30
        items = pd.read_parquet(results / "tasks" / name / "items.parquet")
        assert items["item_id"].tolist() == graded["item_id"].tolist()
        collection = json.loads((results / "collect" / MODEL / name / "answers" /
                                 "manifest.json").read_text())  # fmt: skip
        assert collection["model"]["runtime"] == "lm-eval"
        assert collection["model"]["extra"]["lm_eval_version"] == reference["lm_eval_version"]
        assert all(check["ok"] for check in collection["checks"])
        assert not (results / "collect" / MODEL / name / "answers" / "records.parquet").exists()
    provenance = json.loads((results / "manifest.json").read_text())
    assert provenance["models"][MODEL] == collection["model"]
    assert {f"lm-eval.{ARC}", f"lm-eval.{MMLU}", "arc_easy"} <= set(provenance["tasks"])
    headline = pd.read_csv(run / "paper" / "tables" / "headline.csv")
    pairs = set(zip(headline["model"], headline["task"], strict=True))
    assert {(MODEL, f"lm-eval.{ARC}"), (MODEL, f"lm-eval.{MMLU}"), ("smollm2-135m", "arc_easy")}\
        <= pairs  # fmt: skip
    assert f"lm-eval.{ARC}" in (run / "paper" / "paper.md").read_text()
    again = run_snakemake(tmp_path, "--cores", "2", "--configfile", configfile)
    assert again.returncode == 0
    assert "nothing to be done: run 'with-lm-eval'" in again.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c, log: c["lm_eval"][MODEL].update(tasks=["cb_nothing"]),
         "lm_eval.dummy-lmeval.tasks: "),
        (lambda c, log: c["lm_eval"][MODEL].update(tasks=[GENERATE]),
         "has no confidence in this log"),
        (lambda c, log: c["lm_eval"][MODEL].update(path=str(log / "missing")),
         "lm_eval.dummy-lmeval.path: "),
        (lambda c, log: c["lm_eval"].update({"smollm2-135m": c["lm_eval"].pop(MODEL)}),
         "also the name of an entry of models"),
    ],
    ids=["unknown task", "generation task", "missing path", "name of a model"],
)  # fmt: skip
def test_a_bad_entry_fails_at_start_up(log, tmp_path, run_snakemake, change, expected):
    out, _ = log
    config = _config(out, [ARC])
    change(config, out)
    proc = run_snakemake(tmp_path, "--cores", "2", "-n", "--configfile", _write(tmp_path, config))
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr
    assert not (tmp_path / "runs" / "with-lm-eval" / "results").exists()
