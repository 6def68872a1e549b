"""The interface every recalibration method follows (scikit-learn style).

Hyper-parameters are set in `__init__`; `fit(...)` learns from the calibration split and returns
self; `transform(...)` maps new confidences and never refits; learned state ends in `_`.
`to_json()` gives a small JSON-ready dict and `from_json` rebuilds the fitted method exactly, so a
fitted method is stored with the results as an artifact.

Scalar calibrators map a confidence c in [0, 1] (an option probability, pavg, P(True), ...) and
the outcome `correct` to a calibrated probability of being correct.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from calibbench.errors import InputError
from calibbench.validation import as_answer_pair, as_confidence

T = TypeVar("T", bound="Recalibrator")

#: Registered method classes by name, for `from_json`.
REGISTRY: dict[str, type[Recalibrator]] = {}


class Recalibrator(ABC):
    """Base of all methods. Subclasses set `name`, `min_items` and `learned` (the names of their
    learned attributes, without the trailing `_`), and implement `_params`."""

    name: ClassVar[str]
    #: Fewest calibration items `fit` accepts (InputError below it).
    min_items: ClassVar[int] = 2
    #: Learned attributes, stored as `<name>_`; numbers, strings or arrays of floats.
    learned: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `from_json`) has set the learned state."""
        return all(hasattr(self, f"{k}_") for k in self.learned)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise InputError(f"{self.name}: call fit() before transform()")

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """Hyper-parameters, as passed to `__init__`."""

    def _state(self) -> dict[str, Any]:
        out = {}
        for k in self.learned:
            value = getattr(self, f"{k}_")
            out[k] = value.tolist() if isinstance(value, np.ndarray) else value
        return out

    def _load(self, state: dict[str, Any]) -> None:
        for k in self.learned:
            value = state[k]
            setattr(
                self,
                f"{k}_",
                np.asarray(value, dtype=np.float64) if isinstance(value, list) else value,
            )

    def to_json(self) -> dict[str, Any]:
        """{"method": name, "params": ..., "state": ...}; round-trips through `from_json`."""
        self._check_fitted()
        return {"method": self.name, "params": self._params(), "state": self._state()}

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any] | str) -> T:
        """Rebuild a fitted method from `to_json()` output (a dict or its JSON text)."""
        data = json.loads(data) if isinstance(data, str) else data
        try:
            method = REGISTRY[data["method"]]
            obj = method(**data["params"])
            obj._load(data["state"])
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a fitted calibbench recalibration method: {exc}") from None
        if not isinstance(obj, cls):
            raise InputError(f"JSON holds a {method.__name__}, not a {cls.__name__}")
        return obj


class ScalarCalibrator(Recalibrator):
    """Maps one confidence per item to a calibrated probability of being correct.

    `fit(confidence, correct)` with 1-D arrays (N,), N >= `min_items`; `transform(confidence)`
    returns calibrated probabilities of the same shape, in [0, 1].
    """

    def fit(self: T, confidence: ArrayLike, correct: ArrayLike) -> T:
        c, y = as_answer_pair(confidence, correct)
        if c.ndim != 1:
            raise InputError(f"{self.name}.fit: expected 1-D inputs, got shape {c.shape}")
        if len(c) < self.min_items:
            raise InputError(
                f"{self.name}.fit: needs at least {self.min_items} calibration items, got {len(c)}"
            )
        self._fit(c, y)
        return self

    @abstractmethod
    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        """Learn from validated float64 confidences and bool outcomes."""

    def transform(self, confidence: ArrayLike) -> np.ndarray:
        """Calibrated probabilities for `confidence` (any shape), float64 in [0, 1]."""
        self._check_fitted()
        return np.clip(self._transform(as_confidence(confidence)), 0.0, 1.0)

    @abstractmethod
    def _transform(self, confidence: np.ndarray) -> np.ndarray:
        """Map validated float64 confidences."""
