"""The seed article's calibration table, stored once as data (`data/article_table.csv`), and
its rows set beside what a run measured.

Source: the seed article this project implements ("most LLMs are right far less often than
their probabilities claim"), its table comparing five models by size, Brier score, ECE and the
recalibration method it recommends, as quoted in calibbench issue #10. Values are kept exactly as
the article reports them (text: "< 0.10" is an upper bound, not a number); the article does not
say on which tasks they were measured.

A configuration maps its models onto the article's rows with `article: <model in the table>` in
a model entry (see config/seed.yaml); runs without such entries get no article columns.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from io import StringIO
from typing import Any

import pandas as pd

from calibbench.errors import InputError

#: Columns the article reports, as they appear beside the measured ones.
REPORTED = {"size": "article_size", "brier": "article_brier", "ece": "article_ece",
            "best_method": "article_best_method"}  # fmt: skip


@functools.cache
def article_table() -> pd.DataFrame:
    """The article's table: model, size, brier, ece, best_method (all as reported, text)."""
    text = files("calibbench.paper").joinpath("data/article_table.csv").read_text()
    return pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)


def article_models(config: dict[str, Any]) -> dict[str, str]:
    """calibbench model name -> article row, from the `article:` keys of a configuration's
    models and lm-eval logs; raises InputError for a name the article's table does not have."""
    known = set(article_table()["model"])
    mapping = {}
    entries = [("models", m, e) for m, e in config.get("models", {}).items()]
    entries += [("lm_eval", m, e) for m, e in config.get("lm_eval", {}).items()]
    for section, model, entry in entries:
        row = entry.get("article")
        if row is None:
            continue
        if row not in known:
            raise InputError(
                f"{section}.{model}.article: the article's table has no model {row!r}; its models "
                f"are {sorted(known)}"
            )
        mapping[model] = row
    return mapping


def with_article(headline: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """The headline table with the article's reported values of each mapped model beside the
    measured ones (unchanged when nothing is mapped)."""
    if not mapping or headline.empty:
        return headline
    table = article_table().set_index("model")
    out = headline.copy()
    out.insert(1, "article_model", out["model"].map(mapping).fillna(""))
    for column, name in REPORTED.items():
        out[name] = [table.loc[m, column] if m else "" for m in out["article_model"]]
    return out
