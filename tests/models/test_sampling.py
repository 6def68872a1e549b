"""The partial-sort nucleus (top-p) set against the full stable sort it replaces."""

import numpy as np
import pytest

from calibbench.models.llamacpp import nucleus


def full_sort_nucleus(p: np.ndarray, top_p: float) -> np.ndarray:
    order = np.argsort(-p, kind="stable")
    return order[: int(np.searchsorted(np.cumsum(p[order]), top_p, side="left")) + 1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95, 0.999, 1.0])
def test_equals_the_full_stable_sort(seed, top_p):
    rng = np.random.default_rng(seed)
    for scale in (0.5, 3.0, 12.0):  # flat to peaked, as logits / T of a language model
        z = rng.standard_normal(5000) * scale
        z[rng.integers(0, 5000, 30)] = z.max()  # ties at the top
        z = np.round(z, 1)  # and ties everywhere
        p = np.exp(z - z.max())
        p /= p.sum()
        np.testing.assert_array_equal(nucleus(p, top_p), full_sort_nucleus(p, top_p))
        np.testing.assert_array_equal(nucleus(p, top_p, first_k=1), full_sort_nucleus(p, top_p))


def test_uniform_distribution_needs_every_doubling():
    p = np.full(1000, 1e-3)
    np.testing.assert_array_equal(nucleus(p, 0.9999), full_sort_nucleus(p, 0.9999))
