"""Writing result files: atomically (temporary file, then rename) and deterministically.

The same content always gives the same bytes: JSON with sorted keys, Parquet through pyarrow,
and `.npz` archives with fixed zip timestamps (numpy's own `savez` stamps the current time), so
results can be compared and hashed across runs and machines.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary file next to `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(data: pd.DataFrame | pa.Table, path: str | Path) -> None:
    """Write a DataFrame (index dropped) or an Arrow table to Parquet."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON with sorted keys and a final newline; NaN is refused (use None)."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_npz(arrays: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Write arrays as an uncompressed `.npz` that `np.load` reads, with fixed timestamps."""

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_EPOCH), buffer.getvalue())

    atomic_write(path, write)


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
