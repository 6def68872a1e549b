"""Language modelling (token level): teacher-forced scoring of held-out reference text.

The texts are the reference answers of other tasks, joined to their questions or contexts:
HellaSwag's context followed by its gold ending (ActivityNet and WikiHow captions), or a
multiple-choice question followed by its gold answer text. Every position of every text is one
next-token prediction; the collected `token_calibration.npz` holds Full-ECE, Brier, NLL and the
temperature curve over them. These tasks have no answer-level predictions: `grade` reports per
text the number of scored tokens and its log-likelihood, and no `correct`/`confidence`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task
from calibbench.tasks.multiple_choice import MultipleChoiceTask

SOURCES = ("hellaswag", "arc_easy", "arc_challenge", "openbookqa", "commonsense_qa", "mmlu")


class LanguageModellingTask(Task):
    """Reference texts from the cloze form of a multiple-choice task `source`."""

    kind = "language_modelling"
    scores_prompts = True
    confidence_columns: ClassVar[dict[str, str]] = {}

    def __init__(self, source: str = "hellaswag", subsets: list[str] | None = None):
        if source not in SOURCES:
            raise InputError(f"language modelling: source must be one of {SOURCES}, got {source!r}")
        self.name = f"lm_{source}"
        self._mc = MultipleChoiceTask(source, "cloze", subsets)

    def dataset(self) -> DatasetInfo:
        return self._mc.dataset()

    def items(self) -> pd.DataFrame:
        mc = self._mc.items()
        gold = [choices[g] for choices, g in zip(mc["choices"], mc["gold"], strict=True)]
        text = [c + g for c, g in zip(mc["context"], gold, strict=True)]
        ids = [i.replace(self._mc.base_name, self.name, 1) for i in mc["item_id"]]
        return pd.DataFrame({"item_id": ids, "text": text})

    def requests(self, items: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {"request_id": items["item_id"], "kind": "score", "text": items["text"]}
        )

    def grade(
        self,
        items: pd.DataFrame,
        records: pd.DataFrame,
        followup: pd.DataFrame | None = None,
        review: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        by_id = records.set_index("request_id")
        missing = sorted(set(items["item_id"]) - set(by_id.index))
        if missing:
            raise InputError(f"records: no result for request {missing[0]!r}")
        lps = [
            np.asarray(by_id.at[i, "token_logprobs"], dtype=np.float64) for i in items["item_id"]
        ]
        return pd.DataFrame(
            {"item_id": items["item_id"],
             "n_tokens": [len(lp) for lp in lps],
             "logprob": [float(lp.sum()) for lp in lps],
             "nll_per_token": [float(-lp.mean()) if len(lp) else np.nan for lp in lps]}
        )  # fmt: skip
