"""Smooth ECE (Błasiok & Nakkiran 2023), computed by Apple's `relplot` package.

relplot is imported when the metric is called, so that importing calibbench's metrics does not
load it (it pulls in matplotlib and seaborn).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from calibbench.errors import InputError
from calibbench.validation import as_answer_pair


def smooth_ece(confidence: ArrayLike, correct: ArrayLike) -> float:
    """SmoothECE of 1-D (N,) inputs: `relplot.smECE(confidence, correct)`, in [0, 1].

    The residuals confidence - correct are smoothed over [0, 1] with relplot's default kernel (a
    Gaussian reflected at 0 and 1) whose bandwidth s is the fixed point s = smECE at bandwidth s,
    found by relplot's bisection; no bins. Raises InputError for batched or invalid input, and
    ImportError naming the package when relplot is not installed.
    """
    c, y = as_answer_pair(confidence, correct)
    if c.ndim != 1:
        raise InputError(
            f"smooth_ece: expected 1-D confidence and correct, got shape {c.shape}; "
            "compute one value per row"
        )
    try:
        import relplot
    except ImportError as exc:
        raise ImportError(
            "smooth_ece needs Apple's relplot package: pip install 'relplot>=1.0' (or install "
            "calibbench with its bench extra)"
        ) from exc
    return float(relplot.smECE(c, y.astype(np.float64)))
