"""Seeded synthetic prediction logs, with a drift injected from a given day on: for the tests,
the benchmark, and trying `calibbench monitor log` without a log of one's own.

Before the shift, confidence c ~ Beta(5, 1.5) and an answer is correct with probability
q(c) = clip(0.8 c + 0.1, 0, 1) (an over-confident model), in two segments of the column `task`
("qa" and "code", equally likely). From `shift.day` on (days after the start), one of:

- "inflate": the stated confidence becomes c^(1 / size) (size > 1 inflates it), correctness
  still follows q(c) of the original c;
- "accuracy": correct with probability q(c) - size;
- "segment": correct with probability q(c) - size in segment "code" and q(c) + size in "qa",
  so each confidence bin's accuracy over both segments is unchanged (for q in [size, 1 - size]).

Timestamps are uniform over the days and sorted; `id` numbers the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from calibbench.errors import InputError

KINDS = ("inflate", "accuracy", "segment")
SEGMENTS = ("qa", "code")


@dataclass(frozen=True)
class Shift:
    """kind (one of KINDS), the first day it applies (0 = the start), and its size."""

    kind: str
    day: int
    size: float

    @classmethod
    def parse(cls, text: str) -> Shift:
        """KIND:DAY:SIZE, e.g. accuracy:120:0.15; InputError names --shift."""
        parts = text.split(":")
        try:
            kind, day, size = parts[0], int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise InputError(
                f"--shift: expected KIND:DAY:SIZE such as accuracy:120:0.15, got {text!r}"
            ) from None
        if kind not in KINDS or len(parts) != 3:
            raise InputError(f"--shift: the kind must be one of {KINDS}, got {text!r}")
        return cls(kind, day, size)


def synthetic_log(
    n: int, days: int = 180, start: str = "2024-01-01", seed: int = 0, shift: Shift | None = None
) -> pa.Table:
    """n predictions over `days` days from `start` (see the module docstring): columns
    timestamp (UTC, seconds), confidence, outcome (0/1), task, id."""
    if n < 1 or days < 1:
        raise InputError(f"synthetic_log: n and days must be positive, got {n} and {days}")
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, days * 86_400, size=n))
    day = seconds // 86_400
    c = rng.beta(5.0, 1.5, size=n)
    segment = rng.integers(0, 2, size=n)
    q = 0.8 * c + 0.1
    stated = c
    if shift is not None:
        after = day >= shift.day
        if shift.kind == "inflate":
            stated = np.where(after, c ** (1.0 / shift.size), c)
        elif shift.kind == "accuracy":
            q = np.where(after, q - shift.size, q)
        else:
            q = np.where(after, q + np.where(segment == 0, shift.size, -shift.size), q)
    outcome = rng.uniform(size=n) < np.clip(q, 0.0, 1.0)
    origin = np.datetime64(start, "s").astype(np.int64)
    return pa.table(
        {
            "timestamp": pa.array(origin + seconds, pa.timestamp("s", tz="UTC")),
            "confidence": stated,
            "outcome": outcome.astype(np.int8),
            "task": pa.DictionaryArray.from_arrays(segment.astype(np.int8), list(SEGMENTS)).cast(
                pa.string()
            ),
            "id": np.arange(n, dtype=np.int64),
        }
    )
