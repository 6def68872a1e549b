"""Reading and writing per-item record files (Parquet), with errors that name file and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from calibbench.artifacts import write_parquet
from calibbench.errors import InputError

__all__ = ["read_answer_records", "write_parquet"]


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (for messages: 1.5, not np.float64(1.5))."""
    return value.item() if isinstance(value, np.generic) else value


def read_answer_records(
    path: str | Path, confidence: str = "confidence", correct: str = "correct"
) -> pd.DataFrame:
    """Read answer-level records from a Parquet file.

    Returns the frame with the two named columns checked: `confidence` numeric in [0, 1] without
    missing values, `correct` boolean or 0/1. Raises `InputError` naming the file, column and
    first offending row.
    """
    path = Path(path)
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: cannot read as Parquet ({exc})") from None
    for column in (confidence, correct):
        if column not in frame.columns:
            raise InputError(f"{path}: no column {column!r}; the file has {sorted(frame.columns)}")
        if frame[column].isna().any():
            row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
            raise InputError(f"{path}: column {column!r} is missing a value at row {row}")
    if len(frame) == 0:
        raise InputError(f"{path}: no records")
    values = pd.to_numeric(frame[confidence], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = _plain(frame[confidence].iloc[row])
        raise InputError(
            f"{path}: column {confidence!r} row {row} holds {value!r}; "
            "confidences must be probabilities in [0, 1]"
        )
    outcome = frame[correct]
    if outcome.dtype != bool:
        as_num = pd.to_numeric(outcome, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isin(as_num, (0.0, 1.0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: column {correct!r} row {row} holds {_plain(outcome.iloc[row])!r}; "
                "outcomes must be booleans or 0/1"
            )
        frame[correct] = as_num.astype(bool)
    frame[confidence] = values
    return frame
