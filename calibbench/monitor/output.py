"""What the monitor's reports share when written out: table rows as JSON-ready records, and
text files and CSV tables written atomically (`calibbench.artifacts.atomic_write`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from calibbench.artifacts import atomic_write


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of `frame` as dicts, NaN (and other missing values) as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def write_text(text: str, path: Path) -> Path:
    """Write `text` to `path` atomically; returns `path`."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` (without its index) to `path` as CSV, atomically; returns `path`."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path
