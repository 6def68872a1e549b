"""Seeded calibration/test splits, fixed by item id.

Each item's rank in the order of SHA-256(seed, item_id) decides its side: the first
round(fraction * N) items are the calibration split, the rest the test split. The assignment does
not depend on the order of the items, only on the seed and the set of ids; every recalibration
method is fitted on the same calibration items and scored on the same test items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from calibbench.errors import InputError

CALIBRATION = "calibration"
TEST = "test"


def assign_splits(item_ids: Sequence[str], fraction: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """DataFrame with item_id and split ("calibration" or "test"), in the order given.

    Raises InputError for duplicate ids or a fraction outside (0, 1).
    """
    ids = [str(i) for i in item_ids]
    if not 0.0 < fraction < 1.0:
        raise InputError(f"calibration fraction must be strictly between 0 and 1, got {fraction}")
    if len(set(ids)) != len(ids):
        raise InputError("item ids must be unique to be split")
    keys = [hashlib.sha256(f"{seed}\0{i}".encode()).hexdigest() for i in ids]
    order = np.argsort(np.array(keys), kind="stable")
    n_cal = round(fraction * len(ids))
    side = np.full(len(ids), TEST, dtype=object)
    side[order[:n_cal]] = CALIBRATION
    return pd.DataFrame({"item_id": ids, "split": side})
