"""Loading a results/ tree (written by the workflow) into tidy pandas frames.

Layout (every path under the results root):

    tasks/{task}/task.json                        task name, kind, n_items, dataset provenance
    collect/{model}/{task}/{answers,followup}/    records, accumulator state, timing, manifest
    graded/{model}/{task}.parquet                 one row per item: correct, confidence signals
    splits/{task}.parquet                         item_id, split
    recalibrate/{model}/{task}/{signal}/{method}.json / .parquet   test summary; test predictions
    compare/{model}/{task}/{signal}.json          every method of one signal and the best one
    sweep/{model}/{task}.parquet                  token-level metrics per temperature
    sweep/{model}/{task}.temperature.json         the one-pass temperature fit
    tuning/{model}/{task}.json, tuning/{model}/{task}/adapter/   calibration-tuning
    manifest.json                                 provenance of the whole run

The loaders only read; every table and figure is built from their frames. When manifest.json
records the run's plan (`calibbench.provenance.check_plan`), they read only the planned tasks,
models, comparisons, calibration-tuning runs and sweeps: a results tree keeps the files of
earlier configurations (other signals, models or tasks), and those never enter the paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from calibbench.errors import InputError

#: The signal name under which calibration-tuning results appear in `comparisons`.
TUNING_SIGNAL = "calibration_tuning"
#: Metrics of the answer-level summaries, in table order.
METRICS = ("accuracy", "mean_confidence", "overconfidence", "ece", "ece_mass", "ece_l2", "mce",
           "brier", "nll", "auroc", "aurc", "prr", "aurac", "ace", "rmsce", "ece_helm",
           "smooth_ece")  # fmt: skip


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


@dataclass(frozen=True)
class Results:
    """A results/ tree; frames are loaded on first use."""

    root: Path

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise InputError(f"{self.root}: no results directory; run the workflow first")

    @cached_property
    def _plan(self) -> dict[str, set[tuple[str, ...]]] | None:
        """The manifest's plan as sets of name tuples per part (None: no plan, read every file)."""
        if not (self.root / "manifest.json").is_file() or "plan" not in self.manifest:
            return None
        plan = self.manifest["plan"]
        return {part: {tuple(entry) for entry in entries} for part, entries in plan.items()}

    def _planned(self, part: str, *key: str) -> bool:
        """Whether `key` (a model, task[, signal] tuple; a task alone for "tasks") is planned."""
        if self._plan is None:
            return True
        if part == "tasks":
            return key[0] in {task for _, task in self._plan["pairs"]}
        return key in self._plan[part]

    @cached_property
    def tasks(self) -> pd.DataFrame:
        """One row per task: task, name, kind, n_items, dataset, split, licence, data_sha256."""
        rows = []
        for path in sorted(self.root.glob("tasks/*/task.json")):
            if not self._planned("tasks", path.parent.name):
                continue
            info = _json(path)
            ds = info["dataset"]
            rows.append({"task": path.parent.name, "name": info["task"], "kind": info["kind"],
                         "n_items": info["n_items"], "dataset": ds["name"], "subset": ds["subset"],
                         "split": ds["split"], "licence": ds["licence"],
                         "data_sha256": ds["sha256"]})  # fmt: skip
        return pd.DataFrame(rows)

    @cached_property
    def models(self) -> pd.DataFrame:
        """One row per model: model, runtime, family, n_parameters, vocab_size, quantization,
        sha256, logprob_source (from the first collection of each model; runtime lists every
        runtime its collections ran on, e.g. "hf, llamacpp" for an entry that scores with
        transformers and generates with llama.cpp)."""
        rows: dict[str, dict[str, Any]] = {}
        runtimes: dict[str, set[str]] = {}
        for path in sorted(self.root.glob("collect/*/*/*/manifest.json")):
            model = path.parents[2].name
            if not self._planned("pairs", model, path.parents[1].name):
                continue
            info = _json(path)["model"]
            runtimes.setdefault(model, set()).add(info["runtime"])
            if model in rows or path.parent.name != "answers":
                continue
            rows[model] = {"model": model, "runtime": info["runtime"], "family": info["family"],
                           "n_parameters": info["n_parameters"], "vocab_size": info["vocab_size"],
                           "quantization": info["quantization"], "sha256": info["sha256"],
                           "logprob_source": info["logprob_source"]}  # fmt: skip
        for model, row in rows.items():
            row["runtime"] = ", ".join(sorted(runtimes[model]))
        return pd.DataFrame(list(rows.values()))

    @cached_property
    def _comparison_data(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(model, task, signal, JSON) of every comparison, each file read once;
        calibration-tuning runs are included as the signal "calibration_tuning" (their methods:
        raw, zero_shot, probe, tuned, ...)."""
        out = [(p.parent.parent.name, p.parent.name, p.stem, _json(p))
               for p in sorted(self.root.glob("compare/*/*/*.json"))
               if self._planned("compare", *p.with_suffix("").parts[-3:])]  # fmt: skip
        for path in self._tuning_paths:
            data = _json(path)
            if "methods" in data:
                out.append((path.parent.name, path.stem, TUNING_SIGNAL, data))
        return out

    @cached_property
    def comparisons(self) -> pd.DataFrame:
        """Long frame: model, task, signal, method, metric, estimate, low, high, best (the
        signal's best method or None), error (why a method could not be fitted, else None),
        n (test items scored), n_calibration and n_test (items of each split with this
        confidence signal) and n_missing (items of both splits without it, e.g. empty
        completions without pavg); the counts are None where not recorded."""
        rows = []
        for model, task, signal, data in self._comparison_data:
            best = data["best"]["method"]
            for method, entry in data["methods"].items():
                base = {"model": model, "task": task, "signal": signal, "method": method,
                        "best": best, "error": entry.get("error"),
                        "n": entry.get("summary", {}).get("n"),
                        "n_calibration": entry.get("n_calibration"), "n_test": entry.get("n_test"),
                        "n_missing": entry.get("n_missing_confidence")}  # fmt: skip
                if "summary" not in entry:
                    rows.append(base | {"metric": None})
                    continue
                for metric, value in entry["summary"]["metrics"].items():
                    rows.append(base | {"metric": metric, "estimate": value["estimate"],
                                        "low": value["low"], "high": value["high"]})  # fmt: skip
        return pd.DataFrame(rows)

    def best(self) -> pd.DataFrame:
        """model, task, signal, best method (None: none significantly better) and reason."""
        rows = []
        for model, task, signal, data in self._comparison_data:
            best = data["best"]
            rows.append({"model": model, "task": task, "signal": signal,
                         "best": best["method"], "reason": best["reason"]})  # fmt: skip
        return pd.DataFrame(rows)

    @cached_property
    def tuning(self) -> pd.DataFrame:
        """model, task and the calibration-tuning run's training record or the reason it did
        not run (error)."""
        rows = []
        for path in self._tuning_paths:
            data = _json(path)
            training = data.get("training", {})
            rows.append({"model": path.parent.name, "task": path.stem, "error": data.get("error"),
                         "n_train": training.get("n_train"),
                         "temperature": training.get("temperature"),
                         "data_sha256": training.get("data_sha256")})  # fmt: skip
        return pd.DataFrame(rows)

    @property
    def _tuning_paths(self) -> list[Path]:
        return [p for p in sorted(self.root.glob("tuning/*/*.json"))
                if self._planned("tuning", p.parent.name, p.stem)]  # fmt: skip

    @cached_property
    def sweeps(self) -> pd.DataFrame:
        """Token-level sweep rows with model and task columns."""
        frames = []
        for path in sorted(self.root.glob("sweep/*/*.parquet")):
            if not self._planned("sweeps", path.parent.name, path.stem):
                continue
            frame = pd.read_parquet(path)
            frame.insert(0, "task", path.stem)
            frame.insert(0, "model", path.parent.name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @cached_property
    def fitted_temperatures(self) -> pd.DataFrame:
        """model, task, temperature (token level, one-pass fit) or error."""
        rows = []
        for path in sorted(self.root.glob("sweep/*/*.temperature.json")):
            if not self._planned("sweeps", path.parent.name, path.name.split(".")[0]):
                continue
            data = _json(path)
            rows.append({"model": path.parent.name, "task": path.name.split(".")[0],
                         "temperature": data.get("state", {}).get("temperature"),
                         "error": data.get("error")})  # fmt: skip
        return pd.DataFrame(rows)

    def graded_paths(self) -> list[Path]:
        """graded/{model}/{task}.parquet of every planned (model, task) pair that has one."""
        return [p for p in sorted(self.root.glob("graded/*/*.parquet"))
                if self._planned("pairs", p.parent.name, p.stem)]  # fmt: skip

    def graded(self, model: str, task: str) -> pd.DataFrame:
        """One task's graded items for one model."""
        path = self.root / "graded" / model / f"{task}.parquet"
        if not path.exists():
            raise InputError(f"{path}: not found")
        return pd.read_parquet(path)

    def predictions(self, model: str, task: str, signal: str, method: str) -> pd.DataFrame:
        """Test-split predictions (item_id, confidence, correct) after `method`."""
        path = self.root / "recalibrate" / model / task / signal / f"{method}.parquet"
        if not path.exists():
            raise InputError(f"{path}: not found")
        return pd.read_parquet(path)

    def reliability(self, model: str, task: str, signal: str, method: str) -> pd.DataFrame:
        """Reliability-diagram bins of the test predictions after `method`."""
        path = self.root / "recalibrate" / model / task / signal / f"{method}.json"
        entry = _json(path)
        if "summary" not in entry:
            raise InputError(f"{path}: the method could not be fitted: {entry.get('error')}")
        return pd.DataFrame(entry["summary"]["reliability"])

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The run's provenance (see `calibbench.provenance`)."""
        return _json(self.root / "manifest.json")

    @cached_property
    def config(self) -> dict[str, Any]:
        """The run's configuration, from its manifest ({} before the manifest is written)."""
        if not (self.root / "manifest.json").is_file():
            return {}
        return self.manifest.get("config", {})
