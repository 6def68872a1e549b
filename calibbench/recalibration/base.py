"""The contract every recalibration method follows (scikit-learn's estimator shape), and the
registry the protocol, the workflow's schema and DAG, and the paper read methods from.

- `__init__(**hyper_parameters)` stores them and checks nothing;
- `fit(X, y)` validates its inputs and hyper-parameters, learns, and returns the method; learned
  state ends in `_`;
- `predict(X)` returns, per item, the calibrated probability that its answer is correct, (N,)
  float64 in [0, 1], and never refits;
- `to_json()` gives a small JSON-ready dict and `Recalibrator.from_json` rebuilds the fitted
  method exactly, so a fitted method is stored with the results as an artifact;
- `inputs(frame, signal, correct)` reads what `fit` and `predict` take from a graded table (one
  row per item): a scalar calibrator takes the signal's column and the outcomes; temperature
  scaling takes the options' log-likelihoods and the gold option. A method that does not apply to
  a signal raises `NotApplicable` there, with the reason.

A method is registered by defining its class (a subclass with a `name`) in a module of
`calibbench.recalibration.methods`: `all_methods()` imports that package's modules and returns every
registered per-item method. Nothing else lists methods.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from calibbench.errors import InputError
from calibbench.validation import as_answer_pair, as_confidence

T = TypeVar("T", bound="Recalibrator")

#: Every method class by name, registered when its module is imported (`from_json` reads it).
REGISTRY: dict[str, type[Recalibrator]] = {}
#: The package whose modules are the per-item methods.
METHODS_PACKAGE = "calibbench.recalibration.methods"


class NotApplicable(InputError):
    """A method cannot be fitted on this signal or these data (the message says why)."""


class Recalibrator(ABC):
    """Base of all methods (see the module docstring). Subclasses set `name` and `learned` (the
    names of their learned attributes, without the trailing `_`) and implement `fit`, `predict`,
    `_params` and, for per-item methods, `inputs`.

    order: position in tables and tie-breaks (simpler methods first). min_items: fewest
    calibration items `fit` accepts. per_item: a method of the protocol (False for estimators
    that calibrate something else, such as token-level temperatures).
    """

    name: ClassVar[str]
    order: ClassVar[int] = 100
    min_items: ClassVar[int] = 2
    learned: ClassVar[tuple[str, ...]] = ()
    per_item: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    @classmethod
    def for_protocol(cls: type[T], n_bins: int) -> T:
        """The method as the protocol fits it (hyper-parameters that follow the metrics' bins
        take `n_bins`)."""
        return cls()

    @classmethod
    @abstractmethod
    def inputs(cls, frame: pd.DataFrame, signal: str, correct: str) -> tuple[Any, np.ndarray]:
        """(X, y) for `fit` (and X for `predict`) from a graded table; raises NotApplicable."""

    @abstractmethod
    def fit(self: T, X: Any, y: ArrayLike) -> T:
        """Learn from the calibration items; returns self."""

    @abstractmethod
    def predict(self, X: Any) -> np.ndarray:
        """(N,) calibrated probabilities that each answer is correct, in [0, 1]."""

    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `from_json`) has set the learned state."""
        return all(hasattr(self, f"{k}_") for k in self.learned)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise InputError(f"{self.name}: call fit() before predict()")

    def _check_size(self, n: int) -> None:
        if n < self.min_items:
            raise NotApplicable(
                f"{self.name}.fit: needs at least {self.min_items} calibration items, got {n}"
            )

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
        all_methods()  # registers every method
        try:
            method = REGISTRY[data["method"]]
            obj = method(**data["params"])
            obj._load(data["state"])
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a fitted calibbench recalibration method: {exc}") from None
        if not isinstance(obj, cls):
            raise InputError(f"JSON holds a {method.__name__}, not a {cls.__name__}")
        return obj


def all_methods() -> dict[str, type[Recalibrator]]:
    """Every per-item method by name, in table order (`order`, then name). Imports the modules
    of `calibbench.recalibration.methods` once, which registers their classes."""
    package = importlib.import_module(METHODS_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{METHODS_PACKAGE}.{module.name}")
    found = [(c.order, n, c) for n, c in REGISTRY.items() if c.per_item]
    return {name: cls for _, name, cls in sorted(found)}


def get_method(name: str) -> type[Recalibrator]:
    """The per-item method called `name`; InputError lists the known ones."""
    known = all_methods()
    if name not in known:
        raise InputError(f"unknown recalibration method {name!r}; methods: {list(known)}")
    return known[name]


class ScalarCalibrator(Recalibrator):
    """Maps one confidence per item to a calibrated probability of being correct.

    `fit(confidence, correct)` with 1-D arrays (N,), N >= `min_items`; `predict(confidence)`
    returns calibrated probabilities of the same shape, in [0, 1]. Applies to every signal.
    """

    @classmethod
    def inputs(cls, frame: pd.DataFrame, signal: str, correct: str) -> tuple[Any, np.ndarray]:
        return frame[signal].to_numpy(np.float64), frame[correct].to_numpy(bool)

    def fit(self: T, X: ArrayLike, y: ArrayLike) -> T:
        c, outcome = as_answer_pair(X, y)
        if c.ndim != 1:
            raise InputError(f"{self.name}.fit: expected 1-D inputs, got shape {c.shape}")
        self._check_size(len(c))
        self._fit(c, outcome)
        return self

    @abstractmethod
    def _fit(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        """Learn from validated float64 confidences and bool outcomes."""

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Calibrated probabilities for confidences `X` (any shape), float64 in [0, 1]."""
        self._check_fitted()
        return np.clip(self._predict(as_confidence(X)), 0.0, 1.0)

    @abstractmethod
    def _predict(self, confidence: np.ndarray) -> np.ndarray:
        """Map validated float64 confidences."""
