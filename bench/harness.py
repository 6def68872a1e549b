"""Shared pieces of the benchmarks: timing, peak-memory measurement, subprocess workers, tables.

Each measurement runs in a fresh worker process so that one method's allocations cannot hide
another's: the worker loads its inputs, resets the kernel's peak-RSS mark (`/proc/self/clear_refs`),
runs the method, and reports the median wall time and the peak resident memory above what it held
before the first run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(__file__).resolve().parent / ".cache"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Run `fn` `repeats` times; median seconds, all times, peak extra RSS (MiB), last result."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _status_kib("VmRSS")
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    peak = _status_kib("VmHWM")
    return {
        "seconds": statistics.median(times),
        "times": times,
        "peak_extra_mib": (peak - base) / 1024,
        "result": result,
    }


def run_worker(script: Path, args: Sequence[str], timeout: float = 1800) -> dict[str, Any]:
    """Run `python script --worker ...args` and parse the JSON it prints on its last line."""
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy as np

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
            info["cpu"] = next(names)
    except (OSError, StopIteration):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of `rows` restricted to `columns` (missing cells left blank)."""

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, table: str, payload: dict[str, Any], notes: str) -> None:
    """Write bench/results/<name>.md (table and notes) and <name>.json (everything)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(f"# {name}\n\n{notes.strip()}\n\n{table}\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
