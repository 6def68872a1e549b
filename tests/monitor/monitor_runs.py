"""Small run directories for the monitor's tests, and the `calibbench monitor` command line.

`write_run` lays out what the workflow writes and the monitor reads (results/manifest.json,
results/tasks/<task>/task.json, results/graded/<model>/<task>.parquet); `answers` draws graded
items; `calibbench` runs the command line in-process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibbench import cli

DATASET = {
    "name": "arc_easy",
    "subset": None,
    "split": "validation",
    "licence": "CC BY-SA 4.0",
    "sha256": "0" * 64,
}


def answers(
    n: int, seed: int, slope: float = 0.8, shift: float = 0.0, ids: int = 0
) -> pd.DataFrame:
    """n graded items: confidence ~ Beta(5, 1.5), correct with probability slope * c + 0.1 -
    shift; item ids ids .. ids + n - 1."""
    rng = np.random.default_rng(seed)
    c = rng.beta(5.0, 1.5, n)
    correct = rng.uniform(size=n) < np.clip(slope * c + 0.1 - shift, 0.0, 1.0)
    return pd.DataFrame(
        {
            "item_id": [f"item/{i}" for i in range(ids, ids + n)],
            "correct": correct,
            "confidence": c,
            "confidence_token_norm": np.clip(c + rng.normal(0, 0.05, n), 0, 1),
        }
    )


def write_run(
    run: Path,
    graded: Mapping[tuple[str, str], pd.DataFrame],
    config: dict[str, Any] | None = None,
    datasets: Mapping[str, dict[str, Any]] | None = None,
) -> Path:
    """A run directory `run` whose results hold `graded` per (model, task); returns `run`."""
    results = run / "results"
    for (model, task), frame in graded.items():
        path = results / "graded" / model / f"{task}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        info = {
            "task": task,
            "kind": "multiple_choice",
            "n_items": len(frame),
            "dataset": dict((datasets or {}).get(task, DATASET)),
        }
        (results / "tasks" / task).mkdir(parents=True, exist_ok=True)
        (results / "tasks" / task / "task.json").write_text(json.dumps(info))
    models = {m: {"sha256": "a" * 64} for m, _ in graded}
    manifest = {"config": config or {"n_bins": 10, "seed": 0}, "models": models}
    (results / "manifest.json").write_text(json.dumps(manifest))
    return run


def calibbench(*argv: str) -> int:
    """`calibbench *argv` in-process; its exit status."""
    try:
        return cli.main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
