"""The benchmarks still run (a smoke run at toy size; their numbers live in bench/results/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_full_ece_benchmark_smoke_run_agrees_with_numpy_plain():
    methods = "floor,calibbench-1T,calibbench-8T,numpy-plain,torchmetrics"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "full_ece.py"), "--quick", "--methods", methods],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split("|") for ln in proc.stdout.splitlines() if ln.startswith("| quick")]
    assert [r[2].strip() for r in rows] == methods.split(",")
    diff = {r[2].strip(): r[8].strip() for r in rows}
    assert float(diff["numpy-plain"]) < 1e-5 and float(diff["torchmetrics"]) < 1e-5
