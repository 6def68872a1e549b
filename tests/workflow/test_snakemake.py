"""The workflow: validated config, the full DAG on a small config, caching, reproduction check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import planned_jobs

pytestmark = pytest.mark.model


@pytest.fixture()
def configured(tmp_path: Path, repo_root: Path) -> Path:
    shutil.copytree(repo_root / "config", tmp_path / "config")
    return tmp_path


STAGES = ("prepare", "collect", "collect_followup", "grade", "split", "recalibrate", "compare",
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
    manifest = (test_run / "results" / "manifest.json").read_text()
    assert '"commit"' in manifest and "config_sha256" in manifest
    summary = (test_run / "summary.md").read_text()
    assert "runs/test/paper/paper.html" in summary and "| smollm2-135m | arc_easy" in summary
    assert "names no reference tables" in summary


def test_second_run_does_nothing_and_says_so(workflow_run, run_snakemake):
    proc = run_snakemake(workflow_run, "--cores", "2", "--configfile", "config/test.yaml")
    assert proc.returncode == 0
    assert "nothing to be done: run 'test' (runs/test) is up to date" in proc.stderr
    assert "runs/test/paper/paper.html" in proc.stderr  # the run's summary, shown again


def test_editing_one_method_reruns_only_its_jobs_and_the_paper(
    workflow_run, run_snakemake, repo_root
):
    # Snakemake reruns on content changes (an input newer by mtime alone, with the same content,
    # does not count), so the test edits the method's source and puts it back afterwards.
    code = repo_root / "calibbench" / "recalibration" / "platt.py"
    original, stat = code.read_bytes(), code.stat()
    try:
        code.write_bytes(original + b"\n# edited by a test\n")
        proc = run_snakemake(
            workflow_run, "--cores", "2", "--configfile", "config/test.yaml", "-n",
            "--workflow-profile", "none",  # Snakemake's own listing of the planned jobs
        )  # fmt: skip
    finally:
        code.write_bytes(original)
        os.utime(code, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
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
    planned = [line for line in lines if "method=" in line]
    assert planned and all("method=platt" in line for line in planned)


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
