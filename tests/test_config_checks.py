"""Start-up checks of workflow configurations: each bad entry is reported with its key and fix,
all problems at once; network checks against a real local server and a closed port."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from calibbench.config_checks import ConfigError, check_config, check_services
from calibbench.models.builtin import gguf_path
from calibbench.models.llamacpp_server import LlamaCppServer, free_port

ROOT = Path(__file__).resolve().parents[1]


def _config(**models) -> dict:
    return {
        "models": models or {"m": {"spec": {"runtime": "llamacpp", "builtin": "smollm2-135m"}}},
        "tasks": {"arc": {"spec": {"task": "arc_easy"}},
                  "qa": {"spec": {"task": "triviaqa"}}},
    }  # fmt: skip


def _problems(config: dict, check=check_config) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(config)
    return info.value.problems


@pytest.mark.parametrize("name", ["default", "test", "full", "seed"])
def test_repository_configurations_pass(name):
    check_config(yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))


def test_missing_gguf_file_names_the_key_and_the_fix(tmp_path):
    (problem,) = _problems(_config(mine={"spec": {"runtime": "llamacpp",
                                                  "path": str(tmp_path / "x.gguf")}}))  # fmt: skip
    assert problem.startswith("models.mine.spec.path:") and "does not exist" in problem


def test_a_file_that_is_not_gguf_and_a_directory_are_refused(tmp_path):
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    for path, words in ((text, "is not a GGUF file"), (tmp_path, "is a directory")):
        (problem,) = _problems(_config(m={"spec": {"runtime": "llamacpp", "path": str(path)}}))
        assert "models.m.spec.path" in problem and words in problem


def test_transformers_directory_without_a_model(tmp_path):
    (problem,) = _problems(_config(m={"spec": {"runtime": "hf", "path": str(tmp_path)}}))
    assert "models.m.spec.path" in problem and "no config.json" in problem
    (tmp_path / "config.json").write_text("{}")
    (problem,) = _problems(_config(m={"spec": {"runtime": "hf", "path": str(tmp_path)}}))
    assert "no weights" in problem
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_config(_config(m={"spec": {"runtime": "hf", "path": str(tmp_path)}}))


def test_transformers_directory_with_a_gguf_file(tmp_path):
    shutil.copy(gguf_path("smollm2-135m"), tmp_path / "m.gguf")
    spec = {"runtime": "hf", "path": str(tmp_path), "gguf_file": "m.gguf"}
    check_config(_config(m={"spec": spec}))
    (problem,) = _problems(_config(m={"spec": spec | {"gguf_file": "n.gguf"}}))
    assert "models.m.spec.path + gguf_file" in problem


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"runtime": "vllm", "path": "x"}, "models.m.spec.runtime: expected one of"),
        ({"runtime": "llamacpp"}, "needs one of ['builtin', 'path']"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m", "path": "x"}, "not several"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m", "n_ctxx": 5}, "option(s) ['n_ctxx']"),
        ({"runtime": "llamacpp", "builtin": "gpt-5"}, "no built-in model is called 'gpt-5'"),
        ({"runtime": "hf", "hub": "no-owner"}, "expected a hub id like 'owner/model'"),
        ({"runtime": "openai", "base_url": "api.openai.com"}, "expected an http:// or https://"),
        ({"runtime": "openai", "base_url": "http://x/v1", "api_key": "sk-1"}, "never write a key"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m", "scoring_runtime": "openai"},
         "scoring_runtime: expected a local runtime"),
        ({"runtime": "hf", "builtin": "smollm2-135m", "scoring_runtime": "llamacpp"},
         "scoring_runtime: a second runtime for scoring is available for llamacpp entries"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m",
          "scoring_runtime": {"dtype": "bfloat16"}},
         "scoring_runtime: expected a local runtime, one of ['llamacpp', 'hf'], or a mapping"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m",
          "scoring_runtime": {"runtime": "hf", "dtype": "bf16"}},
         "scoring_runtime: dtype: expected one of ['float32', 'bfloat16', 'float16', 'float64'], "
         "got 'bf16'"),
        ({"runtime": "llamacpp", "builtin": "smollm2-135m",
          "scoring_runtime": {"runtime": "hf", "n_threads": 2}},
         "scoring_runtime: unknown option(s) ['n_threads'] for runtime hf"),
        ({"runtime": "hf", "builtin": "smollm2-135m", "dtype": "half"},
         "m.spec.dtype: expected one of ['float32', 'bfloat16', 'float16', 'float64'], got 'half'"),
    ],
)  # fmt: skip
def test_bad_model_entries(spec, words):
    config = _config(m={"spec": spec, "tasks": ["qa"]})
    assert any(words in p for p in _problems(config)), _problems(config)


def test_unknown_task_names_and_options():
    config = _config()
    config["tasks"]["x"] = {"spec": {"task": "mmlu_pro"}}
    config["tasks"]["y"] = {"spec": {"task": "arc_easy", "format": "essay"}}
    config["models"]["m"]["tasks"] = ["arc", "nonesuch"]
    problems = _problems(config)
    assert len(problems) == 3  # every problem at once
    assert any(p.startswith("tasks.x.spec.task: no task is called 'mmlu_pro'") for p in problems)
    assert any(p.startswith("tasks.y.spec:") and "format" in p for p in problems)
    assert any(p.startswith("models.m.tasks: 'nonesuch'") for p in problems)


def test_a_chat_model_cannot_score_options_but_can_read_the_first_token():
    chat = {"spec": {"runtime": "openai", "base_url": "https://api.openai.com/v1",
                     "model": "gpt-4o", "endpoint": "chat"}}  # fmt: skip
    (problem,) = _problems(_config(gpt=copy.deepcopy(chat)))
    assert problem.startswith("models.gpt.tasks: 'arc' scores given text")
    assert "answer: first_token" in problem
    config = _config(gpt=chat)
    config["tasks"]["arc"]["spec"] |= {"format": "letter", "answer": "first_token"}
    check_config(config)


def test_a_model_without_logprobs_runs_only_tasks_graded_from_text():
    """An API entry with logprobs: false runs open QA and code; multiple choice (options or the
    answer letter's alternatives) and language modelling are refused, each naming the option."""
    api = {"spec": {"runtime": "openai", "serve": "smollm2-135m", "logprobs": False}}
    config = _config(api=api)
    config["tasks"] |= {"letters": {"spec": {"task": "arc_easy", "format": "letter",
                                             "answer": "first_token"}},
                        "lm": {"spec": {"task": "lm", "source": "hellaswag"}},
                        "code": {"spec": {"task": "humaneval"}}}  # fmt: skip
    problems = _problems(config)
    assert len(problems) == 3, problems  # one each, none for qa or code
    for task, kind in (("arc", "multiple_choice"), ("letters", "multiple_choice"),
                       ("lm", "language_modelling")):  # fmt: skip
        (problem,) = [p for p in problems if p.startswith(f"models.api.tasks: {task!r}")]
        assert f"is a {kind} task" in problem and "logprobs: false" in problem
        assert "models.api.spec.logprobs: true" in problem
    config["models"]["api"]["tasks"] = ["qa", "code"]
    check_config(config)
    config["models"]["api"]["spec"]["logprobs"] = True  # the served model then reads letters
    config["models"]["api"]["tasks"] = ["qa", "code", "letters"]
    check_config(config)


def test_model_judged_clusters_need_a_model_that_scores_text():
    """equivalence: model asks the model to judge its samples in scored follow-ups: refused at
    start-up for a model that cannot score text, with the fix named; fine for a local model."""
    judged = {"spec": {"task": "triviaqa", "n_samples": 3, "equivalence": "model"}}
    api = {"spec": {"runtime": "openai", "serve": "smollm2-135m"}, "tasks": ["judged"]}
    config = _config(api=api)
    config["tasks"]["judged"] = judged
    (problem,) = _problems(config)
    assert problem.startswith("models.api.tasks: 'judged' has the model judge its own answers")
    assert "equivalence: normalised" in problem
    config["models"]["api"]["spec"]["logprobs"] = False  # nor one without log-probs
    (problem,) = _problems(config)
    assert "equivalence: model" in problem
    local = {"spec": {"runtime": "llamacpp", "builtin": "smollm2-135m"}, "tasks": ["judged"]}
    check_config(_config(local=local) | {"tasks": {"judged": judged}})


@pytest.mark.parametrize("value", ["false", 0, None])
def test_logprobs_must_be_true_or_false(value):
    spec = {"runtime": "openai", "base_url": "http://x/v1", "logprobs": value}
    (problem,) = _problems(_config(api={"spec": spec, "tasks": ["qa"]}))
    assert problem.startswith("models.api.spec.logprobs: expected true or false")


def test_calibration_tuning_needs_local_models_and_mc_or_qa_tasks():
    config = _config(api={"spec": {"runtime": "openai", "serve": "smollm2-135m"}, "tasks": ["qa"]})
    config["tasks"]["lm"] = {"spec": {"task": "lm", "source": "hellaswag"}}
    config["models"]["api"]["tasks"] = ["qa"]
    config["calibration_tuning"] = {"models": ["api"], "tasks": ["lm"]}
    problems = _problems(config)
    assert any("calibration_tuning.models: 'api' is an API model" in p for p in problems)
    assert any("calibration_tuning.tasks: 'lm' is a language_modelling task" in p for p in problems)


# Services -----------------------------------------------------------------------------------


def _api(**spec) -> dict:
    return _config(api={"spec": {"runtime": "openai"} | spec, "tasks": ["qa"]})


def test_missing_api_key(monkeypatch):
    for env in ("CALIBBENCH_API_KEY", "OPENAI_API_KEY", "MY_KEY"):
        monkeypatch.delenv(env, raising=False)
    (problem,) = _problems(_api(base_url="https://api.openai.com/v1", model="gpt-4o"),
                           check_services)  # fmt: skip
    assert problem.startswith("models.api.spec.api_key_env: no API key")
    assert "export CALIBBENCH_API_KEY=" in problem
    (problem,) = _problems(_api(base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY"),
                           check_services)  # fmt: skip
    assert "MY_KEY is not set" in problem


def test_endpoint_that_does_not_answer():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    (problem,) = _problems(_api(base_url=url, model="x"), check_services)
    assert problem.startswith("models.api.spec.base_url:") and "does not answer" in problem


@pytest.mark.model
def test_endpoint_that_does_not_serve_the_named_model():
    with LlamaCppServer(gguf_path("smollm2-135m"), n_ctx=256,
                        extra_args=("--model_alias", "smollm2")) as server:  # fmt: skip
        (problem,) = _problems(_api(base_url=server.base_url, model="gpt-4o"), check_services)
        assert problem.startswith("models.api.spec.model:") and "does not serve 'gpt-4o'" in problem
        assert "['smollm2']" in problem
        check_services(_api(base_url=server.base_url, model="smollm2"))


def test_hub_id_not_in_the_offline_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    config = _config(m={"spec": {"runtime": "hf", "hub": "nobody/no-model"}})
    (problem,) = _problems(config, check_services)
    assert problem.startswith("models.m.spec.hub:") and "not in the local hub cache" in problem


def test_hub_that_cannot_be_reached(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    config = _config(m={"spec": {"runtime": "hf", "hub": "meta-llama/Llama-2-7b-chat-hf"}})
    (problem,) = _problems(config, check_services)
    assert problem.startswith("models.m.spec.hub:") and "needs network" in problem


def test_services_of_local_entries_need_nothing():
    check_services(yaml.safe_load((ROOT / "config" / "default.yaml").read_text()))


def test_error_message_lists_every_problem():
    config = _config(a={"spec": {"runtime": "llamacpp", "path": "/nope.gguf"}},
                     b={"spec": {"runtime": "hf", "path": "/nope"}})  # fmt: skip
    with pytest.raises(ConfigError) as info:
        check_config(config)
    text = str(info.value)
    assert text.startswith("2 problem(s)") and "models.a.spec.path" in text
    assert "models.b.spec.path" in text and json.dumps(text)
