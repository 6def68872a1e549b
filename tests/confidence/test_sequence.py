"""Sequence confidences against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibbench.confidence import (
    geometric_mean_probability,
    mean_token_probability,
    min_token_probability,
    p_true,
    sampling_agreement,
    token_signals,
)
from calibbench.errors import InputError


def test_scores_of_known_probabilities():
    probs = [0.9, 0.5, 0.8, 0.1]
    lp = np.log(probs)
    assert mean_token_probability(lp) == pytest.approx(np.mean(probs))
    assert geometric_mean_probability(lp) == pytest.approx(np.prod(probs) ** 0.25)
    assert min_token_probability(lp) == pytest.approx(0.1)
    # AM >= GM >= min: pavg is the most optimistic of the three.
    assert mean_token_probability(lp) >= geometric_mean_probability(lp) >= min_token_probability(lp)


def test_empty_log_probs_and_bad_input_raise():
    for fn in (mean_token_probability, geometric_mean_probability, min_token_probability):
        with pytest.raises(InputError, match="empty"):
            fn([])
        with pytest.raises(InputError):
            fn([0.5])
        with pytest.raises(InputError):
            fn([float("nan")])


def test_sampling_agreement_and_p_true():
    assert sampling_agreement("Paris", ["Paris", "paris", "Lyon", "Paris"]) == 0.5
    same = lambda a, b: a.lower() == b.lower()  # noqa: E731
    assert sampling_agreement("Paris", ["Paris", "paris", "Lyon", "Paris"], same) == 0.75
    assert math.isnan(sampling_agreement("x", []))
    assert p_true(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert p_true(-1000.0, 0.0) == pytest.approx(0.0)


def test_token_signals_are_the_three_scores_or_explicitly_missing():
    lp = np.log([0.9, 0.2])
    assert token_signals(lp) == {
        "confidence": pytest.approx(0.55),
        "geometric_mean": pytest.approx(0.18**0.5),
        "min_token_prob": pytest.approx(0.2),
    }
    missing = token_signals([])
    assert list(missing) == ["confidence", "geometric_mean", "min_token_prob"]
    assert all(math.isnan(v) for v in missing.values())
    with pytest.raises(InputError):
        token_signals([0.5])
