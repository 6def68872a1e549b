"""The workflow's `monitor:` keys on two real tiny runs of the built-in model (arc_easy in the
cloze and in the letter prompt): the second run is compared with the first, its paper gains
"Change since the baseline", the first keeps a dated history with a dashboard, and the paired
intervals equal a brute-force bootstrap written here; bad keys fail at start-up."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.model

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
BASE = {
    "seed": 0,
    "n_bins": 10,
    "bootstrap_resamples": 200,
    "ci_level": 0.9,
    "calibration_fraction": 0.5,
    "temperatures": [0.7, 1.0],
    "methods": ["raw"],
    "collect_chunk_size": 8,
    "models": {
        "smollm2-135m": {"spec": {"runtime": "llamacpp", "builtin": "smollm2-135m", "n_ctx": 1024}}
    },
}


def _config(workdir: Path, name: str, fmt: str, monitor: dict) -> str:
    tasks = {"arc_easy": {"spec": {"task": "arc_easy", "format": fmt}, "limit": 30}}
    config = BASE | {"name": name, "tasks": tasks, "monitor": monitor}
    (workdir / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return f"{name}.yaml"


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--cores", "2", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/cloze (with history) and then runs/letter, compared with runs/cloze."""
    workdir = tmp_path_factory.mktemp("monitor")
    first = _config(workdir, "cloze", "cloze", {"history": True})
    proc = _snakemake(workdir, "--configfile", first)
    assert proc.returncode == 0, proc.stdout[-4000:]
    monitor = {"baseline": "runs/cloze", "thresholds": {"ece": 0.01, "accuracy": 0.01}}
    second = _config(workdir, "letter", "letter", monitor)
    proc = _snakemake(workdir, "--configfile", second)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return workdir


def _ece(c: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    total = 0.0
    for b in range(n_bins):
        inside = (c >= b / n_bins) & ((c < (b + 1) / n_bins) | ((b == n_bins - 1) & (c == 1.0)))
        if inside.any():
            total += inside.sum() / c.size * abs(y[inside].mean() - c[inside].mean())
    return total


def _auroc(c: np.ndarray, y: np.ndarray) -> float:
    return roc_auc_score(y, c) if 0 < y.sum() < y.size else np.nan


def test_the_paired_intervals_equal_a_brute_force_bootstrap(two_runs: Path):
    comparison = json.loads((two_runs / "runs/letter/monitor/comparison.json").read_text())
    rows = pd.DataFrame(comparison["rows"])
    assert set(rows.pairing) == {"paired"}
    base = pd.read_parquet(two_runs / "runs/cloze/results/graded/smollm2-135m/arc_easy.parquet")
    new = pd.read_parquet(two_runs / "runs/letter/results/graded/smollm2-135m/arc_easy.parquet")
    assert set(base.item_id) == set(new.item_id) and len(base) == 30
    metrics = {
        "ece": lambda c, y: _ece(c, y, 10),
        "brier": lambda c, y: np.mean((c - y) ** 2),
        "accuracy": lambda c, y: y.mean(),
        "auroc": _auroc,
    }
    for signal, part in rows.groupby("signal"):
        a = base.set_index("item_id")[[signal, "correct"]]
        b = new.set_index("item_id")[[signal, "correct"]]
        items = a.index[np.isfinite(a[signal])].intersection(b.index[np.isfinite(b[signal])])
        a, b = a.loc[items.sort_values()], b.loc[items.sort_values()]
        ca, ya = a[signal].to_numpy(float), a["correct"].to_numpy(float)
        cb, yb = b[signal].to_numpy(float), b["correct"].to_numpy(float)
        # the documented draws: one (R, n) block of item indices shared by both runs
        draws = np.random.default_rng(0).integers(0, len(items), size=(200, len(items)))
        for r in part.itertuples():
            if r.change is None:
                continue
            f = metrics[r.metric]
            diffs = [f(cb[i], yb[i]) - f(ca[i], ya[i]) for i in draws]
            diffs = [d for d in diffs if not np.isnan(d)]
            low, high = np.quantile(diffs, [0.05, 0.95])
            assert r.n_new == len(items)
            assert r.change == pytest.approx(f(cb, yb) - f(ca, ya), abs=1e-9), (signal, r.metric)
            assert (r.low, r.high) == pytest.approx((low, high), abs=1e-9), (signal, r.metric)
    assert 'tasks.arc_easy.spec.format: "cloze" -> "letter"' in comparison["differences"]


def test_the_paper_shows_the_change_only_where_a_baseline_is_set(two_runs: Path):
    letter = (two_runs / "runs/letter/paper/paper.md").read_text()
    assert "## Change since the baseline" in letter and "runs/cloze" in letter
    assert "paired, " in letter
    html = (two_runs / "runs/letter/paper/paper.html").read_text()
    assert "Change since the baseline" in html
    assert "Change since the baseline" not in (two_runs / "runs/cloze/paper/paper.md").read_text()


def test_a_run_with_history_keeps_a_dated_entry_and_a_dashboard(two_runs: Path):
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    entries = sorted(p.name for p in (two_runs / "runs/cloze/history").iterdir())
    assert entries == [today]
    entry = two_runs / "runs/cloze/history" / today / "results"
    assert (entry / "graded/smollm2-135m/arc_easy.parquet").is_file()
    assert (entry / "manifest.json").is_file()
    assert "<svg" in (two_runs / "runs/cloze/dashboard.html").read_text()
    assert not (two_runs / "runs/letter/history").exists()


@pytest.mark.parametrize(
    ("monitor", "message"),
    [
        ({"baseline": "runs/nowhere"}, "monitor.baseline: runs/nowhere holds no graded items"),
        ({"baseline": "runs/letter"}, "monitor.baseline: runs/letter is this run's own"),
        ({"thresholds": {"ece": -0.1}}, "monitor.thresholds.ece: -0.1 is less than or equal"),
        ({"thresholds": {"ecee": 0.1}}, "monitor.thresholds: Additional properties"),
    ],
)
def test_bad_monitor_keys_fail_at_start_up_naming_the_key(two_runs: Path, monitor, message):
    name = _config(two_runs, "letter", "letter", monitor)
    proc = _snakemake(two_runs, "-n", "--configfile", name)
    assert proc.returncode != 0 and message in proc.stdout, proc.stdout[-3000:]


def test_a_baseline_of_other_models_and_tasks_is_refused_at_start_up(two_runs: Path):
    tasks = {"openbookqa": {"spec": {"task": "openbookqa"}, "limit": 4}}
    config = BASE | {"name": "other", "monitor": {"baseline": "runs/cloze"}, "tasks": tasks}
    (two_runs / "other.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake(two_runs, "-n", "--configfile", "other.yaml")
    assert proc.returncode != 0
    assert "monitor.baseline: runs/cloze shares no model x task" in proc.stdout, proc.stdout[-3000:]
