"""The reproduction check: regenerated tables against the committed ones, within tolerances.

Tables are compared as CSV: the same files, the same columns and rows, text cells equal, and
numeric cells equal within ABS_TOLERANCE (metrics are probabilities or nats; a rerun on another
machine may differ in the last digits of model log-probs, which moves a bootstrap interval a
little but no table entry by more than this).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ABS_TOLERANCE = 0.01


@dataclass(frozen=True)
class TableCheck:
    """The outcome of comparing regenerated tables with reference ones: `report` (Markdown),
    the number of tables compared and of differences found, and whether they agree."""

    report: str
    n_tables: int
    n_differences: int

    @property
    def agree(self) -> bool:
        return self.n_differences == 0


def compare_tables(new: Path, reference: Path) -> tuple[str, bool]:
    """A Markdown report of every difference between the CSV tables in `new` and `reference`,
    and whether they agree within the tolerance."""
    check = check_tables(new, reference)
    return check.report, check.agree


def check_tables(new: Path, reference: Path) -> TableCheck:
    """Compare the CSV tables in `new` with those in `reference` (see the module docstring)."""
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
        body = f"{len(problems)} difference(s):\n\n" + "\n".join(problems) + "\n"
    else:
        body = "All tables agree within the tolerance.\n"
    return TableCheck(head + body, compared, len(problems))
