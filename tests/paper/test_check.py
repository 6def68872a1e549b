"""The reproduction check's comparison of regenerated and committed tables."""

from pathlib import Path

import pandas as pd

from calibbench.paper.check import ABS_TOLERANCE, compare_tables


def _write(folder: Path, frame: pd.DataFrame, name: str = "t.csv") -> Path:
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / name, index=False)
    return folder


def _table(ece: float, best: object = None) -> pd.DataFrame:
    return pd.DataFrame({"method": ["raw", "platt"], "best": [best, "platt"], "ece": [0.2, ece]})


def test_identical_tables_with_missing_text_and_numbers_agree(tmp_path):
    frame = _table(float("nan"))
    report, ok = compare_tables(_write(tmp_path / "a", frame), _write(tmp_path / "b", frame))
    assert ok, report
    assert "All tables agree" in report


def test_numbers_within_the_tolerance_agree_and_beyond_it_are_reported(tmp_path):
    ref = _write(tmp_path / "ref", _table(0.1))
    assert compare_tables(_write(tmp_path / "near", _table(0.1 + ABS_TOLERANCE / 2)), ref)[1]
    report, ok = compare_tables(_write(tmp_path / "far", _table(0.1 + 2 * ABS_TOLERANCE)), ref)
    assert not ok
    assert "t.csv row 1 `ece`" in report


def test_text_changes_and_missing_files_are_reported(tmp_path):
    ref = _write(tmp_path / "ref", _table(0.1))
    _write(ref, _table(0.1), "only_committed.csv")
    report, ok = compare_tables(_write(tmp_path / "new", _table(0.1, best="isotonic")), ref)
    assert not ok
    assert "t.csv row 0 `best`" in report
    assert "only_committed.csv: committed but not regenerated" in report
