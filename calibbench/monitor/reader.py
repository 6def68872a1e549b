"""A production log of predictions, read and validated in chunks (CSV or Parquet).

One row per prediction: a timestamp, the stated confidence that the output is correct, the
outcome (the label a person gave: correct or not), optionally segment columns (task, customer
tier, ...) and an id. Columns are found by name (`LogColumns`); others are not read.

- timestamp: ISO 8601 text (`2024-05-01`, `2024-05-01T13:45:00`, with `Z` or an offset), or a
  Parquet timestamp or date column; times without a zone are taken as UTC. Rows must be sorted by
  time (non-decreasing), as a log is written.
- confidence: a number in [0, 1]. outcome: 1/0, true/false (any case), or a Parquet bool or
  0/1 number column.
- id: unique per row. The check keeps a 64-bit hash per row (8 bytes each; integer ids are
  their own hash) and runs when the whole file has been read; a false report needs two
  different ids with equal hashes, which is below 1e-5 likely at 10^7 rows.

Memory: a CSV is parsed in blocks of CSV_BLOCK bytes, a Parquet file a row group at a time (so
its memory grows with the row groups a writer chose).

Rows are numbered from 1 in file order (row r of a CSV with a header is its line r + 1). Every
failure raises InputError naming the file, the row and the column, before a caller has written
anything, since the last check runs when the iteration ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from calibbench.errors import InputError
from calibbench.monitor.windows import Coded

#: Bytes of CSV text parsed per chunk (about 70,000 rows of a typical log); the reader reads
#: a few dozen blocks ahead, so this bounds its memory (about 150 MiB).
CSV_BLOCK = 4 * 2**20
#: Rows per Parquet batch.
PARQUET_BATCH = 2**18
NS_PER_DAY = 86_400 * 10**9
TRUE = ("1", "true", "1.0")
FALSE = ("0", "false", "0.0")


@dataclass(frozen=True)
class LogColumns:
    """The log's column names: time, confidence, outcome, segment columns, and an id column
    (None: no id, no duplicate check)."""

    time: str = "timestamp"
    confidence: str = "confidence"
    outcome: str = "outcome"
    segments: tuple[str, ...] = ()
    id: str | None = None

    @property
    def names(self) -> list[str]:
        """Every column read, in order."""
        named = [self.time, self.confidence, self.outcome, *self.segments]
        return named + ([self.id] if self.id else [])


@dataclass(frozen=True)
class LogChunk:
    """Validated rows first_row + 1 .. first_row + N of the file: ns (N,) int64 nanoseconds
    since 1970-01-01 UTC; day (N,) int64 days since then; confidence (N,) float64; correct (N,)
    bool; segments: per segment column its coded values."""

    first_row: int
    ns: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray
    segments: dict[str, Coded] = field(default_factory=dict)

    @property
    def day(self) -> np.ndarray:
        """UTC day of each row, days since 1970-01-01."""
        return self.ns // NS_PER_DAY


def _where(path: Path, row: int, column: str) -> str:
    line = f" (line {row + 1})" if path.suffix.lower() != ".parquet" else ""
    return f"{path}: row {row}{line}, column {column!r}"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _times(
    arr: pa.Array, path: Path, first_row: int, name: str, targets: list[pa.DataType]
) -> np.ndarray:
    """UTC nanoseconds of a time column; `targets`: the string casts to try, the one that
    worked last first (a log keeps one format, so one cast per chunk)."""
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        ns = pc.cast(arr, pa.timestamp("ns", tz=getattr(arr.type, "tz", None)))
    elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        ns = None
        for target in list(targets):
            try:
                ns = pc.cast(arr, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            targets.remove(target)
            targets.insert(0, target)
            break
        if ns is None:  # mixed zones, or a value that is not a time: parse row by row
            parsed = pd.to_datetime(arr.to_pandas(), format="ISO8601", utc=True, errors="coerce")
            bad = parsed.isna().to_numpy() & arr.is_valid().to_numpy(zero_copy_only=False)
            if bad.any():
                i = _first(bad)
                raise InputError(
                    f"{_where(path, first_row + i + 1, name)}: {arr[i].as_py()!r} is not an "
                    "ISO 8601 time (such as 2024-05-01T13:45:00Z)"
                )
            ns = pa.array(parsed.dt.tz_convert("UTC").dt.tz_localize(None), pa.timestamp("ns"))
    else:
        raise InputError(
            f"{path}: column {name!r} has type {arr.type}; give times as ISO 8601 text or a "
            "timestamp column"
        )
    missing = ~ns.is_valid().to_numpy(zero_copy_only=False)
    if missing.any():
        raise InputError(f"{_where(path, first_row + _first(missing) + 1, name)}: no time given")
    return ns.cast(pa.int64()).to_numpy()


def _confidence(arr: pa.Array, path: Path, first_row: int, name: str) -> np.ndarray:
    try:
        c = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # find the value that is no number
        c = pd.to_numeric(arr.to_pandas(), errors="coerce").to_numpy(np.float64)
        text = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string())))
        said_nan = pc.fill_null(pc.equal(text, "nan"), True).to_numpy(zero_copy_only=False)
        unread = np.isnan(c) & ~said_nan
        if unread.any():
            i = _first(unread)
            raise InputError(
                f"{_where(path, first_row + i + 1, name)}: {arr[i].as_py()!r} is not a number"
            ) from None
    bad = ~((c >= 0.0) & (c <= 1.0))  # NaN and nulls (NaN here) included
    if bad.any():
        i = _first(bad)
        shown = "missing" if not arr[i].is_valid else f"{arr[i].as_py()!r}"
        raise InputError(
            f"{_where(path, first_row + i + 1, name)}: confidence {shown} is not a probability "
            "in [0, 1]"
        )
    return np.ascontiguousarray(c, dtype=np.float64)


def _outcome(arr: pa.Array, path: Path, first_row: int, name: str) -> np.ndarray:
    if pa.types.is_boolean(arr.type):
        yes = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
        no = pc.fill_null(pc.invert(arr), False).to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        yes = pc.fill_null(pc.equal(arr, 1), False).to_numpy(zero_copy_only=False)
        no = pc.fill_null(pc.equal(arr, 0), False).to_numpy(zero_copy_only=False)
    else:
        text = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string())))
        yes = pc.fill_null(pc.is_in(text, pa.array(TRUE)), False).to_numpy(zero_copy_only=False)
        no = pc.fill_null(pc.is_in(text, pa.array(FALSE)), False).to_numpy(zero_copy_only=False)
    bad = ~(yes | no)
    if bad.any():
        i = _first(bad)
        shown = "missing" if not arr[i].is_valid else repr(arr[i].as_py())
        raise InputError(
            f"{_where(path, first_row + i + 1, name)}: outcome {shown} is not 0/1 or "
            "true/false; label each prediction correct (1) or not (0)"
        )
    return yes


def _coded(arr: pa.Array) -> Coded:
    encoded = pc.dictionary_encode(pc.fill_null(arr.cast(pa.string()), "(missing)"))
    return Coded(encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist())


def _id_hashes(arr: pa.Array) -> np.ndarray:
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64)
    return pd.util.hash_array(arr.cast(pa.string()).to_numpy(zero_copy_only=False))


def _batches(path: Path, columns: LogColumns) -> Iterator[pa.RecordBatch]:
    names = columns.names
    if len(set(names)) != len(names):
        raise InputError(f"columns: a column is named twice in {names}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            source = pq.ParquetFile(path)
            present = source.schema_arrow.names
            _check_present(path, names, present)
            yield from source.iter_batches(batch_size=PARQUET_BATCH, columns=names)
            return
        head = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 16))
        _check_present(path, names, head.schema.names)
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=CSV_BLOCK),
            convert_options=pcsv.ConvertOptions(
                include_columns=names, column_types=dict.fromkeys(names, pa.string())
            ),
        )
        yield from reader
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read as {_kind(path)} ({exc})") from None


def _kind(path: Path) -> str:
    return "Parquet" if path.suffix.lower() == ".parquet" else "CSV"


def _check_present(path: Path, names: list[str], present: list[str]) -> None:
    missing = [n for n in names if n not in present]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r}; its columns are {present}; name the log's "
            "columns with --time-column, --confidence-column, --outcome-column, --segment and "
            "--id-column"
        )


def read_log(path: Path, columns: LogColumns = LogColumns()) -> Iterator[LogChunk]:
    """The log's rows in validated chunks, in file order (see the module docstring)."""
    last_ns: int | None = None
    hashes: list[np.ndarray] = []
    targets = [pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")]
    row = 0
    for batch in _batches(path, columns):
        n = batch.num_rows
        if n == 0:
            continue
        ns = _times(batch.column(columns.time), path, row, columns.time, targets)
        before = np.flatnonzero(np.diff(ns) < 0)
        if last_ns is not None and ns[0] < last_ns:
            before = np.r_[-1, before]
        if before.size:
            i = int(before[0]) + 1
            raise InputError(
                f"{_where(path, row + i + 1, columns.time)}: the time is earlier than the row "
                "before; sort the log by time first (e.g. pandas sort_values, or sort)"
            )
        last_ns = int(ns[-1])
        chunk = LogChunk(
            first_row=row,
            ns=ns,
            confidence=_confidence(batch.column(columns.confidence), path, row, columns.confidence),
            correct=_outcome(batch.column(columns.outcome), path, row, columns.outcome),
            segments={s: _coded(batch.column(s)) for s in columns.segments},
        )
        if columns.id:
            ids = batch.column(columns.id)
            missing = ~ids.is_valid().to_numpy(zero_copy_only=False)
            if missing.any():
                raise InputError(f"{_where(path, row + _first(missing) + 1, columns.id)}: no id")
            hashes.append(_id_hashes(ids))
        yield chunk
        row += n
    if row == 0:
        raise InputError(f"{path}: the log holds no rows")
    if hashes:
        every = np.concatenate(hashes)
        hashes.clear()
        _check_unique(path, every, columns.id or "")


def _check_unique(path: Path, hashes: np.ndarray, name: str) -> None:
    ordered = np.sort(hashes)
    if not (ordered[1:] == ordered[:-1]).any():
        return
    del ordered
    order = np.argsort(hashes, kind="stable")
    same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    if same.size:
        repeats = order[same + 1]  # the later row of each equal pair (stable sort)
        i = int(repeats.min())
        j = int(order[same[np.argmin(repeats)]])
        raise InputError(
            f"{_where(path, i + 1, name)}: the id repeats row {j + 1}'s; each prediction needs "
            "its own id (drop the duplicate, or leave out --id-column)"
        )
