# Configuration checks, the run directory, and the wiring every rule needs (which model runs
# which task, which confidence signals a task grades). No computation happens here.
import json
import os
import re
import shlex
from pathlib import Path

from calibbench import plan
from calibbench.config_checks import check_config, check_services, validate_config
from calibbench.lmeval import workflow as lmeval
from calibbench.runs import RUNS, check_owner, record_owner, run_name
from calibbench.sources import method_sources, module_sources
from calibbench.tasks import get_task

REPO = Path(workflow.main_snakefile).parent
# Everything visible before a job runs is checked now: the schema, then model files, task names
# and options, and which model can run which task. Endpoints, API keys and hub ids are checked
# once a real run starts (onstart), so a configuration for another machine still dry-runs.
validate_config(config, REPO / "workflows" / "schemas" / "config.schema.yaml")
check_config(config)
CONFIGFILE = workflow.configfiles[-1] if workflow.configfiles else None
RUN = run_name(config, workflow.configfiles)
RUN_DIR = f"{RUNS}/{RUN}"
RESULTS = f"{RUN_DIR}/results"
LOGS = f"{RUN_DIR}/logs"
PAPER = f"{RUN_DIR}/paper"
# The configuration's reference tables (the committed paper/ for the default configuration).
REFERENCE = str(REPO / config["reference"]) if config.get("reference") else None
check_owner(Path(RUN_DIR), CONFIGFILE)
os.environ["CALIBBENCH_RUN_DIR"] = RUN_DIR  # read by the progress display


onstart:
    check_services(config)
    record_owner(Path(RUN_DIR), CONFIGFILE)


onsuccess:
    summary = Path(RUN_DIR, "summary.md")
    if summary.is_file():
        print(summary.read_text(), flush=True)


MODELS = list(config["models"])
TASKS = list(config["tasks"])
TASK = {t: get_task(config["tasks"][t]["spec"]) for t in TASKS}
# Runs of lm-evaluation-harness that join as models: their tasks are read from the log, not
# collected (workflows/rules/lm_eval.smk), each as the run's task "lm-eval.<task>".
LM_EVAL = config.get("lm_eval", {})
LM_EVAL_TASKS = {lmeval.run_task(t): m for m in reversed(LM_EVAL) for t in LM_EVAL[m]["tasks"]}


def one_of(names):
    """A wildcard constraint matching exactly these names (nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"

METHODS = list(config["methods"])
TEMPERATURES = ",".join(str(t) for t in config["temperatures"])
# The files each method's results depend on (its module, the protocol, what they import) are
# inputs of its jobs: editing one reruns exactly the jobs it can change.
METHOD_CODE = {m: [str(p) for p in method_sources(m)] for m in METHODS}


def model_threads(model):
    """CPUs of a model's heavy jobs (collect, grade, tuning): its entry's `threads`, else
    --cores (all of a local run's; per job on a cluster, where the profile sets it)."""
    return config["models"][model].get("threads", workflow.cores)


def model_tasks(model):
    return config["models"][model].get("tasks", TASKS)


def spec(model):
    return config["models"][model]["spec"]


def has_followup(model, task):
    return model in MODELS and plan.has_followup(model, spec(model), TASK[task])


def has_review(model, task):
    return model in MODELS and plan.has_review(model, spec(model), TASK[task])


def accumulates(model, task):
    return model in MODELS and plan.accumulates(model, spec(model), TASK[task])


def signals(model, task):
    if model in LM_EVAL:
        return list(lmeval.SIGNALS)
    return plan.pair_signals(model, spec(model), TASK[task])


PAIRS = [(m, t) for m in MODELS for t in model_tasks(m)]
PAIRS += [(m, lmeval.run_task(t)) for m in LM_EVAL for t in LM_EVAL[m]["tasks"]]
# Every (model, task, signal) the methods recalibrate, a pair's signals together.
RECALIBRATIONS = [(m, t, s) for m, t in PAIRS for s in signals(m, t)]
# Every task's information file (the configuration's tasks and those of lm-eval logs).
TASK_INFOS = [f"{RESULTS}/tasks/{t}/task.json" for t in [*TASKS, *LM_EVAL_TASKS]]


def quoted_json(data):
    return shlex.quote(json.dumps(data))


def task_spec(wildcards):
    spec = dict(config["tasks"][wildcards.task]["spec"])
    return spec.pop("task"), quoted_json(spec)


def all_compare():
    return [f"{RESULTS}/compare/{m}/{t}/{s}.json" for m, t in PAIRS for s in signals(m, t)]


def all_sweeps():
    return [f"{RESULTS}/sweep/{m}/{t}.parquet" for m, t in PAIRS if accumulates(m, t)]


def all_tuning():
    tuning = config.get("calibration_tuning", {})
    return [
        f"{RESULTS}/tuning/{m}/{t}.json"
        for m in tuning.get("models", [])
        for t in tuning.get("tasks", [])
        if (m, t) in PAIRS
    ]


def _names(path, n):
    """The last n names of a results path, without the file's extension."""
    return list(Path(path).with_suffix("").parts[-n:])


def run_plan():
    """What the run computes (calibbench.provenance.check_plan), recorded in its manifest."""
    return {
        "pairs": [[m, t] for m, t in PAIRS],
        "compare": [_names(p, 3) for p in all_compare()],
        "tuning": [_names(p, 2) for p in all_tuning()],
        "sweeps": [_names(p, 2) for p in all_sweeps()],
    }


def all_predictions():
    return [
        f"{RESULTS}/recalibrate/{m}/{t}/{s}/{method}.parquet"
        for m, t, s in RECALIBRATIONS
        for method in METHODS
    ]
