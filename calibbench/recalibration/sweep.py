"""Temperature sweeps: calibration and accuracy at a grid of temperatures, from one pass.

The seed article's advice is to try temperatures between 0.7 and 1.3 and to watch both
calibration and accuracy. Argmax accuracy cannot move with T (softmax(z / T) keeps the order of
z); sampled accuracy (the probability of the right answer, i.e. the accuracy of sampling at T)
does, and is reported next to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import softmax

from calibbench.errors import InputError
from calibbench.metrics.binned import ece
from calibbench.metrics.scores import brier, nll
from calibbench.metrics.token import TokenMetrics

#: The default grid: 0.5 to 2.0, including 0.7, 0.85, 1.0, 1.2 and 1.3.
DEFAULT_TEMPERATURES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0)


def token_sweep(metrics: TokenMetrics) -> pd.DataFrame:
    """One row per temperature of a token-level accumulator: ECE (top-1), Full-ECE, Brier,
    NLL, argmax and sampled accuracy, entropy."""
    frame = metrics.to_frame()
    columns = ["temperature", "top1_ece", "full_ece", "brier", "nll", "argmax_accuracy",
               "sampled_accuracy", "entropy", "n_positions", "approximation"]  # fmt: skip
    return frame[columns]


def answer_sweep(
    option_logprobs: Sequence[ArrayLike],
    gold: ArrayLike,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    n_bins: int = 15,
) -> pd.DataFrame:
    """One row per temperature for multiple-choice items (option log-likelihoods and gold index):
    top-label ECE, Brier and NLL of the top option's confidence, the multi-class NLL of the gold
    option, argmax accuracy and sampled accuracy (mean probability of the gold option)."""
    rows = [np.asarray(r, dtype=np.float64) for r in option_logprobs]
    y = np.asarray(gold, dtype=np.int64)
    if len(rows) != len(y) or not rows:
        raise InputError("answer_sweep: need one gold index per item and at least one item")
    out = []
    for t in temperatures:
        if not t > 0:
            raise InputError(f"answer_sweep: temperatures must be positive, got {t}")
        p = [softmax(r / t) for r in rows]
        top = np.array([q.max() for q in p])
        correct = np.array([int(np.argmax(q)) == g for q, g in zip(p, y, strict=True)])
        p_gold = np.array([q[g] for q, g in zip(p, y, strict=True)])
        out.append({
            "temperature": float(t),
            "ece": ece(top, correct, n_bins=n_bins),
            "brier": brier(top, correct),
            "nll": nll(top, correct),
            "gold_nll": float(-np.mean(np.log(np.maximum(p_gold, 1e-300)))),
            "argmax_accuracy": float(correct.mean()),
            "sampled_accuracy": float(p_gold.mean()),
        })  # fmt: skip
    return pd.DataFrame(out)
