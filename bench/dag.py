"""The default run's throughput before and after a change: the whole workflow of two commits, one
after the other on the same machine, each in a fresh git worktree with its own default
configuration, timed as a user runs it (`snakemake --cores N`).

Measured per commit: the wall time, the items scored (rows of every graded table: one item
answered by one model), items per minute of wall time, and by stage the number of jobs and the
seconds their jobs took (summed over jobs, read from Snakemake's log: one-second resolution) and
the stage's span (first start to last finish). Both runs share the machine's caches (the
transformers conversions of the built-in GGUF files under ~/.cache/calibbench: a fresh machine
pays about 95 s once for them).

    python bench/dag.py --before 1ee3399            # writes bench/results/dag.md and .json
    python bench/dag.py --before 1ee3399 --quick    # one prepare job each; writes nothing

The "after" commit (default HEAD) must be committed: uncommitted edits are not measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]
#: --quick: one small job (preparing HumanEval's 20 items) instead of the whole run.
QUICK_TARGET = "runs/default/results/tasks/humaneval/task.json"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

#: Rule -> stage of the data flow (collect -> confidences -> recalibrate -> metrics -> paper).
STAGES = {
    "prepare": "prepare and split",
    "split": "prepare and split",
    "collect": "collect",
    "followup_requests": "collect",
    "grade": "grade",
    "recalibrate": "recalibrate",
    "calibration_tuning": "calibration-tuning",
}
_START = re.compile(r"^\[(?P<when>[A-Z][a-z]{2} [A-Z][a-z]{2} +\d+ [\d:]+ \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>\w+):$")
_JOBID = re.compile(r"^\s+jobid: (?P<id>\d+)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (?P<wc>.*)$")
_FINISHED = re.compile(r"^Finished job(?:id)?:? (?P<id>\d+)")


def stage_of(rule: str, wildcards: str) -> str:
    if rule == "collect" and "requests=followup" in wildcards:
        return "collect (P(True) follow-up)"
    if rule == "followup_requests":
        return "collect (P(True) follow-up)"
    return STAGES.get(rule, "metrics and paper")


def parse_log(text: str) -> list[dict[str, Any]]:
    """Jobs of a Snakemake log: rule, stage, start and end (datetime), seconds."""
    jobs: dict[str, dict[str, Any]] = {}
    when: datetime | None = None
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        if m := _START.match(line):
            when = datetime.strptime(" ".join(m["when"].split()), "%a %b %d %H:%M:%S %Y")
            current = None
        elif (m := _RULE.match(line)) and when is not None:
            current = {"rule": m["rule"], "start": when, "wildcards": ""}
        elif current is not None and (m := _WILDCARDS.match(line)):
            current["wildcards"] = m["wc"]
        elif current is not None and (m := _JOBID.match(line)):
            jobs[m["id"]] = current
        elif (m := _FINISHED.match(line)) and when is not None and m["id"] in jobs:
            jobs[m["id"]]["end"] = when
    out = []
    for job in jobs.values():
        if "end" in job:
            job["stage"] = stage_of(job["rule"], job["wildcards"])
            job["seconds"] = (job["end"] - job["start"]).total_seconds()
            out.append(job)
    return out


def by_stage(jobs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        groups[job["stage"]].append(job)
    return {
        stage: {
            "jobs": len(js),
            "job_seconds": sum(j["seconds"] for j in js),
            "span_seconds": (max(j["end"] for j in js) - min(j["start"] for j in js)).total_seconds(),
        }
        for stage, js in groups.items()
    }


def items_scored(run_dir: Path) -> int:
    """Rows of every graded table of the run (one item answered by one model)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in run_dir.glob("results/graded/*/*.parquet"))


def run_commit(label: str, rev: str, cores: int, quick: bool, keep: Path | None) -> dict[str, Any]:
    """Check out `rev` in a fresh worktree and run its default workflow; the measurements."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    tree = (keep or Path("/tmp")) / f"calibbench-dag-{label}"
    if tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)])
        shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
                   check=True, capture_output=True)  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(tree)}  # that commit's package, not the installed one
    cmd = [SNAKEMAKE, "--cores", str(cores)] + ([QUICK_TARGET] if quick else [])
    print(f"{label}: {commit[:10]} in {tree}: {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{label}: the workflow failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    (log,) = sorted((tree / ".snakemake" / "log").glob("*.snakemake.log"))[-1:]
    jobs = parse_log(log.read_text())
    items = items_scored(tree / "runs" / "default")
    result = {"label": label, "commit": commit, "wall_seconds": wall, "items": items,
              "items_per_minute": items / (wall / 60), "stages": by_stage(jobs),
              "jobs": len(jobs), "tree": str(tree)}  # fmt: skip
    if keep is None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)])
    return result


def table(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    order = ["prepare and split", "collect", "collect (P(True) follow-up)", "grade",
             "recalibrate", "calibration-tuning", "metrics and paper"]  # fmt: skip
    for stage in order + sorted((set(before["stages"]) | set(after["stages"])) - set(order)):
        b, a = before["stages"].get(stage), after["stages"].get(stage)
        if not (a or b):
            continue
        row = {"stage": stage}
        for name, s in (("before", b), ("after", a)):
            row[f"{name} jobs"] = s["jobs"] if s else 0
            row[f"{name} job-s"] = s["job_seconds"] if s else 0.0
        if b and a and a["job_seconds"] > 0:
            row["speed-up"] = b["job_seconds"] / a["job_seconds"]
        rows.append(row)
    rows.append({
        "stage": "whole run (wall)", "before jobs": before["jobs"], "after jobs": after["jobs"],
        "before job-s": before["wall_seconds"], "after job-s": after["wall_seconds"],
        "speed-up": before["wall_seconds"] / after["wall_seconds"],
    })  # fmt: skip
    rows.append({
        "stage": "items per minute", "before job-s": before["items_per_minute"],
        "after job-s": after["items_per_minute"],
        "speed-up": (after["items_per_minute"] / before["items_per_minute"]
                     if before["items_per_minute"] else None),
    })  # fmt: skip
    columns = ["stage", "before jobs", "before job-s", "after jobs", "after job-s", "speed-up"]
    return markdown_table(rows, columns), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="commit of the run to compare against")
    parser.add_argument("--after", default="HEAD", help="commit measured (default HEAD)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one prepare job each; no files")
    parser.add_argument("--keep", type=Path, help="keep the worktrees (and their runs) here")
    args = parser.parse_args()
    # The commit measured first, so that a broken workflow shows before the long reference run.
    after = run_commit("after", args.after, args.cores, args.quick, args.keep)
    before = run_commit("before", args.before, args.cores, args.quick, args.keep)
    text, rows = table(before, after)
    print(text)
    print(f"items scored: before {before['items']}, after {after['items']}")
    if args.quick:
        return
    notes = f"""`python bench/dag.py --before {args.before} --after {args.after}`: the default
configuration's whole workflow (`snakemake --cores {args.cores}`) at two commits, one after the
other on this machine with nothing else running (the after commit first), each in a fresh worktree with that commit's config/default.yaml.
before: {before['commit'][:10]}, {before['items']} items scored (model x item) in
{before['wall_seconds'] / 60:.1f} min; after: {after['commit'][:10]}, {after['items']} items in
{after['wall_seconds'] / 60:.1f} min. job-s: seconds summed over the stage's jobs (Snakemake's log,
one-second resolution; jobs of a stage may overlap, and a job's threads are not counted);
speed-up: before / after, and for items per minute after / before."""
    write_results("dag", text, {"machine": machine_info(), "before": before, "after": after,
                                "rows": rows}, notes)  # fmt: skip


if __name__ == "__main__":
    main()
