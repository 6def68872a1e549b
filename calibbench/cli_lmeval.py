"""Command-line entry points for lm-evaluation-harness logs (`calibbench.lmeval`): files in, files
out. `calibbench.cli` lists them in its COMMANDS table:

- `from-lm-eval PATH --out DIR`: the calibration report of an lm-eval run written with
  `--log_samples` (`calibbench.lmeval.report.write_report`);
- `lm-eval-task PATH --task T [--graded G] [--items I] ...`: one task of such a run as the
  workflow's graded, items, task and collection-manifest files
  (`calibbench.lmeval.workflow.write_workflow_task`);
- `lm-eval-yaml --task T [--spec JSON] --out DIR`: calibbench's multiple-choice task (offline
  data included) as lm-eval task YAML files, for `lm_eval --include_path DIR`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _args_from_lm_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", type=Path, help="lm-eval --output_path directory (or one results_*.json in it)"
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (created)")
    p.add_argument("--folds", type=int, default=5, help="cross-fitting folds over documents")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and the bootstrap")
    p.add_argument("--n-bins", type=int, default=15, help="equal-width bins of ECE and diagrams")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="CI coverage")
    p.add_argument("--methods", nargs="+", help="recalibration methods (default: all)")


def _cmd_from_lm_eval(args: argparse.Namespace) -> None:
    from calibbench.lmeval.logs import read_log
    from calibbench.lmeval.report import ReportSettings, write_report

    settings = ReportSettings(
        folds=args.folds,
        seed=args.seed,
        n_bins=args.n_bins,
        n_resamples=args.bootstrap,
        level=args.level,
        methods=tuple(args.methods) if args.methods else None,
    )
    index = write_report(read_log(args.path), args.out, settings)
    print(
        f"{len(index['tasks'])} tasks with confidence, {len(index['no_confidence'])} without; "
        f"report: {args.out / 'report.md'}"
    )


def _args_lm_eval_task(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", type=Path, help="lm-eval --output_path directory (or one results_*.json in it)"
    )
    p.add_argument("--task", required=True, help="lm-eval task name")
    p.add_argument("--filter", help="lm-eval filter, where the samples hold several")
    p.add_argument("--graded", type=Path, help="output graded Parquet")
    p.add_argument("--items", type=Path, help="output items Parquet (for split)")
    p.add_argument("--info", type=Path, help="output task.json")
    p.add_argument("--identity", type=Path, help="output JSON of the model's identity")
    p.add_argument("--manifest", type=Path, help="output collection manifest.json")


def _cmd_lm_eval_task(args: argparse.Namespace) -> None:
    from calibbench.errors import InputError
    from calibbench.lmeval.workflow import write_workflow_task

    outputs = (args.graded, args.items, args.info, args.identity, args.manifest)
    if all(out is None for out in outputs):
        raise InputError("give at least one output (--graded, --items, --info, --identity, ...)")
    write_workflow_task(
        args.path, args.task, args.graded, args.items, args.info, args.identity, args.filter,
        args.manifest,
    )  # fmt: skip


def _args_lm_eval_yaml(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="a multiple-choice task, e.g. arc_easy or mmlu")
    p.add_argument("--spec", default="{}", help="the task's options as JSON, as in a config")
    p.add_argument("--out", type=Path, required=True, help="folder of the YAML files (created)")


def _cmd_lm_eval_yaml(args: argparse.Namespace) -> None:
    import json

    from calibbench.errors import InputError
    from calibbench.tasks import get_task
    from calibbench.tasks.multiple_choice import MultipleChoiceTask

    try:
        options = json.loads(args.spec)
    except json.JSONDecodeError as exc:
        raise InputError(f"--spec: not JSON: {exc}") from None
    task = get_task({**options, "task": args.task})
    if not isinstance(task, MultipleChoiceTask):
        raise InputError(f"--task: {args.task!r} is not a multiple-choice task")
    args.out.mkdir(parents=True, exist_ok=True)
    names = []
    for config in task.lm_eval_configs().values():
        (args.out / f"{config['task']}.yaml").write_text(json.dumps(config, indent=1) + "\n")
        names.append(config["task"])
    print(",".join(names))
