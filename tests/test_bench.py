"""The benchmarks run (in their --quick mode, which times nothing worth keeping and writes no
results), so they cannot silently rot between the runs that refresh bench/results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(*args: str) -> str:
    results = sorted((BENCH / "results").iterdir())
    before = {p: p.read_bytes() for p in results}
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=900, cwd=BENCH.parent
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted((BENCH / "results").iterdir()) == results
    assert all(p.read_bytes() == data for p, data in before.items())  # quick runs write nothing
    return proc.stdout


def test_full_ece_benchmark_runs():
    out = _run("bench/full_ece.py", "--quick")
    assert "calibbench" in out and "numpy" in out


def test_temperature_benchmark_runs_and_agrees_with_the_exact_fit():
    out = _run("bench/temperature.py", "--quick")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| quick")]
    by_method = {cells[1].strip(): cells for cells in rows}
    assert {"calibbench streamed", "torch LBFGS", "scipy exact"} <= set(by_method)
    failed = {m: cells[-1].strip() for m, cells in by_method.items() if cells[-1].strip()}
    assert not failed, failed
    assert float(by_method["calibbench streamed"][6]) < 1e-3  # |T - T*| / T*


def test_sklearn_reference_benchmark_runs_and_agrees():
    out = _run("bench/sklearn_reference.py", "--quick")
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line.split("|")[1:-1]
            for line in out.splitlines() if line.startswith("| ")}  # fmt: skip
    assert ("logistic fit", "calibbench Newton") in rows
    assert rows[("logistic fit", "newton-cholesky")][4].strip() == "0"  # never below ours
    assert float(rows[("isotonic", "calibbench PAV")][7]) < 1e-12


@pytest.mark.model
def test_collect_benchmark_runs():
    out = _run("bench/collect.py", "--quick", "--runtimes", "llamacpp")
    assert "calibbench collect, 1 temperature" in out


@pytest.mark.model
def test_signal_cost_benchmark_runs_and_costs_every_signal():
    out = _run("bench/signal_cost.py", "--quick")
    rows = [[x.strip() for x in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith(("| triviaqa ", "| humaneval "))]  # fmt: skip
    groups = {(r[0], r[1]): r for r in rows if len(r) == 10}
    assert float(groups[("triviaqa", "greedy")][9]) == 1.0  # x greedy of the answer itself
    assert float(groups[("triviaqa", "samples")][3]) == 3.0  # n_samples calls per item
    assert float(groups[("triviaqa", "ptrue")][6]) > 0  # scored tokens
    costed = {(r[0], r[1]) for r in rows if len(r) == 5}
    assert ("triviaqa", "p_true_reflection") in costed
    assert ("humaneval", "semantic_entropy") in costed


def test_monitor_benchmark_runs_and_agrees_with_pandas():
    out = _run("bench/monitor.py", "--quick")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 200000 ")]
    by_method = {cells[1].strip(): cells for cells in rows}
    assert set(by_method) == {"calibbench streamed", "pandas whole file"}
    assert float(by_method["calibbench streamed"][8]) < 1e-9  # every window's accuracy and ECE
    assert int(by_method["pandas whole file"][9]) == 6  # 180 days in 30-day windows


def test_gpu_benchmark_fails_loudly_without_cuda_and_runs_its_steps_on_the_cpu():
    import torch

    if not torch.cuda.is_available():
        proc = subprocess.run(["bash", str(BENCH / "gpu.sh")], capture_output=True, text=True,
                              timeout=300, cwd=BENCH.parent)  # fmt: skip
        assert proc.returncode == 1
        assert "a CUDA device was expected" in proc.stderr
        assert "Nothing was measured" in proc.stderr
    out = _run("bench/gpu.py", "--device", "cpu", "--quick")
    assert "batch 4 + accumulator" in out
    assert "| collections on cpu | 3 of 3 |" in out
    assert "steps/s" in out


def test_api_benchmark_runs_and_concurrency_keeps_the_completions():
    out = _run("bench/api.py", "--quick")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if "latency" in line]
    assert len(rows) == 3 and all(cells[-1].strip() == "True" for cells in rows)


def test_dag_benchmark_runs_two_commits_and_reads_their_jobs_from_the_logs():
    out = _run("bench/dag.py", "--before", "HEAD", "--after", "HEAD", "--quick")  # a shallow clone
    rows = {c[0]: c for c in ([x.strip() for x in line.split("|")[1:-1]]
                              for line in out.splitlines() if line.startswith("| "))}  # fmt: skip
    assert rows["prepare and split"][1] == rows["prepare and split"][3] == "1"  # jobs
    assert rows["items per minute"][2] == rows["items per minute"][4] == "0"  # nothing graded


def test_lm_eval_scoring_benchmark_runs_and_agrees_with_lm_eval():
    out = _run("bench/lm_eval_scoring.py", "--quick")
    cells = ([x.strip() for x in line.split("|")[1:-1]] for line in out.splitlines()
             if line.startswith("| smollm2"))  # fmt: skip
    rows = {c[1]: c for c in cells}
    (default,) = [m for m in rows if "(default)" in m]
    (full,) = [m for m in rows if m.startswith("calibbench hf float32")]
    # the same weights through transformers in float32: lm-eval's numbers
    assert float(rows[full][5]) < 1e-3
    # the default's bfloat16 body: close, not equal (largest of 16 option sums: 0.57 nats)
    assert 1e-3 < float(rows[default][5]) < 1.0
