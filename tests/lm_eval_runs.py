"""lm-eval runs written the way its command line writes them (`--output_path --log_samples`), on
calibbench's offline task definitions: shared by the tests of the log reader and of the
workflow's `lm_eval:` entries."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # before datasets is imported: never download
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lm_eval

from calibbench.tasks.multiple_choice import MultipleChoiceTask
from calibbench.tasks.sources import packaged_root

ARC = "cb_arc_easy"
MMLU = "cb_mmlu_abstract_algebra"
BRIER = "cb_mmlu_abstract_algebra_brier"
MUTUAL = "cb_arc_easy_mutual_info"
WINOGRANDE = "cb_winogrande"
GENERATE = "cb_arc_easy_generate"
LOGLIKELIHOOD = "cb_arc_easy_target"
METRIC = {"acc": "correct", "acc_norm": "correct_acc_norm"}


def _metrics(*names: str) -> list[dict]:
    better = {"brier_score": False}
    aggregation = {"brier_score": "brier_score"}
    return [{"metric": n, "aggregation": aggregation.get(n, "mean"),
             "higher_is_better": better.get(n, True)} for n in names]  # fmt: skip


def write_tasks(folder: Path) -> Path:
    """lm-eval task YAMLs in `folder`: calibbench's ARC-Easy (cloze) and MMLU abstract algebra
    (letter) as lm-eval loads them; MMLU with brier_score added (lm-eval's brier_score needs the
    same number of options for every document, which ARC-Easy does not have); tasks including
    ARC-Easy that use acc_mutual_info, generate text or score only the gold answer; Winogrande
    (options in the context). All read the offline arrow copies."""
    folder.mkdir(parents=True, exist_ok=True)
    mmlu = MultipleChoiceTask("mmlu", "letter", ["abstract_algebra"])
    for name, task in ((ARC, MultipleChoiceTask("arc_easy")), (MMLU, mmlu)):
        config = next(iter(task.lm_eval_tasks().values())).dump_config()
        config |= {"task": name, "metadata": {"version": 1.0}}
        config.pop("task_alias", None)
        (folder / f"{name}.yaml").write_text(json.dumps(config))
    arc = str(folder / f"{ARC}.yaml")
    gold_text = "{{choices.text[choices.label.index(answerKey)]}}"
    brier = {"include": str(folder / f"{MMLU}.yaml"), "task": BRIER,
             "metric_list": _metrics("acc", "acc_norm", "brier_score")}  # fmt: skip
    (folder / f"{BRIER}.yaml").write_text(json.dumps(brier))
    derived = {
        MUTUAL: {"metric_list": _metrics("acc", "acc_mutual_info")},
        GENERATE: {"output_type": "generate_until", "doc_to_target": gold_text,
                   "doc_to_choice": None, "metric_list": _metrics("exact_match"),
                   "generation_kwargs": {"until": ["\n"], "max_gen_toks": 2, "do_sample": False}},
        LOGLIKELIHOOD: {"output_type": "loglikelihood", "doc_to_target": gold_text,
                        "doc_to_choice": None, "metric_list": _metrics("acc")},
    }  # fmt: skip
    for name, fields in derived.items():
        (folder / f"{name}.yaml").write_text(json.dumps({"include": arc, "task": name} | fields))
    winogrande = Path(lm_eval.__file__).parent / "tasks" / "winogrande" / "default.yaml"
    data = packaged_root() / "winogrande" / "winogrande_xl" / "validation"
    files = {"validation": str(next(data.glob("*.arrow")))}
    config = {"include": str(winogrande), "task": WINOGRANDE, "dataset_path": "arrow",
              "dataset_name": None, "training_split": None, "validation_split": "validation",
              "dataset_kwargs": {"data_files": files}}  # fmt: skip
    (folder / f"{WINOGRANDE}.yaml").write_text(json.dumps(config))
    return folder


def run_lm_eval(
    out: Path, include: Path, tasks: list[str], limit: int, model: str, model_args: str = ""
) -> dict:
    """lm-eval run with `--output_path out --log_samples`, saved as its command line saves it.
    Returns simple_evaluate's results (samples included) as lm-eval computed them, before the
    saving turns them into strings."""
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(include), include_defaults=False),
        limit=limit,
        batch_size=1,
        device="cpu",
        log_samples=True,
        evaluation_tracker=tracker,
    )
    reference = copy.deepcopy(results)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for name in results["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
    return reference
