"""Reading a production log: formats and time zones, and bad rows named in the error, with
nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from monitor_runs import calibbench

from calibbench.errors import InputError
from calibbench.monitor import reader
from calibbench.monitor.reader import LogColumns, read_log
from calibbench.monitor.synthetic import synthetic_log

HEADER = "timestamp,confidence,outcome,task,id\n"
GOOD = [
    "2024-01-01T10:00:00Z,0.9,1,qa,a",
    "2024-01-01T11:00:00Z,0.6,0,qa,b",
    "2024-01-02T09:00:00Z,0.7,true,code,c",
    "2024-01-03T09:00:00Z,0.8,False,code,d",
]
COLUMNS = LogColumns(segments=("task",), id="id")


def _log(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "log.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def _chunks(path: Path, columns: LogColumns = COLUMNS) -> list:
    return list(read_log(path, columns))


def test_times_in_any_iso_form_and_zone_are_read_as_utc(tmp_path: Path):
    rows = [
        "2024-01-01 23:30:00-02:00,0.9,1,qa,a",
        "2024-01-02T02:00:00,0.6,0,qa,b",
        "2024-01-02T03:00:00.5Z,0.7,1,qa,c",
    ]
    (chunk,) = _chunks(_log(tmp_path, rows))
    want = np.array(
        ["2024-01-02T01:30:00", "2024-01-02T02:00:00", "2024-01-02T03:00:00.5"],
        dtype="datetime64[ns]",
    ).astype(np.int64)
    assert np.array_equal(chunk.ns, want)
    assert list(chunk.correct) == [True, False, True]


def test_csv_and_parquet_give_the_same_rows(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(reader, "CSV_BLOCK", 1 << 14)  # many chunks
    monkeypatch.setattr(reader, "PARQUET_BATCH", 1000)
    table = synthetic_log(5000, days=20, seed=2)
    pcsv.write_csv(table, tmp_path / "log.csv")
    pq.write_table(
        table.set_column(2, "outcome", table["outcome"].cast(pa.bool_())), tmp_path / "log.parquet"
    )
    got = {}
    for name in ("log.csv", "log.parquet"):
        chunks = _chunks(tmp_path / name)
        assert len(chunks) > 3 and chunks[1].first_row == len(chunks[0].ns)
        got[name] = [
            np.concatenate([getattr(c, k) for c in chunks]) for k in ("ns", "confidence", "correct")
        ]
    for a, b in zip(got["log.csv"], got["log.parquet"], strict=True):
        assert np.array_equal(a, b)
    want = table["timestamp"].cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    assert np.array_equal(got["log.csv"][0], want)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            "2024-01-02T08:00:00Z,0.7,1,qa,e",
            r"row 5 \(line 6\), column 'timestamp': the time is "
            "earlier than the row before; sort the log",
        ),
        (",0.7,1,qa,e", r"row 5 \(line 6\), column 'timestamp': '' is not an ISO 8601 time"),
        ("yesterday,0.7,1,qa,e", r"row 5 \(line 6\), column 'timestamp': 'yesterday' is not"),
        (
            "2024-01-04,0.7,0.5,qa,e",
            r"row 5 \(line 6\), column 'outcome': outcome '0.5' is not 0/1",
        ),
        ("2024-01-04,0.7,,qa,e", r"row 5 \(line 6\), column 'outcome': outcome '' is not 0/1"),
        (
            "2024-01-04,1.5,1,qa,e",
            r"row 5 \(line 6\), column 'confidence': confidence '1.5' is not",
        ),
        (
            "2024-01-04,high,1,qa,e",
            r"row 5 \(line 6\), column 'confidence': 'high' is not a number",
        ),
        ("2024-01-04,0.7,1,qa,b", r"row 5 \(line 6\), column 'id': the id repeats row 2's"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_written(tmp_path: Path, capsys, row: str, match: str):
    path = _log(tmp_path, [*GOOD, row])
    with pytest.raises(InputError, match=match):
        _chunks(path)
    out = tmp_path / "report"
    argv = [
        "monitor",
        "log",
        str(path),
        "--out",
        str(out),
        "--segment",
        "task",
        "--id-column",
        "id",
        "--window",
        "day",
    ]
    assert calibbench(*argv) == 2
    assert "log.csv: row 5 (line 6)" in capsys.readouterr().err and not out.exists()


def test_missing_columns_and_files_are_named(tmp_path: Path):
    path = _log(tmp_path, GOOD)
    with pytest.raises(InputError, match=r"no column 'label'; its columns are \['timestamp'"):
        _chunks(path, LogColumns(outcome="label"))
    with pytest.raises(InputError, match="no such file"):
        _chunks(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text(HEADER)
    with pytest.raises(InputError, match="the log holds no rows"):
        _chunks(tmp_path / "empty.csv")


def test_parquet_outcomes_must_be_zero_or_one(tmp_path: Path):
    table = synthetic_log(50, days=3, seed=1)
    floats = table.set_column(2, "outcome", pa.array(np.r_[np.ones(49), 0.5]))
    pq.write_table(floats, tmp_path / "log.parquet")
    with pytest.raises(InputError, match=r"log.parquet: row 50, column 'outcome': outcome 0.5"):
        _chunks(tmp_path / "log.parquet", LogColumns())
