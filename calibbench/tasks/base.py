"""What a task is: items from a data set, the requests a model answers, and grading.

A task turns its data set into `items` (a DataFrame, one row per item, with a stable `item_id`),
the items into `requests` for `calibbench.collect` (`request_id` = item_id, or item_id/suffix
when an item needs several requests), and the collected records back into graded rows:

- item_id, correct (bool) and confidence (float in [0, 1]) for the task's primary prediction,
- further `<name>` confidence columns and `correct_<name>` columns where a task has several
  predictions or confidence signals (documented by each task's `confidence_columns`).

Some tasks ask further questions after the first answers, in at most two rounds:
`review_requests` (generated replies about the answer: a stated probability, a self-review) and
then `followup_requests` (scored text: P(True), P(True) after the review), each built from the
records before it; `grade` then receives every round's records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pandas as pd

KINDS = ("multiple_choice", "code", "qa", "language_modelling")


@dataclass(frozen=True)
class DatasetInfo:
    """Provenance of a task's data: what the paper cites and what makes results reproducible.

    name: data set name; subset: configuration or subject, if any; split: the split used;
    licence: the data set's own licence; n_items: items in the split; sha256: hash of the
    items' content as calibbench reads them; source: file path or hub id; url: where the data
    set is described.
    """

    name: str
    subset: str | None
    split: str
    licence: str
    n_items: int
    sha256: str
    source: str
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


class Task(ABC):
    """A benchmark task. Subclasses set `name`, `kind` and `confidence_columns`."""

    name: str
    kind: str
    #: Whether the task's own requests score given text (option log-likelihoods, language
    #: modelling), which needs a model with prompt log-probs; generation tasks do not.
    scores_prompts: bool = False
    #: Confidence columns that `grade` adds besides `confidence`, with what each one means.
    confidence_columns: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def dataset(self) -> DatasetInfo:
        """The data set behind the task (reads the data if needed)."""

    @abstractmethod
    def items(self) -> pd.DataFrame:
        """All items, one row each, with a unique string `item_id`, in a fixed order."""

    @abstractmethod
    def requests(self, items: pd.DataFrame) -> pd.DataFrame:
        """Requests for `calibbench.collect` (one kind per table) for these items."""

    @property
    def needs_scored_followup(self) -> bool:
        """Whether signals other than P(True) come from scored follow-up requests, so the task
        needs a model that scores text even where P(True) alone would be left out."""
        return False

    @property
    def has_review(self) -> bool:
        """Whether the task (with its options) has review requests (see `review_requests`)."""
        return False

    def review_requests(self, items: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame | None:
        """Generate requests that depend on the first answers (None when the task has none)."""
        return None

    def followup_requests(
        self, items: pd.DataFrame, records: pd.DataFrame, review: pd.DataFrame | None = None
    ) -> pd.DataFrame | None:
        """Scored requests that depend on the first answers and, where the task has them, the
        review records (None when the task has none)."""
        return None

    @abstractmethod
    def grade(
        self,
        items: pd.DataFrame,
        records: pd.DataFrame,
        followup: pd.DataFrame | None = None,
        review: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """One row per item: item_id, correct, confidence and the task's extra columns, from the
        records of the task's requests and of its follow-up and review rounds."""
