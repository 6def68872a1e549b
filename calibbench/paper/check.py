"""The reproduction check: regenerated tables against the committed ones, within tolerances.

Tables are compared as CSV: the same files, the same columns and rows, text cells equal, and
numeric cells equal within ABS_TOLERANCE (metrics are probabilities or nats; a rerun on another
machine may differ in the last digits of model log-probs, which moves a bootstrap interval a
little but no table entry by more than this).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ABS_TOLERANCE = 0.01


def compare_tables(new: Path, reference: Path) -> tuple[str, bool]:
    """A Markdown report of every difference between the CSV tables in `new` and `reference`,
    and whether they agree within the tolerance."""
    problems: list[str] = []
    ref_files = {p.name for p in reference.glob("*.csv")}
    new_files = {p.name for p in new.glob("*.csv")}
    for name in sorted(ref_files - new_files):
        problems.append(f"- {name}: committed but not regenerated")
    for name in sorted(new_files - ref_files):
        problems.append(f"- {name}: regenerated but not committed")
    compared = 0
    for name in sorted(ref_files & new_files):
        a, b = pd.read_csv(new / name), pd.read_csv(reference / name)
        compared += 1
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            problems.append(f"- {name}: shape or columns differ ({a.shape} vs {b.shape})")
            continue
        for column in a.columns:
            x, y = a[column], b[column]
            both_missing = x.isna() & y.isna()
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                bad = ~both_missing & ~((x - y).abs() <= ABS_TOLERANCE)
            else:  # pandas >= 3 keeps NaN through astype(str), and NaN != NaN
                bad = ~both_missing & (x.astype(object).astype(str) != y.astype(object).astype(str))
            for i in np.flatnonzero(bad.to_numpy()):
                problems.append(
                    f"- {name} row {i} `{column}`: {x.iloc[i]!r} vs committed {y.iloc[i]!r}"
                )
    head = (
        f"# Reproduction check\n\n{compared} tables compared; numeric tolerance "
        f"{ABS_TOLERANCE}.\n\n"
    )
    if problems:
        return head + f"{len(problems)} difference(s):\n\n" + "\n".join(problems) + "\n", False
    return head + "All tables agree within the tolerance.\n", True
