"""Shared fixtures: one end-to-end workflow run on config/test.yaml, reused by the workflow,
paper and notebook tests; a fresh copy of the repository; reading the workflow's display."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAN = re.compile(r"calibbench: run '(?P<name>[^']+)' \((?P<dir>[^)]+)\) (would run|runs) "
                  r"(?P<total>\d+) jobs: (?P<stages>.*)")  # fmt: skip


def planned_jobs(output: str) -> dict[str, int]:
    """Jobs per rule from the progress display's plan line ({} when nothing is planned)."""
    match = PLAN.search(output)
    if match is None:
        return {}
    stages = (part.rsplit(" ", 1) for part in match["stages"].split(", "))
    return {rule: int(count) for rule, count in stages}


def fresh_copy(destination: Path) -> Path:
    """The repository's tracked files, as in the working tree, copied to `destination` (what a
    fresh clone of this commit holds, committed paper/ included)."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def snakemake(workdir: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in `workdir` (relative --configfile paths are read there,
    as for a user who runs snakemake in that directory)."""
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run(
        [str(exe), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        cwd=workdir,
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


@pytest.fixture(scope="session")
def test_run(workflow_run: Path) -> Path:
    """The run directory of config/test.yaml inside `workflow_run`."""
    return workflow_run / "runs" / "test"
