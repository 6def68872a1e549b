"""`calibbench recalibrate` with several recalibrations of one method in one process (the
workflow's one job per method) writes what one process per recalibration writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibbench.artifacts import write_parquet
from calibbench.cli import main
from calibbench.splits import assign_splits


def _tables(tmp_path: Path, name: str, n: int, seed: int) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.2, 1.0, n)
    graded = pd.DataFrame({
        "item_id": [f"{name}{i}" for i in range(n)],
        "correct": rng.uniform(size=n) < confidence**2,
        "confidence": confidence,
        "other": np.where(rng.uniform(size=n) < 0.1, np.nan, rng.uniform(size=n)),
    })  # fmt: skip
    write_parquet(graded, tmp_path / f"{name}_graded.parquet")
    write_parquet(assign_splits(graded.item_id, seed=seed), tmp_path / f"{name}_split.parquet")
    return str(tmp_path / f"{name}_graded.parquet"), str(tmp_path / f"{name}_split.parquet")


def _outputs(tmp_path: Path, name: str) -> list[str]:
    return ["--out", f"{tmp_path}/{name}.json", "--predictions", f"{tmp_path}/{name}.parquet"]


@pytest.mark.parametrize("method", ["platt", "isotonic", "histogram"])
def test_several_recalibrations_in_one_call_equal_one_call_each(tmp_path, method):
    a, b = _tables(tmp_path, "a", 300, seed=1), _tables(tmp_path, "b", 200, seed=2)
    runs = [(a, "confidence"), (a, "other"), (b, "other"), (b, "confidence")]
    settings = ["--method", method, "--bootstrap", "50", "--seed", "3"]
    together = []
    for i, ((graded, split), signal) in enumerate(runs):
        args = ["--graded", graded, "--split", split, "--confidence", signal]
        assert main(["recalibrate", *settings, *args, *_outputs(tmp_path, f"alone{i}")]) == 0
        together += [*args, *_outputs(tmp_path, f"together{i}")]
    assert main(["recalibrate", *settings, *together]) == 0
    for i in range(len(runs)):
        for suffix in (".json", ".parquet"):
            alone = (tmp_path / f"alone{i}{suffix}").read_bytes()
            assert (tmp_path / f"together{i}{suffix}").read_bytes() == alone, (i, suffix)


def test_options_given_a_different_number_of_times_are_refused(tmp_path, capsys):
    graded, split = _tables(tmp_path, "a", 40, seed=1)
    outputs = ["--out", f"{tmp_path}/1.json", "--out", f"{tmp_path}/2.json"]
    status = main(
        ["recalibrate", "--method", "raw", "--graded", graded, "--split", split, *outputs]
    )
    assert status == 2
    assert "--out: given 2 times for 1 --graded" in capsys.readouterr().err
    assert not (tmp_path / "1.json").exists()
