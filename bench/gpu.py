"""Benchmark: is calibbench ready for a GPU? Three measurements on one CUDA device (bench/gpu.sh):

1. scoring: transformers in bf16 on the built-in models, batch 1 and 32, with and without the
   token-level accumulator at 3 temperatures: tokens/s and the accumulator's share of a step
   (goal: at most 5 %), as `bench/collect.py` measures it;
2. a tiny workflow run with `gpu: 1` on its model (transformers on CUDA: collection of ARC-Easy and
   TriviaQA, every method, calibration-tuning on ARC-Easy), through `snakemake --resources gpu=1`:
   its wall time and that every collection ran on the device;
3. calibration-tuning: `calibbench tune` on that run's graded ARC-Easy again, timed: LoRA
   training steps per second of the whole command (model load and evaluation included).

    python bench/gpu.py                         # CUDA expected: fails loudly without it
    python bench/gpu.py --device cpu --quick    # the same steps on the CPU, small; writes nothing

Writes bench/results/gpu.{md,json} (not in --quick mode).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect import accumulator_share, texts

from harness import machine_info, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def require_device(device: str) -> None:
    """Exit with a message (status 1) when `device` is "cuda" and torch sees no CUDA device."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        sys.exit(
            f"bench/gpu.py: a CUDA device was expected, but torch {torch.__version__} (CUDA build "
            f"{torch.version.cuda}) sees none; this benchmark needs one GPU (install the CUDA "
            "build of torch==2.13.0 from PyPI, see README). Nothing was measured."
        )


def workflow_config(device: str, quick: bool) -> dict[str, Any]:
    """A tiny run with `gpu: 1` on its one model (transformers on `device`)."""
    batch = 32 if device == "cuda" else 4
    return {
        "name": "gpu", "seed": 0, "n_bins": 15, "bootstrap_resamples": 200 if quick else 1000,
        "ci_level": 0.95, "calibration_fraction": 0.5,
        "temperatures": [0.7, 0.85, 1.0, 1.2, 1.5], "methods": ["raw", "temperature", "platt"],
        "collect_chunk_size": 64,
        "calibration_tuning": {"models": ["smollm2-hf"], "tasks": ["arc_easy"],
                               "epochs": 1 if quick else 2},
        "models": {"smollm2-hf": {"spec": {"runtime": "hf", "builtin": "smollm2-135m",
                                           "device": device, "batch_size": batch},
                                  "gpu": 1}},
        "tasks": {"arc_easy": {"spec": {"task": "arc_easy"}, "limit": 24 if quick else 570},
                  "triviaqa": {"spec": {"task": "triviaqa", "n_samples": 2 if quick else 3},
                               "limit": 8 if quick else 200}},
    }  # fmt: skip


def run_workflow(work: Path, device: str, quick: bool) -> dict[str, Any]:
    """The tiny run in `work`; its wall time, jobs and the collections' devices."""
    config = workflow_config(device, quick)
    (work / "gpu.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
         "--cores", str(len(os.sched_getaffinity(0))), "--resources", "gpu=1",
         "--configfile", str(work / "gpu.yaml")],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        logs = sorted((work / "runs" / "gpu" / "logs").rglob("*.log"), key=os.path.getmtime)
        tail = "\n".join(p.read_text()[-2000:] for p in logs[-2:])
        sys.exit(f"bench/gpu.py: the workflow failed:\n{proc.stderr[-3000:]}\n{tail}")
    results = work / "runs" / "gpu" / "results"
    devices = {
        str(p.relative_to(results)): json.loads(p.read_text())["model"]["extra"].get("device")
        for p in sorted(results.glob("collect/*/*/*/manifest.json"))
    }
    wrong = {k: v for k, v in devices.items() if not str(v).startswith(device)}
    if wrong:
        sys.exit(f"bench/gpu.py: collections did not run on {device}: {wrong}")
    jobs = sum(1 for _ in (work / "runs" / "gpu" / "logs").rglob("*.log"))
    return {"seconds": seconds, "jobs": jobs, "collections": devices, "config": config}


def tuning_speed(work: Path, device: str, quick: bool) -> dict[str, Any]:
    """`calibbench tune` on the run's graded ARC-Easy again: steps per second of the command."""
    results = work / "runs" / "gpu" / "results"
    config = workflow_config(device, quick)
    out = Path(tempfile.mkdtemp(prefix="tune-", dir=work))
    command = [
        str(BIN / "calibbench"), "tune", "--model", "smollm2-hf",
        "--spec", json.dumps(config["models"]["smollm2-hf"]["spec"]), "--task", "arc_easy",
        "--items", str(results / "tasks/arc_easy/items.parquet"),
        "--graded", str(results / "graded/smollm2-hf/arc_easy.parquet"),
        "--split", str(results / "splits/arc_easy.parquet"),
        "--epochs", str(config["calibration_tuning"]["epochs"]), "--bootstrap", "200",
        "--adapter", str(out / "adapter"), "--out", str(out / "tuning.json"),
    ]  # fmt: skip
    if device == "cpu":
        command.append("--cpu")
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=3600)
    seconds = time.perf_counter() - start
    training = json.loads((out / "tuning.json").read_text())["training"]
    steps = len(training["history"])
    batch = training["config"]["batch_size"]
    return {"seconds": seconds, "steps": steps, "steps/s": steps / seconds,
            "n_train": training["n_train"], "batch_size": batch}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="small sizes; writes nothing")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    require_device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="calibbench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)

    docs = texts(8 if args.quick else 64)
    sizes = (1, 4) if args.quick else (1, 32)
    scoring = []
    for name in ("smollm2-135m",) if args.quick else ("smollm2-135m", "gemma3-270m"):
        scoring += accumulator_share(name, docs, args.device, sizes, 1 if args.quick else 3)
    flow = run_workflow(work, args.device, args.quick)
    tuning = tuning_speed(work, args.device, args.quick)

    columns = ("model", "runtime", "method", "tokens", "seconds", "tokens/s", "accumulator share %")
    table = markdown_table(scoring, columns)
    table += (
        f"\n\n| measurement | value |\n|---|---|\n"
        f"| tiny workflow with gpu: 1 (wall, {flow['jobs']} jobs) | {flow['seconds']:.0f} s |\n"
        f"| collections on {args.device} | {len(flow['collections'])} of "
        f"{len(flow['collections'])} |\n"
        f"| calibration-tuning, `calibbench tune` ({tuning['steps']} steps, batch "
        f"{tuning['batch_size']}, {tuning['n_train']} examples) | {tuning['seconds']:.0f} s, "
        f"{tuning['steps/s']:.2f} steps/s |\n"
    )
    print(table)
    notes = (
        "`bench/gpu.sh` (`python bench/gpu.py`): transformers scoring in bf16 of 64 English "
        "paragraphs (truncated to 256 tokens), fastest of 3 runs taken in turn with and without "
        "calibbench's token-level accumulator at 3 temperatures (its share of a step: goal at "
        "most 5 %); a tiny workflow run with `gpu: 1` (SmolLM2 through transformers on the GPU: "
        "ARC-Easy 570 items, TriviaQA 200 items x 3 samples, raw/temperature/Platt, "
        "calibration-tuning on ARC-Easy, 2 epochs) through `snakemake --resources gpu=1`; and "
        "`calibbench tune` again on its graded ARC-Easy, timed as a whole (model load and "
        "evaluation included)."
    )
    if not args.quick:
        write_results("gpu", table, {"machine": machine_info(), "scoring": scoring,
                                     "workflow": flow, "tuning": tuning}, notes)  # fmt: skip


if __name__ == "__main__":
    main()
