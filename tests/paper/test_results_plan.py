"""The run's plan in its manifest: the paper's loader and the provenance read only what the
configuration computes, never the files an earlier configuration left in the results tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_figures import SMALL, add_case, add_collection, add_sweep, add_task, write_json

from calibbench.errors import InputError
from calibbench.paper.results import Results
from calibbench.provenance import check_plan, run_manifest

N = 12
STALE = "smollm2-old"


def _answers() -> tuple[np.ndarray, np.ndarray]:
    correct = np.tile([True, False], N // 2)
    return np.where(correct, 0.8, 0.4), correct


def _tree(root: Path) -> None:
    """Planned: SMALL on arc_easy (confidence) and triviaqa (confidence). Left over from earlier
    configurations: SMALL's triviaqa 'verbalized' comparison, STALE's arc_easy collection,
    comparison and sweep, the task 'nq_open', and STALE's graded table and tuning run."""
    add_task(root, "arc_easy", "multiple_choice", 2 * N)
    add_task(root, "triviaqa", "qa", 2 * N)
    add_task(root, "nq_open", "qa", 2 * N)
    for model, task, signal in ((SMALL, "arc_easy", "confidence"),
                                (SMALL, "triviaqa", "confidence"),
                                (SMALL, "triviaqa", "verbalized"),
                                (STALE, "arc_easy", "confidence")):  # fmt: skip
        add_collection(root, model, task, 135_000_000)
        add_case(root, model, task, {"raw": _answers()}, None, signal=signal)
    for model in (SMALL, STALE):
        add_sweep(root, model, "arc_easy", 1.1)
        write_json(root / "tuning" / model / "arc_easy.json", {"error": "not enough items"})
        graded = pd.DataFrame({"item_id": ["a"], "correct": [True], "verbalized_status": ["ok"],
                               "verbalized_correct": [True]})  # fmt: skip
        (root / "graded" / model).mkdir(parents=True, exist_ok=True)
        graded.to_parquet(root / "graded" / model / "triviaqa.parquet")


PLAN = {
    "pairs": [[SMALL, "arc_easy"], [SMALL, "triviaqa"]],
    "compare": [[SMALL, "arc_easy", "confidence"], [SMALL, "triviaqa", "confidence"]],
    "tuning": [[SMALL, "arc_easy"]],
    "sweeps": [[SMALL, "arc_easy"]],
}


def _manifest(root: Path, plan: dict | None) -> None:
    data = {"config": {"seed": 0}} | ({} if plan is None else {"plan": plan})
    write_json(root / "manifest.json", data)


def test_the_loader_reads_only_the_planned_results(tmp_path: Path):
    _tree(tmp_path)
    _manifest(tmp_path, PLAN)
    results = Results(tmp_path)
    cases = results.comparisons[["model", "task", "signal"]].drop_duplicates()
    assert sorted(map(tuple, cases.to_numpy())) == [
        (SMALL, "arc_easy", "confidence"),
        (SMALL, "triviaqa", "confidence"),
    ]
    assert results.best()["model"].tolist() == [SMALL, SMALL]
    assert results.models["model"].tolist() == [SMALL]
    assert sorted(results.tasks["task"]) == ["arc_easy", "triviaqa"]
    assert set(results.sweeps["model"]) == {SMALL}
    assert results.fitted_temperatures["model"].tolist() == [SMALL]
    assert results.tuning["model"].tolist() == [SMALL]
    assert results.graded_paths() == [tmp_path / "graded" / SMALL / "triviaqa.parquet"]


def test_without_a_plan_every_file_is_read(tmp_path: Path):
    """Results trees written before plans were recorded (and hand-made ones) read as before."""
    _tree(tmp_path)
    _manifest(tmp_path, None)
    results = Results(tmp_path)
    assert len(results.comparisons[["model", "task", "signal"]].drop_duplicates()) == 4
    assert sorted(results.models["model"]) == [SMALL, STALE]
    assert len(results.graded_paths()) == 2


def test_the_manifest_records_the_plan_and_reads_only_planned_provenance(tmp_path: Path):
    _tree(tmp_path)
    manifest = run_manifest({"seed": 0}, tmp_path, tmp_path, PLAN)
    assert manifest["plan"] == PLAN
    assert sorted(manifest["tasks"]) == ["arc_easy", "triviaqa"]
    assert list(manifest["models"]) == [SMALL]
    # JSON round trip, as the workflow writes and the loader reads it.
    assert json.loads(json.dumps(manifest))["plan"] == PLAN
    assert "plan" not in run_manifest({"seed": 0}, tmp_path, tmp_path)
    assert sorted(run_manifest({"seed": 0}, tmp_path, tmp_path)["models"]) == [SMALL, STALE]


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([], "expected an object with the keys"),
        ({k: v for k, v in PLAN.items() if k != "sweeps"}, "expected an object with the keys"),
        (PLAN | {"compare": [[SMALL, "arc_easy"]]}, "compare: expected lists of 3 names"),
        (PLAN | {"pairs": [[SMALL, 3]]}, "pairs: expected lists of 2 names"),
    ],
)
def test_a_malformed_plan_is_refused(tmp_path: Path, plan, message):
    with pytest.raises(InputError, match=message):
        check_plan(plan)
