"""The workflow: validated config, the full DAG on a small config, caching, reproduction check."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import planned_jobs

from calibbench.recalibration import all_methods

pytestmark = pytest.mark.model


@pytest.fixture()
def configured(tmp_path: Path, repo_root: Path) -> Path:
    shutil.copytree(repo_root / "config", tmp_path / "config")
    return tmp_path


STAGES = ("prepare", "collect", "followup_requests", "grade", "split", "recalibrate", "compare",
          "sweep", "calibration_tuning", "manifest", "paper_tables", "paper_figures",
          "paper_document")  # fmt: skip


def test_default_config_plans_every_stage(configured, run_snakemake):
    proc = run_snakemake(configured, "--cores", "2", "-n")
    assert proc.returncode == 0, proc.stderr
    plan = planned_jobs(proc.stdout + proc.stderr)
    for rule in (*STAGES, "reproduction", "summary"):
        assert plan.get(rule, 0) >= 1, rule


def test_bad_config_names_the_key(configured, run_snakemake):
    bad = configured / "config" / "bad.yaml"
    bad.write_text((configured / "config" / "test.yaml").read_text() + "n_binz: 3\n")
    proc = run_snakemake(configured, "--cores", "1", "-n", "--configfile", str(bad))
    assert proc.returncode != 0 and "n_binz" in proc.stdout + proc.stderr


def test_small_config_builds_the_paper(workflow_run, test_run):
    assert sorted(p.name for p in workflow_run.iterdir() if not p.name.startswith(".")) == [
        "config", "runs"
    ]  # fmt: skip
    paper = test_run / "paper"
    for name in ("headline", "methods_summary", "temperature", "methods_arc_easy"):
        for suffix in (".csv", ".md", ".tex"):
            assert (paper / "tables" / f"{name}{suffix}").is_file(), name + suffix
    assert list((paper / "figures").glob("*.pdf")) and list((paper / "figures").glob("*.png"))
    tuning = test_run / "results" / "tuning" / "smollm2-135m"
    assert (tuning / "arc_easy.json").is_file()
    html = (paper / "paper.html").read_text()
    assert "<table>" in html and "over-estimates success on code generation" in html
    collections = test_run / "results" / "collect" / "smollm2-135m"
    runtime = {c: json.loads((collections / c / "manifest.json").read_text())["model"]["runtime"]
               for c in ("arc_easy/answers", "triviaqa/answers", "triviaqa/followup")}  # fmt: skip
    assert runtime == {"arc_easy/answers": "hf", "triviaqa/answers": "llamacpp",
                       "triviaqa/followup": "hf"}  # scoring_runtime: hf  # fmt: skip
    manifest = (test_run / "results" / "manifest.json").read_text()
    assert '"commit"' in manifest and "config_sha256" in manifest
    assert set(json.loads(manifest)["runtimes"]["smollm2-135m"]) == {"hf", "llamacpp"}
    summary = (test_run / "summary.md").read_text()
    assert "runs/test/paper/paper.html" in summary and "| smollm2-135m | arc_easy" in summary
    assert "names no reference tables" in summary


def test_second_run_does_nothing_and_says_so(workflow_run, run_snakemake):
    proc = run_snakemake(workflow_run, "--cores", "2", "--configfile", "config/test.yaml")
    assert proc.returncode == 0
    assert "nothing to be done: run 'test' (runs/test) is up to date" in proc.stderr
    assert "runs/test/paper/paper.html" in proc.stderr  # the run's summary, shown again


def _planned_after_editing(module: Path, workflow_run: Path, run_snakemake) -> list[str]:
    """Snakemake's own listing (lines) of the jobs a dry run plans after `module` is edited.
    Snakemake reruns on content changes (an input newer by mtime alone, with the same content,
    does not count), so the source is edited and put back afterwards."""
    original, stat = module.read_bytes(), module.stat()
    try:
        module.write_bytes(original + b"\n# edited by a test\n")
        proc = run_snakemake(
            workflow_run, "--cores", "2", "--configfile", "config/test.yaml", "-n",
            "--workflow-profile", "none",
        )  # fmt: skip
    finally:
        module.write_bytes(original)
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _methods_planned(lines: list[str]) -> set[str]:
    return {line.split("method=")[1].split(",")[0].strip() for line in lines if "method=" in line}


def test_editing_one_method_reruns_only_its_jobs_and_the_paper(
    workflow_run, run_snakemake, repo_root
):
    platt = repo_root / "calibbench" / "recalibration" / "methods" / "platt.py"
    lines = _planned_after_editing(platt, workflow_run, run_snakemake)
    jobs = {line.split()[1].rstrip(":") for line in lines if line.startswith("rule ")}
    assert jobs == {
        "recalibrate",
        "compare",
        "paper_tables",
        "paper_figures",
        "paper_document",
        "summary",
        "all",
    }
    assert _methods_planned(lines) == {"platt"}


def test_editing_a_shared_module_reruns_the_methods_that_use_it(
    workflow_run, run_snakemake, repo_root
):
    recalibration = repo_root / "calibbench" / "recalibration"
    # The constant fallback of degenerate data: every scalar calibrator but the raw confidence.
    lines = _planned_after_editing(recalibration / "degenerate.py", workflow_run, run_snakemake)
    assert _methods_planned(lines) == {"platt", "isotonic", "histogram", "beta"}
    # The logistic fit: Platt scaling and beta calibration only.
    lines = _planned_after_editing(recalibration / "logistic.py", workflow_run, run_snakemake)
    assert _methods_planned(lines) == {"platt", "beta"}
    # The metrics every method is scored with: all of them.
    metrics = repo_root / "calibbench" / "metrics" / "scores.py"
    lines = _planned_after_editing(metrics, workflow_run, run_snakemake)
    assert _methods_planned(lines) == set(all_methods())


TOY_METHOD = '''"""A toy method written by a test: the confidence moved towards the accuracy."""

from typing import Any, ClassVar

import numpy as np

from calibbench.recalibration.base import ScalarCalibrator


class ToyShift(ScalarCalibrator):
    name = "toy_shift"
    learned: ClassVar[tuple[str, ...]] = ("shift",)

    def _params(self) -> dict[str, Any]:
        return {}

    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        self.shift_ = float(correct.mean() - confidence.mean())

    def _predict(self, confidence: np.ndarray) -> np.ndarray:
        return confidence + self.shift_
'''


def test_a_new_method_module_is_all_it_takes(tmp_path, run_snakemake, repo_root):
    # A method is its module (and its tests): dropped into calibbench/recalibration/methods/, it
    # is allowed by the schema, planned by the DAG and shown in the paper's tables.
    module = repo_root / "calibbench" / "recalibration" / "methods" / "toy_shift.py"
    config = yaml.safe_load((repo_root / "config" / "test.yaml").read_text())
    config |= {"name": "toy", "methods": ["raw", "platt", "toy_shift"], "bootstrap_resamples": 50,
               "tasks": {"arc_easy": {"spec": {"task": "arc_easy"}, "limit": 12}}}  # fmt: skip
    config.pop("calibration_tuning")
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(config))
    refused = run_snakemake(tmp_path, "--cores", "2", "-n", "--configfile", "toy.yaml")
    output = refused.stdout + refused.stderr  # a dry run's display goes to stdout
    assert refused.returncode != 0 and "methods.2: 'toy_shift' is not one of" in output
    try:
        module.write_text(TOY_METHOD)
        proc = run_snakemake(tmp_path, "--cores", "2", "--configfile", "toy.yaml")
    finally:
        module.unlink()
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "toy" / "paper" / "tables" / "methods_arc_easy.csv")
    toy = table[table.method == "toy_shift"]
    assert len(toy) == 2 and toy["ece"].notna().all()  # both signals, fitted and scored
    summary = pd.read_csv(tmp_path / "runs" / "toy" / "paper" / "tables" / "methods_summary.csv")
    assert "toy_shift" in set(summary.method)


def test_reproduction_check_passes_and_catches_a_change(
    workflow_run, test_run, run_snakemake, tmp_path
):
    reference = shutil.copytree(test_run / "paper" / "tables", tmp_path / "reference")
    # The target comes first: `--configfile` takes every following word as a file.
    args = ("reproduce", "--cores", "2", "--configfile", "config/test.yaml",
            "--config", f"reference={reference}")  # fmt: skip
    proc = run_snakemake(workflow_run, *args)
    assert proc.returncode == 0, proc.stderr
    report = test_run / "reproduce" / "report.md"
    assert "All tables agree" in report.read_text()
    table = reference / "headline.csv"
    lines = table.read_text().splitlines()
    header, row = lines[0].split(","), lines[1].split(",")
    row[header.index("ece")] = "0.999"
    table.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    proc = run_snakemake(workflow_run, *args)
    assert proc.returncode != 0  # and the log says which entry differs
    log = (test_run / "logs" / "paper" / "reproduce.log").read_text()
    assert "headline.csv row 0 `ece`" in log
    assert "FAILED: reproduce" in proc.stderr and "headline.csv row 0 `ece`" in proc.stderr
