"""Shared fixtures: one end-to-end workflow run on config/test.yaml, reused by the workflow,
paper and notebook tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in `workdir`."""
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run(
        [str(exe), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def run_snakemake():
    """`snakemake(workdir, *args)`: the repository's Snakefile run in `workdir`."""
    return snakemake


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory where `snakemake --cores 2` ran config/test.yaml to the built paper."""
    workdir = tmp_path_factory.mktemp("workflow")
    shutil.copytree(ROOT / "config", workdir / "config")
    proc = snakemake(workdir, "--cores", "2", "--configfile", "config/test.yaml")
    if proc.returncode != 0:
        logs = "\n".join(p.read_text()[-1500:] for p in sorted(workdir.glob("logs/**/*.log"))[-3:])
        pytest.fail(f"workflow failed:\n{proc.stderr[-3000:]}\n{logs}")
    return workdir
