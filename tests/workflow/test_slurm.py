"""The workflow on a real (throw-away, single-node) SLURM cluster through Snakemake's SLURM
executor and the repository's profile: the same files as a local run, the GPU request reaching
the scheduler, and a failing job failing the run in bounded time.

Skipped, with the reason, where the cluster cannot be started (not root, not Debian, a SLURM
configuration of the machine's own): see tools/slurm_cluster.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
#: Wall-clock bound of one workflow run on the cluster (killed with its process tree after it).
RUN_TIMEOUT_S = 900


def _load_cluster_module():
    spec = importlib.util.spec_from_file_location("slurm_cluster", ROOT / "tools/slurm_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slurm_cluster = _load_cluster_module()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = slurm_cluster.unavailable()
    if reason:
        pytest.skip(f"no throw-away SLURM cluster on this machine: {reason}")
    cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"), gpus=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _workdir(path: Path, config: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "config" / "cluster_test.yaml").read_text()
    (path / "cluster_test.yaml").write_text(text if config is None else yaml.safe_dump(config))
    return path


def _snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A bounded run: `timeout -k` kills Snakemake and what it started if it outlives the
    bound (Snakemake waits for running jobs on SIGTERM)."""
    return subprocess.run(
        ["timeout", "-k", "30", str(RUN_TIMEOUT_S), SNAKEMAKE, "--snakefile",
         str(ROOT / "Snakefile"), "--configfile", "cluster_test.yaml", *args],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _on_slurm(workdir: Path, cluster, *args: str) -> subprocess.CompletedProcess:
    # --cores: the CPUs of each cluster job (the profile's 4 exceed the test node's 2)
    return _snakemake(
        workdir, "--profile", str(ROOT / "profiles" / "slurm"), "--jobs", "4", "--cores", "2",
        *args, env=cluster.env,
    )  # fmt: skip


def _files(run: Path) -> dict[str, bytes]:
    """Every result and paper file of a run, but the timings (wall times differ by nature)."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file()
        and p.name != "timing.parquet"
        and "logs" not in p.parts
        and p.name != "source.json"
    }


def test_a_run_on_slurm_equals_the_local_run(cluster, tmp_path):
    local = _workdir(tmp_path / "local")
    proc = _snakemake(local, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:]
    remote = _workdir(tmp_path / "slurm")
    proc = _on_slurm(remote, cluster)
    assert proc.returncode == 0, proc.stdout[-5000:] + cluster.logs()
    ours, theirs = _files(local / "runs" / "cluster_test"), _files(remote / "runs" / "cluster_test")
    assert sorted(ours) == sorted(theirs)
    assert any(name.startswith("paper/tables/") for name in ours)
    different = [name for name in ours if ours[name] != theirs[name]]
    assert not different
    # What the scheduler ran: the heavy jobs with their requests; the light rules stayed local.
    jobs = subprocess.run(
        ["squeue", "--states=all", "-h", "-O", "Comment:100,tres-per-job:40,tres-alloc:80"],
        capture_output=True, text=True, env=cluster.env, check=True,
    ).stdout.splitlines()  # fmt: skip
    jobs = [j for j in jobs if j.startswith("rule_")]  # not the cluster's smoke job
    collect = [j for j in jobs if j.startswith("rule_collect")]
    assert len(collect) == 3  # arc_easy and triviaqa answers, triviaqa's P(True) follow-up
    assert all("gres:gpu:1" in j and "cpu=2," in j for j in collect), collect
    assert not [j for j in jobs if j.startswith(("rule_paper", "rule_split", "rule_prepare"))]
    # besides: 2 gradings, and the recalibrations (a job per method) with their 7 comparisons
    # in one group job
    assert len(jobs) == 6, jobs


def test_a_failing_job_fails_the_run_in_bounded_time(cluster, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)  # passes the start-up check, cannot be loaded
    config = yaml.safe_load((ROOT / "config" / "cluster_test.yaml").read_text())
    config["models"]["smollm2-135m"]["spec"] = {"runtime": "llamacpp", "path": str(broken)}
    workdir = _workdir(tmp_path / "failing", config)
    proc = _on_slurm(workdir, cluster)
    assert proc.returncode not in (0, 124, 137), proc.stdout[-3000:]  # failed, not timed out
    assert "FAILED: collect model=smollm2-135m" in proc.stdout
    assert "runs/cluster_test/logs/collect/smollm2-135m/" in proc.stdout


def test_the_cluster_script_stops_every_daemon(cluster):
    # Last in this file: stops the module's cluster (its fixture's stop is then a no-op).
    pid_files = cluster.pid_files()
    assert len(pid_files) == 3
    pids = [int(f.read_text().split()[0]) for f in pid_files]
    cluster.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    assert not slurm_cluster.DEFAULT_CONF.exists()
