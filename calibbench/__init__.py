"""calibbench: a reproducible benchmark of the calibration of language-model token probabilities."""

__version__ = "0.1.0"
