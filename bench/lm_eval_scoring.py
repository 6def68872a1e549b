"""Scoring multiple-choice options: calibbench's collection paths against lm-evaluation-harness's
own transformers model (`HFLM`), on the same items, the same weights and in the same process.

The requests are the first N ARC-Easy items' answer options (about 4 per item), as calibbench's
task builds them. Methods, taken in turn, fastest of R runs each:
- lm-eval HFLM, batch 16, float32 on the CPU, from the transformers copy calibbench makes of the
  built-in GGUF file (`calibbench.models.hf.dequantised_dir`), and the same in bfloat16 (its
  output layer too: lm-eval casts the whole model);
- calibbench, the runtime the default configuration scores with (`runtime_for(..., "loglikelihood")`
  of config/default.yaml's entry), with the token-level accumulator on at the default
  configuration's temperatures, as `calibbench collect` runs it;
- when the default scores in a reduced precision, the same runtime in float32 (whose log-probs
  must equal lm-eval's float32 ones: the same encoding and scores);
- calibbench through llama.cpp, the same accumulator (the default's scoring runtime before).
The log-probs of every method are compared with lm-eval's (largest absolute difference, nats).

    python bench/lm_eval_scoring.py            # writes bench/results/lm_eval_scoring.md, .json
    python bench/lm_eval_scoring.py --quick    # 4 items, SmolLM2, one run; writes nothing
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine_info, markdown_table, write_results

ROOT = Path(__file__).resolve().parents[1]


def requests(n_items: int):
    from calibbench.models import LoglikelihoodRequest
    from calibbench.tasks import get_task

    task = get_task({"task": "arc_easy"})
    table = task.requests(task.items().head(n_items))
    return [LoglikelihoodRequest(r.context, r.continuation) for r in table.itertuples()]


def lm_eval_model(builtin: str, dtype: str = "float32"):
    from lm_eval.models.huggingface import HFLM

    from calibbench.models.builtin import gguf_path
    from calibbench.models.hf import dequantised_dir

    path = dequantised_dir(gguf_path(builtin))
    return HFLM(pretrained=str(path), batch_size=16, device="cpu", dtype=dtype)


def run_lm_eval(lm, reqs) -> np.ndarray:
    from lm_eval.api.instance import Instance

    instances = [Instance("loglikelihood", {}, (r.context, r.continuation), i)
                 for i, r in enumerate(reqs)]  # fmt: skip
    return np.array([logprob for logprob, _ in lm.loglikelihood(instances, disable_tqdm=True)])


def run_calibbench(model, reqs, temperatures, n_bins) -> np.ndarray:
    from calibbench.metrics.token import TokenCalibration

    acc = TokenCalibration(model.info().vocab_size, n_bins=n_bins, temperatures=temperatures)
    return np.array([r.logprob for r in model.loglikelihood(reqs, accumulator=acc)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.items, args.repeats, args.models = 4, 1, ["smollm2-135m"]

    from calibbench.models import load_model
    from calibbench.models.registry import runtime_for

    config = yaml.safe_load((ROOT / "config/default.yaml").read_text())
    temperatures, n_bins = tuple(config["temperatures"]), config["n_bins"]
    reqs = requests(args.items)
    rows = []
    for builtin in args.models:
        spec = runtime_for(builtin, config["models"][builtin]["spec"], "loglikelihood")
        llamacpp = {"runtime": "llamacpp", "builtin": builtin}
        dtype = f" {spec['dtype']}" if "dtype" in spec else ""
        ours = f"calibbench {spec['runtime']}{dtype} (default), accumulator at {len(temperatures)} T"
        methods = {
            "lm-eval HFLM, batch 16": (lm_eval_model(builtin), run_lm_eval),
            "lm-eval HFLM bfloat16, batch 16": (lm_eval_model(builtin, "bfloat16"), run_lm_eval),
            ours: (load_model(builtin, spec), run_calibbench),
            **({f"calibbench hf float32, accumulator at {len(temperatures)} T": (
                load_model(builtin, spec | {"dtype": "float32"}), run_calibbench)}
               if dtype else {}),
            f"calibbench llamacpp, accumulator at {len(temperatures)} T": (
                load_model(builtin, llamacpp), run_calibbench),
        }  # fmt: skip
        times: dict[str, list[float]] = {m: [] for m in methods}
        logprobs: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, (model, fn) in methods.items():
                start = time.perf_counter()
                out = fn(model, reqs) if fn is run_lm_eval else fn(model, reqs, temperatures, n_bins)
                times[name].append(time.perf_counter() - start)
                logprobs[name] = out
        reference = logprobs["lm-eval HFLM, batch 16"]
        best_lm_eval = min(times["lm-eval HFLM, batch 16"])
        for name, (model, _) in methods.items():
            if hasattr(model, "close"):
                model.close()
            rows.append({
                "model": builtin, "method": name, "requests": len(reqs),
                "seconds": min(times[name]), "times lm-eval's": min(times[name]) / best_lm_eval,
                "max abs difference from lm-eval's log-prob": float(np.abs(logprobs[name] - reference).max()),
            })  # fmt: skip
    columns = ["model", "method", "requests", "seconds", "times lm-eval's",
               "max abs difference from lm-eval's log-prob"]  # fmt: skip
    text = markdown_table(rows, columns)
    print(text)
    if args.quick:
        return
    notes = f"""`python bench/lm_eval_scoring.py`: the answer options of the first {args.items}
ARC-Easy items ({len(reqs)} log-likelihood requests), scored by lm-evaluation-harness's own
transformers model and by calibbench's collection paths with the token-level accumulator on at
the default configuration's {len(temperatures)} temperatures, in one process, methods taken in
turn, fastest of {args.repeats}. times lm-eval's below 1: faster than lm-eval's float32 run (the
bfloat16 rows are to be compared with lm-eval's bfloat16 row). llama.cpp's log-probs differ from
transformers' by its quantised matrix products (same weights file); bfloat16 ones by the body's
rounding (calibbench keeps its output layer in float32, lm-eval does not)."""
    write_results("lm_eval_scoring", text, {"machine": machine_info(), "rows": rows}, notes)


if __name__ == "__main__":
    main()
