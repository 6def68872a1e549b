"""Splits are fixed by item id and seed, never by order."""

from __future__ import annotations

import numpy as np
import pytest

from calibbench.errors import InputError
from calibbench.splits import CALIBRATION, assign_splits


def test_split_is_fixed_by_id_not_order_and_has_the_requested_size():
    ids = [f"task/{i}" for i in range(1001)]
    a = assign_splits(ids, fraction=0.3, seed=7)
    shuffled = list(np.random.default_rng(0).permutation(ids))
    b = assign_splits(shuffled, fraction=0.3, seed=7)
    assert dict(zip(a.item_id, a.split, strict=True)) == dict(zip(b.item_id, b.split, strict=True))
    assert (a.split == CALIBRATION).sum() == round(0.3 * 1001)
    other = assign_splits(ids, fraction=0.3, seed=8)
    assert (other.split != a.split).any()


def test_bad_inputs():
    with pytest.raises(InputError, match="strictly between"):
        assign_splits(["a", "b"], fraction=1.0)
    with pytest.raises(InputError, match="unique"):
        assign_splits(["a", "a"])
