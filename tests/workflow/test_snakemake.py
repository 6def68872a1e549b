"""The Snakemake workflow: the default config plans, runs, and re-runs nothing the second time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run(
        [str(exe), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


def test_dry_run_plans_every_record_set(workdir):
    proc = snakemake(workdir, "--cores", "2", "-n")
    assert proc.returncode == 0, proc.stderr
    assert "answer_metrics" in proc.stdout and "synthetic_records" in proc.stdout


def test_default_job_runs_and_second_run_does_nothing(workdir):
    proc = snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr
    out = sorted((workdir / "results" / "metrics").glob("*.json"))
    assert [p.stem for p in out] == ["synthetic-calibrated", "synthetic-overconfident"]
    calibrated, over = (json.loads(p.read_text())["metrics"] for p in out)
    assert over["overconfidence"]["low"] > 0.05 > calibrated["overconfidence"]["high"]
    again = snakemake(workdir, "--cores", "2", "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_names_the_key(workdir):
    bad = workdir / "config" / "bad.yaml"
    bad.write_text((workdir / "config" / "default.yaml").read_text() + "n_binz: 3\n")
    proc = snakemake(workdir, "--cores", "1", "-n", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "n_binz" in proc.stdout + proc.stderr
