# Configuration checks and the wiring every rule needs (which model runs which task, which
# confidence signals a task grades). No computation happens here.
import json
import shlex
from pathlib import Path

from snakemake.utils import validate

from calibbench.tasks import SIGNALS, task_kind

validate(config, "../schemas/config.schema.yaml")

MODELS = list(config["models"])
TASKS = list(config["tasks"])
METHODS = list(config["methods"])
TEMPERATURES = ",".join(str(t) for t in config["temperatures"])
# Each method's code is an input of its jobs: editing one method re-runs only its jobs.
_RECALIBRATION = Path(workflow.main_snakefile).parent / "calibbench" / "recalibration"
METHOD_CODE = {
    "raw": _RECALIBRATION / "protocol.py",
    "temperature": _RECALIBRATION / "temperature.py",
    "platt": _RECALIBRATION / "platt.py",
    "isotonic": _RECALIBRATION / "isotonic.py",
    "histogram": _RECALIBRATION / "histogram.py",
    "beta": _RECALIBRATION / "beta.py",
}

for _model, _entry in config["models"].items():
    for _task in _entry.get("tasks", TASKS):
        if _task not in config["tasks"]:
            raise ValueError(f"models.{_model}.tasks: {_task!r} is not in tasks: {TASKS}")


def model_tasks(model):
    return config["models"][model].get("tasks", TASKS)


def runtime(model):
    return config["models"][model]["spec"]["runtime"]


def kind(task):
    return task_kind(config["tasks"][task]["spec"]["task"])


def has_followup(model, task):
    """QA asks P(True) after the answers; API models cannot score it (echo is not reliable)."""
    return kind(task) == "qa" and runtime(model) != "openai"


def accumulates(model, task):
    """Token-level statistics: full distributions of local runtimes, on scored tokens."""
    return kind(task) in ("multiple_choice", "language_modelling") and runtime(model) != "openai"


def signals(model, task):
    return [s for s in SIGNALS[kind(task)] if s != "p_true" or has_followup(model, task)]


PAIRS = [(m, t) for m in MODELS for t in model_tasks(m)]


def quoted_json(data):
    return shlex.quote(json.dumps(data))


def task_spec(wildcards):
    spec = dict(config["tasks"][wildcards.task]["spec"])
    return spec.pop("task"), quoted_json(spec)


def all_compare():
    return [f"results/compare/{m}/{t}/{s}.json" for m, t in PAIRS for s in signals(m, t)]


def all_sweeps():
    return [f"results/sweep/{m}/{t}.parquet" for m, t in PAIRS if accumulates(m, t)]


def all_tuning():
    tuning = config.get("calibration_tuning", {})
    return [
        f"results/tuning/{m}/{t}.json"
        for m in tuning.get("models", [])
        for t in tuning.get("tasks", [])
        if (m, t) in PAIRS
    ]


def all_predictions():
    return [
        f"results/recalibrate/{m}/{t}/{s}/{method}.parquet"
        for m, t in PAIRS
        for s in signals(m, t)
        for method in METHODS
    ]
