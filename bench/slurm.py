"""What SLURM costs the workflow: a throw-away single-node cluster (tools/slurm_cluster.py) against
a local run of the same configuration, in one run of this script.

Measured: the cluster's start time; the wall time of config/cluster_test.yaml with
`snakemake --cores 2` and through `--profile profiles/slurm` (same machine, one after the other);
the number of cluster jobs; the turnaround of an empty `sbatch` job (submission to completion as
squeue sees it); and the overhead SLURM adds per cluster job, (SLURM wall - local wall) / jobs.

    sudo python bench/slurm.py            # writes bench/results/slurm.md and .json
    sudo python bench/slurm.py --quick    # the cluster and one empty job only; writes nothing
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _cluster_module():
    spec = importlib.util.spec_from_file_location("slurm_cluster", ROOT / "tools/slurm_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def empty_job_seconds(cluster, repeats: int) -> list[float]:
    """Submission-to-completion seconds of `repeats` empty jobs, one after the other."""
    out = []
    for _ in range(repeats):
        start = time.monotonic()
        job = subprocess.run(["sbatch", "--parsable", "--wrap", "true", "-o", "/dev/null"],
                             capture_output=True, text=True, check=True,
                             env=cluster.env).stdout.strip()  # fmt: skip
        while True:
            state = subprocess.run(
                ["squeue", "--states=all", "-h", "-j", job, "-o", "%T"], capture_output=True,
                text=True, env=cluster.env,
            ).stdout  # fmt: skip
            if state.strip() in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.05)
        out.append(time.monotonic() - start)
    return out


def workflow_seconds(workdir: Path, *args: str, env: dict | None = None) -> float:
    workdir.mkdir(parents=True)
    shutil.copy(ROOT / "config" / "cluster_test.yaml", workdir)
    start = time.monotonic()
    subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--configfile",
                    "cluster_test.yaml", *args], cwd=workdir, env=env, check=True,
                   capture_output=True, timeout=1800)  # fmt: skip
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="cluster and one job; no results")
    args = parser.parse_args()
    slurm = _cluster_module()
    reason = slurm.unavailable()
    if reason:
        raise SystemExit(f"no throw-away SLURM cluster here: {reason}")
    with tempfile.TemporaryDirectory(prefix="calibbench-slurm-") as tmp:
        cluster = slurm.Cluster(Path(tmp) / "cluster", gpus=1)
        start = cluster.start()
        try:
            empty = empty_job_seconds(cluster, 1 if args.quick else 5)
            rows = [{"what": "cluster start (install, munge, slurmctld, slurmd, smoke job)",
                     "seconds": start},
                    {"what": "empty sbatch job, submission to completion (median)",
                     "seconds": sorted(empty)[len(empty) // 2]}]  # fmt: skip
            if not args.quick:
                local = workflow_seconds(Path(tmp) / "local", "--cores", "2")
                remote = workflow_seconds(
                    Path(tmp) / "slurm", "--profile", str(ROOT / "profiles" / "slurm"),
                    "--jobs", "4", "--cores", "2", env=cluster.env,
                )  # fmt: skip
                jobs = subprocess.run(["squeue", "--states=all", "-h", "-o", "%k"],
                                      capture_output=True, text=True, env=cluster.env
                                      ).stdout.split()  # fmt: skip
                n_jobs = sum(j.startswith("rule_") for j in jobs)
                rows += [
                    {"what": "config/cluster_test.yaml, snakemake --cores 2", "seconds": local},
                    {"what": f"the same through profiles/slurm ({n_jobs} cluster jobs)",
                     "seconds": remote, "ratio": remote / local},
                    {"what": "overhead per cluster job, (SLURM - local) / jobs",
                     "seconds": (remote - local) / n_jobs},
                ]  # fmt: skip
        finally:
            cluster.stop()
    table = markdown_table(rows, ("what", "seconds", "ratio"))
    print(table)
    if not args.quick:
        notes = (
            "A single-node SLURM 22.05 cluster started by tools/slurm_cluster.py on this machine "
            "(no accounting; squeue status), and the tiny configuration run locally and through "
            "the repository's SLURM profile, one after the other. The cluster jobs run one at a "
            "time on its 2 CPUs, as each asks for 2."
        )
        write_results("slurm", table, {"machine": machine_info(), "rows": rows}, notes)


if __name__ == "__main__":
    main()
