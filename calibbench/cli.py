"""Command-line entry points that the Snakemake rules call: files in, files out, no computing here.

`calibbench <command> --help` lists each command's options. User errors (`InputError`) are
printed as one line without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from calibbench.artifacts import write_json, write_parquet
from calibbench.cli_lmeval import (
    _args_from_lm_eval,
    _args_lm_eval_task,
    _args_lm_eval_yaml,
    _cmd_from_lm_eval,
    _cmd_lm_eval_task,
    _cmd_lm_eval_yaml,
)
from calibbench.cli_monitor import _args_monitor, _cmd_monitor
from calibbench.errors import InputError


def _cmd_synthetic(args: argparse.Namespace) -> None:
    from calibbench.records import write_parquet
    from calibbench.synthetic import overconfident_answers

    frame = overconfident_answers(args.n, seed=args.seed, tau=args.tau, a=args.a, b=args.b)
    write_parquet(frame, args.out)


def _cmd_metrics(args: argparse.Namespace) -> None:
    from calibbench.metrics.summary import answer_summary
    from calibbench.records import read_answer_records

    frame = read_answer_records(args.records, args.confidence_column, args.correct_column)
    summary = answer_summary(
        frame[args.confidence_column].to_numpy(),
        frame[args.correct_column].to_numpy(),
        n_bins=args.n_bins,
        n_resamples=args.bootstrap,
        level=args.level,
        seed=args.seed,
    )
    summary = {"records": str(args.records), "confidence_column": args.confidence_column} | summary
    write_json(summary, args.out)


def _cmd_collect(args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from calibbench.collect import CollectSettings, collect, requests_kind
    from calibbench.models import load_model

    try:
        spec = (
            json.loads(args.spec) if args.spec else {"runtime": "llamacpp", "builtin": args.model}
        )
    except json.JSONDecodeError as exc:
        raise InputError(f"--spec: not valid JSON ({exc})") from None
    try:
        requests = pq.read_table(args.requests).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{args.requests}: cannot read requests as Parquet ({exc})") from None
    settings = CollectSettings(
        chunk_size=args.chunk_size, n_bins=args.n_bins, temperatures=tuple(args.temperatures)
    )
    kind = requests_kind(requests, str(args.requests))
    with load_model(args.model, spec, kind) as model:
        collect(model, requests, args.out, settings, progress=not args.no_progress)


def _task(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from calibbench.tasks import get_task

    try:
        options = json.loads(args.spec) if args.spec else {}
    except json.JSONDecodeError as exc:
        raise InputError(f"--spec: not valid JSON ({exc})") from None
    if not isinstance(options, dict):
        raise InputError("--spec: expected a JSON object of task options")
    return get_task({"task": args.task} | options)


def _read(path: Path, what: str):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: cannot read the {what} as Parquet ({exc})") from None


def _cmd_prepare(args: argparse.Namespace) -> None:
    task = _task(args)
    items = task.items()
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit: expected a positive number of items, got {args.limit}")
        items = items.head(args.limit)
    out = args.out
    write_parquet(items, out / "items.parquet")
    write_parquet(task.requests(items), out / "requests.parquet")
    info = {"task": task.name, "kind": task.kind, "limit": args.limit,
            "n_items": len(items), "dataset": task.dataset().to_dict()}  # fmt: skip
    write_json(info, out / "task.json")


def _cmd_review(args: argparse.Namespace) -> None:
    task = _task(args)
    requests = task.review_requests(_read(args.items, "items"), _read(args.records, "records"))
    if requests is None:
        raise InputError(
            f"task {task.name!r} has no review requests with these options (QA: two_stage or "
            "reflection)"
        )
    write_parquet(requests, args.out)


def _cmd_followup(args: argparse.Namespace) -> None:
    task = _task(args)
    review = _read(args.review_records, "review records") if args.review_records else None
    items, records = _read(args.items, "items"), _read(args.records, "records")
    requests = task.followup_requests(items, records, review)
    if requests is None:
        raise InputError(f"task {task.name!r} asks no follow-up questions")
    write_parquet(requests, args.out)


def _cmd_grade(args: argparse.Namespace) -> None:
    task = _task(args)
    followup = _read(args.followup_records, "follow-up records") if args.followup_records else None
    review = _read(args.review_records, "review records") if args.review_records else None
    graded = task.grade(
        _read(args.items, "items"), _read(args.records, "records"), followup, review
    )
    write_parquet(graded, args.out)


def _cmd_split(args: argparse.Namespace) -> None:
    from calibbench.splits import assign_splits

    items = _read(args.items, "items")
    write_parquet(assign_splits(items["item_id"], args.fraction, args.seed), args.out)


def _cmd_recalibrate(args: argparse.Namespace) -> None:
    from calibbench.recalibration.protocol import evaluate_method

    empty = {"item_id": [], "confidence": [], "correct": []}
    read, tables = None, None
    for graded, split, confidence, out, predictions_file in _recalibrations(args):
        if (graded, split) != read:  # a table's recalibrations come together: read it once
            read, tables = (graded, split), (_read(graded, "graded items"), _read(split, "split"))
        entry, predictions = evaluate_method(
            args.method,
            *tables,
            confidence=confidence,
            n_bins=args.n_bins,
            n_resamples=args.bootstrap,
            level=args.level,
            seed=args.seed,
        )
        write_json(entry, out)
        if predictions_file:
            write_parquet(_frame(empty) if predictions is None else predictions, predictions_file)


def _recalibrations(args: argparse.Namespace) -> list[tuple]:
    """The (graded, split, confidence, out, predictions) of each recalibration asked for: the
    n-th --graded goes with the n-th --split, --confidence, --out and --predictions."""
    n = len(args.graded)
    confidence = args.confidence or ["confidence"] * n
    predictions = args.predictions or [None] * n
    given = {"--split": args.split, "--confidence": confidence, "--out": args.out,
             "--predictions": predictions}  # fmt: skip
    for option, values in given.items():
        if len(values) != n:
            raise InputError(
                f"{option}: given {len(values)} times for {n} --graded; give each option once "
                "per recalibration (--confidence and --predictions may be left out entirely)"
            )
    return list(zip(args.graded, args.split, confidence, args.out, predictions, strict=True))


def _frame(data: dict):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.DataFrame(data)


def _cmd_compare(args: argparse.Namespace) -> None:
    from calibbench.recalibration.protocol import best_method

    methods = {}
    for path in args.inputs:
        try:
            entry = json.loads(Path(path).read_text())
            methods[entry.pop("method")] = entry
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: not a recalibration result ({exc})") from None
    write_json({"methods": methods, "best": best_method(methods)}, args.out)


def _cmd_sweep(args: argparse.Namespace) -> None:
    import numpy as np

    from calibbench.metrics.token import TokenCalibration
    from calibbench.recalibration.sweep import token_sweep
    from calibbench.recalibration.token_temperature import TokenTemperatureScaler

    try:
        with np.load(args.state) as state:
            metrics = TokenCalibration.from_state_dict(dict(state)).compute()
    except (OSError, ValueError) as exc:
        raise InputError(f"{args.state}: cannot read accumulator state ({exc})") from None
    write_parquet(token_sweep(metrics), args.out)
    if args.fit:
        try:
            fitted = TokenTemperatureScaler().fit(metrics).to_json()
        except InputError as exc:  # e.g. the optimum lies outside the grid: say so, keep going
            fitted = {"method": "token_temperature", "error": str(exc)}
        write_json(fitted, args.fit)


def _cmd_provenance(args: argparse.Namespace) -> None:
    from calibbench.provenance import run_manifest

    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as exc:
        raise InputError(f"--config-json: not valid JSON ({exc})") from None
    try:
        plan = json.loads(args.plan_json) if args.plan_json else None
    except json.JSONDecodeError as exc:
        raise InputError(f"--plan-json: not valid JSON ({exc})") from None
    write_json(run_manifest(config, args.results, args.repo, plan), args.out)


def _check_reference(args: argparse.Namespace) -> None:
    from calibbench.paper.check import check_tables

    if args.reference is None:
        raise InputError(
            "--reference: this configuration names no reference tables to compare with; add "
            "`reference: <folder of CSV tables>` to it (the default configuration's is "
            "paper/tables)"
        )
    for folder, what in ((args.tables, "--tables"), (args.reference, "--reference")):
        if not folder.is_dir():
            raise InputError(f"{what}: {folder} is not a folder of tables")
    check = check_tables(args.tables, args.reference)
    print(check.report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(check.report)
    if args.status:
        status = {"agree": check.agree, "n_tables": check.n_tables,
                  "n_differences": check.n_differences, "reference": str(args.reference),
                  "report": str(args.out)}  # fmt: skip
        write_json(status, args.status)
    if not check.agree and not args.report_only:
        raise InputError(f"reproduction check failed; see {args.out}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from calibbench.paper.results import Results
    from calibbench.paper.tables import headline
    from calibbench.runs import summary_text

    results = Results(args.run / "results")
    reproduction = json.loads(args.reproduction.read_text()) if args.reproduction else None
    text = summary_text(args.run, headline(results), reproduction)
    args.out.write_text(text)
    print(text)


def _cmd_init(args: argparse.Namespace) -> None:
    from calibbench.starter import starter_config

    kinds = {"gguf": args.gguf, "hf": args.hf, "hub": args.hub, "api": args.api}
    given = [k for k, v in kinds.items() if v]
    if len(given) != 1:
        raise InputError("give exactly one of --gguf, --hf, --hub or --api")
    if args.out.exists() and not args.force:
        raise InputError(f"--out: {args.out} exists; choose another file or pass --force")
    text = starter_config(
        given[0], kinds[given[0]], [t.strip() for t in args.tasks.split(",") if t.strip()],
        name=args.name or args.out.stem, model=args.model, limit=args.limit,
        api_model=args.api_model, api_key_env=args.api_key_env,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}; run it with: snakemake --cores 2 --configfile {args.out}")


def _cmd_paper(args: argparse.Namespace) -> None:
    from calibbench.paper.results import Results

    if args.part == "check":
        _check_reference(args)
        return
    results = Results(args.results)
    if args.part == "tables":
        from calibbench.paper.tables import write_tables

        write_tables(results, args.out)
    elif args.part == "figures":
        from calibbench.paper.figures import write_figures

        write_figures(results, args.out)
    else:
        from calibbench.paper.document import write_document

        comparison = None
        if args.baseline_comparison is not None:
            from calibbench.monitor.compare import read_comparison

            comparison = read_comparison(args.baseline_comparison)
        write_document(results, args.tables, args.figures, args.out, args.html, comparison)


def _cmd_tune(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from calibbench.models.hf import HFModel
    from calibbench.models.registry import runtime_for
    from calibbench.recalibration import calibration_tuning as ct
    from calibbench.splits import CALIBRATION
    from calibbench.tasks import task_kind

    spec = json.loads(args.spec)
    scoring = runtime_for(args.model, spec, "score")  # its transformers options, e.g. dtype
    options = {
        k: scoring[k]
        for k in ("device", "dtype", "max_length", "cache_dir")
        if k in scoring and scoring.get("runtime") == "hf"
    } | ({"device": "cpu"} if args.cpu else {})
    if "builtin" in spec:
        model = HFModel.builtin(spec["builtin"], **options)
    elif spec.get("runtime") == "hf":
        model = HFModel(spec.get("hub") or spec["path"], gguf_file=spec.get("gguf_file"), **options)
    elif "path" in spec:
        path = Path(spec["path"])
        model = HFModel(path.parent, gguf_file=path.name, **options)
    else:
        raise InputError(
            "calibration tuning needs a local model (a built-in, a GGUF or an hf model)"
        )
    config = replace(ct.TuningConfig(), epochs=args.epochs, seed=args.seed)
    items, graded = _read(args.items, "items"), _read(args.graded, "graded items")
    split = _read(args.split, "split")
    data = ct.examples(task_kind(args.task), items, graded).merge(split, on="item_id")
    train = data[data["split"] == CALIBRATION]
    test = data[data["split"] != CALIBRATION]
    args.adapter.mkdir(parents=True, exist_ok=True)
    scorer = ct.QueryScorer(model.model, model.tokenizer, config)
    try:
        result = ct.run(
            scorer, list(train.text), list(train.correct), list(test.text), list(test.item_id),
            args.adapter,
        )  # fmt: skip
    except InputError as exc:  # too few or one-sided calibration items: say so, keep going
        write_json({"error": str(exc), "model": model.info().to_dict()}, args.out)
        return
    summary = ct.evaluate(
        result, graded, n_bins=args.n_bins, n_resamples=args.bootstrap, level=args.level,
        seed=args.seed,
    )  # fmt: skip
    write_json(summary | {"model": model.info().to_dict(), "adapter": str(args.adapter)}, args.out)


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _task_args(p: argparse.ArgumentParser) -> None:
    """--task and --spec, shared by the commands that build a task."""
    p.add_argument("--task", required=True, help="task name (see calibbench.tasks)")
    p.add_argument("--spec", help='task options as JSON, e.g. \'{"format": "letter"}\'')


def _args_synthetic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output Parquet file")
    p.add_argument("--n", type=int, default=2000, help="number of records")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tau", type=float, default=2.0, help="over-confidence (1 = calibrated)")
    p.add_argument("--a", type=float, default=5.0, help="Beta(a, b) of stated confidences")
    p.add_argument("--b", type=float, default=1.5, help="Beta(a, b) of stated confidences")


def _args_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=Path, required=True, help="Parquet file of answer records")
    p.add_argument("--out", type=Path, required=True, help="output JSON file")
    p.add_argument("--confidence-column", default="confidence")
    p.add_argument("--correct-column", default="correct")
    p.add_argument("--n-bins", type=int, default=15)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="CI coverage")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def _args_collect(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name (a built-in name, or any name)")
    p.add_argument("--spec", help="model entry as JSON (default: the built-in, llama.cpp)")
    p.add_argument("--requests", type=Path, required=True, help="Parquet file of requests")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--chunk-size", type=int, default=32, help="requests per resumable chunk")
    p.add_argument("--n-bins", type=int, default=15)
    p.add_argument("--temperatures", type=_floats, default=[1.0], help="e.g. 0.7,1.0,1.3")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _args_prepare(p: argparse.ArgumentParser) -> None:
    _task_args(p)
    p.add_argument("--limit", type=int, help="first N items only")
    p.add_argument("--out", type=Path, required=True, help="output directory")


def _args_review(p: argparse.ArgumentParser) -> None:
    _task_args(p)
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--records", type=Path, required=True, help="records of the first requests")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file of requests")


def _args_followup(p: argparse.ArgumentParser) -> None:
    _args_review(p)
    p.add_argument("--review-records", type=Path, help="records of the review requests")


def _args_grade(p: argparse.ArgumentParser) -> None:
    _task_args(p)
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--records", type=Path, required=True)
    p.add_argument("--followup-records", type=Path, help="records of the follow-up requests")
    p.add_argument("--review-records", type=Path, help="records of the review requests")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file")


def _args_split(p: argparse.ArgumentParser) -> None:
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--fraction", type=float, default=0.5, help="share of calibration items")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)


def _args_recalibrate(p: argparse.ArgumentParser) -> None:
    # One recalibration, or several of one method in one process (the workflow's one job per
    # method): the n-th --graded goes with the n-th --split, --confidence, --out, --predictions.
    p.add_argument("--graded", type=Path, action="append", required=True, help="graded items")
    p.add_argument("--split", type=Path, action="append", required=True, help="item split")
    p.add_argument("--confidence", action="append", help="column to calibrate (confidence)")
    p.add_argument("--method", required=True, help="raw, temperature, platt, isotonic, ...")
    p.add_argument("--n-bins", type=int, default=15)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="CI coverage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, action="append", required=True, help="output JSON")
    p.add_argument("--predictions", type=Path, action="append", help="test predictions (Parquet)")


def _args_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)


def _args_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", type=Path, required=True, help="token_calibration.npz")
    p.add_argument("--out", type=Path, required=True, help="output Parquet, one row per T")
    p.add_argument("--fit", type=Path, help="also write the NLL-fitted temperature (JSON)")


def _args_tune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--spec", required=True, help="model entry as JSON (a local model)")
    p.add_argument("--task", required=True, help="task registry name (its kind picks the data)")
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--graded", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-bins", type=int, default=15)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--level", type=float, default=0.95, help="CI coverage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    p.add_argument("--adapter", type=Path, required=True, help="folder for the LoRA adapter")
    p.add_argument("--out", type=Path, required=True, help="output JSON")


def _args_provenance(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-json", required=True, help="the workflow configuration as JSON")
    p.add_argument(
        "--plan-json",
        help="what the configuration computes, as JSON (see calibbench.provenance.check_plan); "
        "the paper then reads only those results",
    )
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the code's git checkout")
    p.add_argument("--out", type=Path, required=True)


def _args_paper(p: argparse.ArgumentParser) -> None:
    p.add_argument("part", choices=("tables", "figures", "document", "check"))
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--tables", type=Path, help="tables folder (document, check)")
    p.add_argument("--figures", type=Path, help="figures folder (document)")
    p.add_argument("--reference", type=Path, help="committed tables to compare with (check)")
    p.add_argument("--html", type=Path, help="also render the document as HTML (document)")
    p.add_argument("--baseline-comparison", type=Path,
                   help="`monitor compare` output: the document's baseline section")  # fmt: skip
    p.add_argument("--status", type=Path, help="also write the check's outcome as JSON (check)")
    p.add_argument("--report-only", action="store_true",
                   help="exit 0 even when tables differ (check)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True)


def _args_model_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a built-in model, e.g. smollm2-135m")
    p.add_argument("--hf", action="store_true", help="its transformers directory (converted once)")


def _cmd_model_path(args: argparse.Namespace) -> None:
    from calibbench.models.builtin import gguf_path

    path = gguf_path(args.name)
    if args.hf:
        from calibbench.models.hf import dequantised_dir

        path = dequantised_dir(path)
    print(path)


def _args_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gguf", help="a local GGUF file (llama.cpp)")
    p.add_argument("--hf", help="a local transformers model directory")
    p.add_argument("--hub", help="a Hugging Face hub id (needs network)")
    p.add_argument("--api", help="an OpenAI-compatible endpoint's base URL, e.g. .../v1")
    p.add_argument("--api-model", help="the model id the endpoint serves (with --api)")
    p.add_argument("--api-key-env",
                   help="environment variable holding the API key (with --api; default "
                        "OPENAI_API_KEY, none for a local endpoint)")  # fmt: skip
    p.add_argument("--tasks", default="mmlu,arc_easy", help="comma-separated task names")
    p.add_argument("--model", default="my-model", help="the model's name in the results")
    p.add_argument("--name", help="the run's name (default: the file's stem)")
    p.add_argument("--limit", type=int, default=100, help="items per task")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.add_argument("--out", type=Path, required=True, help="the configuration file to write")


def _args_summary(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, required=True, help="the run directory (runs/<name>)")
    p.add_argument("--reproduction", type=Path, help="reproduction.json of the reference check")
    p.add_argument("--out", type=Path, required=True, help="output Markdown file")


#: Every command: name, help, its arguments, what runs it.
COMMANDS = (
    ("synthetic", "seeded synthetic answer records", _args_synthetic, _cmd_synthetic),
    ("metrics", "answer-level metrics with bootstrap CIs", _args_metrics, _cmd_metrics),
    ("collect", "run a model over a requests file (resumable)", _args_collect, _cmd_collect),
    ("prepare", "a task's items, requests and data provenance", _args_prepare, _cmd_prepare),
    (
        "review",
        "generate requests about the first answers (a stated probability, a review)",
        _args_review,
        _cmd_review,
    ),
    (
        "followup",
        "scored follow-up requests that depend on first answers",
        _args_followup,
        _cmd_followup,
    ),
    ("grade", "correctness and confidences per item", _args_grade, _cmd_grade),
    ("split", "seeded calibration/test split fixed by item id", _args_split, _cmd_split),
    (
        "recalibrate",
        "fit one method on calibration items, score on test",
        _args_recalibrate,
        _cmd_recalibrate,
    ),
    ("compare", "combine per-method results and pick the best method", _args_compare, _cmd_compare),
    ("sweep", "token-level temperature sweep from an accumulator state", _args_sweep, _cmd_sweep),
    ("tune", "calibration-tuning, probe and zero-shot P(True) baselines", _args_tune, _cmd_tune),
    ("provenance", "the run's provenance manifest", _args_provenance, _cmd_provenance),
    ("paper", "tables, figures, document, reproduction check", _args_paper, _cmd_paper),
    ("init", "write a starter configuration for your own model", _args_init, _cmd_init),
    ("summary", "the one-screen summary of a finished run", _args_summary, _cmd_summary),
    (
        "from-lm-eval",
        "calibration report of an lm-eval run written with --log_samples",
        _args_from_lm_eval,
        _cmd_from_lm_eval,
    ),
    (
        "lm-eval-task",
        "one task of an lm-eval run as the workflow's graded and items files",
        _args_lm_eval_task,
        _cmd_lm_eval_task,
    ),
    (
        "lm-eval-yaml",
        "a multiple-choice task (offline data) as lm-eval task YAML files",
        _args_lm_eval_yaml,
        _cmd_lm_eval_yaml,
    ),
    ("model-path", "where a built-in model's files are", _args_model_path, _cmd_model_path),
    (
        "monitor",
        "calibration over time: compare runs, watch a prediction log, dashboard",
        _args_monitor,
        _cmd_monitor,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The `calibbench` argument parser."""
    parser = argparse.ArgumentParser(prog="calibbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 for an `InputError`)."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        print(f"calibbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
