"""Run names, run-directory ownership, the end-of-run summary, starter configurations and the
seed article's table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from calibbench.config_checks import check_config
from calibbench.errors import InputError
from calibbench.paper.article import article_models, article_table, with_article
from calibbench.runs import check_owner, record_owner, run_name, summary_text
from calibbench.starter import STARTER_TASKS, starter_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflows" / "schemas" / "config.schema.yaml"


def test_run_name_from_the_name_key_else_the_file_stem():
    assert run_name({}, ["config/default.yaml"]) == "default"
    assert run_name({}, ["/a/b/my-run.v2.yaml"]) == "my-run.v2"
    with pytest.raises(InputError, match="cannot name a run directory"):
        run_name({}, ["/a/b/my run.yaml"])
    assert run_name({"name": "mine"}, ["config/default.yaml"]) == "mine"
    with pytest.raises(InputError, match="name:"):
        run_name({"name": "../up"}, [])
    with pytest.raises(InputError, match="no name and no file"):
        run_name({}, [])


def test_a_second_configuration_file_cannot_take_a_run_directory(tmp_path):
    a, b = tmp_path / "a" / "x.yaml", tmp_path / "b" / "x.yaml"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text("seed: 0\n")
    run = tmp_path / "runs" / "x"
    check_owner(run, a)  # nothing recorded yet
    record_owner(run, a)
    check_owner(run, a)
    with pytest.raises(InputError, match=r"belongs to the configuration .*a/x.yaml"):
        check_owner(run, b)
    a.unlink()  # the owner is gone: the run may be taken over
    check_owner(run, b)
    assert json.loads((run / "source.json").read_text())["configfile"] == str(a.resolve())


def test_article_table_holds_the_articles_values():
    table = article_table().set_index("model")
    # The article's table as quoted in issue #10 (model, size, Brier, ECE, best method).
    assert table.loc["GPT-4o"].tolist() == ["large", "0.09", "< 0.10", "temperature scaling (0.85)"]
    assert table.loc["GPT-3.5-turbo"].tolist() == ["medium", "0.18", "0.22", "calibration-tuning"]
    assert table.loc["Llama-2-7B"].tolist() == ["small", "0.32", "0.28",
                                                "temperature scaling (1.2)"]  # fmt: skip
    assert table.loc["Gemma-7B"].tolist() == ["small", "0.35", "0.31", "calibration-tuning"]
    assert table.loc["Phi-3-Mini"].tolist() == [
        "very small", "0.41", "0.37", "not recommended for high-stakes use"
    ]  # fmt: skip


def test_headline_gets_the_articles_values_beside_the_measured_ones():
    headline = pd.DataFrame({"model": ["gpt", "local"], "task": ["mmlu", "mmlu"],
                             "brier": [0.1, 0.3], "ece": [0.05, 0.2]})  # fmt: skip
    config = {"models": {"gpt": {"article": "GPT-4o"}, "local": {}}}
    out = with_article(headline, article_models(config))
    assert list(out.columns[:2]) == ["model", "article_model"]
    assert out.loc[0, ["article_brier", "article_ece"]].tolist() == ["0.09", "< 0.10"]
    assert out.loc[1, "article_model"] == "" and out.loc[1, "article_brier"] == ""
    assert with_article(headline, {}).equals(headline)
    with pytest.raises(InputError, match=r"models\.gpt\.article: the article's table has no"):
        article_models({"models": {"gpt": {"article": "GPT-5"}}})
    text = summary_text(Path("runs/seed"), out, None)
    assert "The seed article reported" in text and "< 0.10" in text


def test_summary_says_where_the_paper_is_and_whether_it_reproduced():
    headline = pd.DataFrame({"model": ["m"], "task": ["t"], "accuracy": [0.5], "brier": [0.25],
                             "ece": [0.1], "best_method": ["platt"]})  # fmt: skip
    ok = {"agree": True, "n_tables": 8, "n_differences": 0, "reference": "paper/tables",
          "report": "runs/default/reproduction.md"}  # fmt: skip
    text = summary_text(Path("runs/default"), headline, ok)
    assert "runs/default/paper/paper.html" in text and "| m       | t      | 0.500" in text
    assert "all 8 tables agree with the reference paper/tables" in text
    bad = ok | {"agree": False, "n_differences": 3}
    assert "3 difference(s)" in summary_text(Path("runs/default"), headline, bad)


@pytest.mark.parametrize(
    ("kind", "source", "tasks"),
    [("gguf", "MODEL", list(STARTER_TASKS)), ("hf", "DIR", ["mmlu", "humaneval"]),
     ("hub", "Qwen/Qwen2.5-0.5B-Instruct", ["arc_easy"]),
     ("api", "https://api.openai.com/v1", ["triviaqa", "humaneval"])],
)  # fmt: skip
def test_starter_configurations_validate(kind, source, tasks, tmp_path):
    from calibbench.models.builtin import gguf_path

    if source == "MODEL":
        source = str(gguf_path("smollm2-135m"))
    elif source == "DIR":
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "model.safetensors").write_bytes(b"")
        source = str(tmp_path)
    text = starter_config(kind, source, tasks, name="mine", api_model="gpt-4o")
    config = yaml.safe_load(text)
    validate(config, str(SCHEMA))
    check_config(config)
    assert config["name"] == "mine" and list(config["tasks"]) == tasks
    assert text.count("#") > 10  # commented


def test_starter_refuses_what_cannot_run():
    with pytest.raises(InputError, match="generation tasks"):
        starter_config("api", "https://x/v1", ["mmlu"], name="n", api_model="m")
    with pytest.raises(InputError, match="--api-model"):
        starter_config("api", "https://x/v1", ["triviaqa"], name="n")
    with pytest.raises(InputError, match="unknown"):
        starter_config("gguf", "x.gguf", ["mmlu_pro"], name="n")
