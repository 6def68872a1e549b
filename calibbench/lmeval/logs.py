"""Reading an lm-evaluation-harness output directory into calibbench's graded rows.

lm-eval 0.4.x with `--output_path OUT --log_samples` writes, under `OUT/<model name sanitised>/`,
one `results_<date>.json` per run and, per task, `samples_<task>_<date>.jsonl` with one JSON
object per document and filter: `doc_id`, `target` (the gold option's index, or its text, as a
string), `arguments` (per option its context and continuation: `{"gen_args_k": {"arg_0":
context, "arg_1": continuation}}`), `filtered_resps`
(per option `[log-likelihood, is_greedy]`, both as strings) and lm-eval's per-document metrics
(`acc`, `acc_norm`, ...). The results file holds each task's configuration (`output_type`,
`target_delimiter`), the aggregated metrics (`"acc,none"`) and the model's identity.

Grading a multiple-choice document (option log-likelihoods l_k in nats, K options):

- `confidence` = softmax(l)_pred at pred = argmax_k l_k; `correct` as lm-eval graded it (its
  logged `acc`), checked against pred == gold;
- `confidence_acc_norm` = softmax(l) at lm-eval's acc_norm choice argmax_k l_k / len(option_k)
  (length in characters); `correct_acc_norm` as lm-eval graded it (logged `acc_norm`);
- `p_gold` = softmax(l)_gold; `option_logprobs` l and `gold`, for temperature scaling.

`acc_mutual_info` tasks log 2K responses; the first K are the conditional log-likelihoods. Tasks
that put the options in the context (`multiple_input`, e.g. Winogrande) or have several gold
options do not name a single gold option in the log: their rows have no `gold` and `p_gold`,
and `correct` is lm-eval's logged `acc`. Token counts are not in the log, so the
token-normalised confidence of calibbench's own grading is not available here.

Tasks of other output types carry no confidence of an answer and are listed with the reason
(`NO_CONFIDENCE`); so are tasks without a samples file. Malformed input raises InputError naming
the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from calibbench.errors import InputError
from calibbench.metrics.scores import brier, multiclass_brier, multiclass_nll

#: Why a task of each output type has no confidence of an answer in the log.
NO_CONFIDENCE = {
    "generate_until": "free generation: the log holds the generated text, no log-probabilities",
    "loglikelihood": (
        "one continuation per document: the log holds log p(target) and whether the target is "
        "the greedy continuation, not the probability of an answer the model chose"
    ),
    "loglikelihood_rolling": "perplexity: one log-likelihood per document, no answer to grade",
}
NO_SAMPLES = "no samples file next to the results file (run lm-eval with --log_samples)"
#: Each confidence signal of a log's graded rows and the outcome column it predicts.
SIGNALS = {"confidence": "correct", "confidence_acc_norm": "correct_acc_norm"}
#: Tolerance of the multi-class Brier score against lm-eval's `brier_score`.
BRIER_ATOL = 1e-9
_LAYOUT = "lm-eval 0.4.x --log_samples"
_REQUIRED = ("doc_id", "target", "arguments", "filtered_resps")
_OLD_LAYOUT = (
    "the layout of early lm-eval 0.4 releases (results.json, and each task's samples as one "
    "JSON array); calibbench reads results_<date>.json and samples_<task>_<date>.jsonl with one "
    "sample per line, as current lm-eval writes them: rerun the evaluation with a current lm-eval"
)
#: Column groups that a document may lack (no single gold option; options in the context).
_OPTIONAL = (("gold", "p_gold"), ("pred_acc_norm", "correct_acc_norm", "confidence_acc_norm"))
_DTYPES = {"gold": np.int64, "pred": np.int64, "pred_acc_norm": np.int64, "correct": bool,
           "correct_acc_norm": bool}  # fmt: skip


@dataclass(frozen=True)
class LogTask:
    """One task of a run: its name, `output_type`, configuration (the results file's entry),
    samples file (None when there is none), lm-eval's reported metrics {(metric, filter):
    value}, the number of documents it evaluated (`n-samples.effective`), its few-shot count
    and lm-eval's hash of its documents, prompts and targets (`task_hashes`); None if absent."""

    name: str
    output_type: str
    config: dict[str, Any]
    samples: Path | None
    reported: dict[tuple[str, str], float]
    n_documents: int | None
    n_shot: int | None
    task_hash: str | None


@dataclass(frozen=True)
class LmEvalLog:
    """One lm-eval run: its results file, the model's identity (`model_identity`), whether a
    chat template was applied, the run's settings (the results file's `config`: batch size,
    limit, seeds, ...) and its tasks by name."""

    results: Path
    identity: dict[str, Any]
    chat_template: bool
    settings: dict[str, Any]
    tasks: dict[str, LogTask] = field(default_factory=dict)


@dataclass(frozen=True)
class GradedTask:
    """A task's graded rows for one lm-eval filter: `name` (the task, or "task,filter" when its
    samples hold several filters), the `task`, `filter`, the rows (one per document, ordered
    by doc_id), lm-eval's reported metrics of this filter {metric: value}, the checks against
    them (`compare_with_lm_eval`) and the samples file."""

    name: str
    task: str
    filter: str
    rows: pd.DataFrame
    reported: dict[str, float]
    checks: list[dict[str, Any]]
    samples: Path


def find_results(path: str | Path) -> Path:
    """The results file of the lm-eval run at `path`: the file itself, or the one
    `results_*.json` in the directory or its subfolders (lm-eval writes one per model). Raises
    InputError when there is none, or several (pass one of them)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError(f"{path}: no such file or directory")
    found = sorted({*path.glob("results_*.json"), *path.glob("*/results_*.json")})
    if not found and [*path.glob("results.json"), *path.glob("*/results.json")]:
        raise InputError(f"{path}: holds results.json: {_OLD_LAYOUT}")
    if not found:
        raise InputError(
            f"{path}: no results_*.json in it or its subfolders; pass the directory lm-eval wrote "
            "with --output_path (it writes <output_path>/<model>/results_<date>.json)"
        )
    if len(found) > 1:
        listing = "\n  ".join(str(p) for p in found)
        raise InputError(
            f"{path}: holds {len(found)} lm-eval runs; pass one results file as PATH:\n  {listing}"
        )
    return found[0]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object (an lm-eval results file)")
    return data


def model_identity(results: dict[str, Any], source: str) -> dict[str, Any]:
    """The model of an lm-eval results file in the shape of `calibbench.models.ModelInfo`:
    name and source (lm-eval's model name, e.g. a hub id or path), runtime "lm-eval",
    n_parameters, revision, and in `extra` the lm-eval version, model source ("hf", "vllm",
    ...), model_args, model_sha, dtype, the chat template's and system instruction's hashes and
    the results file (`source`). Fields the file lacks are None."""
    config = results.get("config") or {}
    model_args = config.get("model_args")
    args = model_args if isinstance(model_args, dict) else {}
    if isinstance(model_args, str):
        args = dict(part.split("=", 1) for part in model_args.split(",") if "=" in part)
    name = results.get("model_name") or args.get("pretrained") or args.get("model")
    return {
        "name": name or "unknown",
        "family": None,
        "runtime": "lm-eval",
        "source": name or "unknown",
        "vocab_size": None,
        "n_parameters": config.get("model_num_parameters"),
        "sha256": None,
        "revision": config.get("model_revision"),
        "quantization": None,
        "logprob_source": "lm-eval option log-likelihoods",
        "extra": {
            "lm_eval_version": results.get("lm_eval_version"),
            "model_source": results.get("model_source") or config.get("model"),
            "model_args": model_args,
            "model_sha": config.get("model_sha") or None,
            "dtype": config.get("model_dtype"),
            "transformers_version": results.get("transformers_version"),
            "chat_template_sha": results.get("chat_template_sha"),
            "system_instruction_sha": results.get("system_instruction_sha"),
            "results_file": source,
        },
    }


def _reported(entry: dict[str, Any]) -> dict[tuple[str, str], float]:
    """{(metric, filter): value} of a task's results entry (numbers only, no stderr)."""
    out = {}
    for key, value in entry.items():
        metric, _, filt = key.partition(",")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if filt and number and not metric.endswith("_stderr"):
            out[(metric, filt)] = float(value)
    return out


def read_log(path: str | Path) -> LmEvalLog:
    """The lm-eval run at `path` (see `find_results`): identity and tasks, with each task's
    samples file `samples_<task>_<date>.jsonl` next to the results file. Raises InputError for a
    results file without task configurations, or a run without any samples file."""
    results_path = find_results(path)
    if "_" not in results_path.stem:
        raise InputError(f"{results_path}: {_OLD_LAYOUT}")
    results = _read_json(results_path)
    configs = results.get("configs")
    if not isinstance(configs, dict) or not configs:
        raise InputError(
            f"{results_path}: no 'configs' of tasks; is this a results file of lm-eval 0.4.x?"
        )
    date = results_path.stem.rpartition("_")[2]
    tasks = {}
    for name, config in configs.items():
        samples = results_path.parent / f"samples_{name}_{date}.jsonl"
        n = (results.get("n-samples") or {}).get(name, {}).get("effective")
        shots = (results.get("n-shot") or {}).get(name)
        tasks[name] = LogTask(
            name=name,
            output_type=str(config.get("output_type")),
            config=config,
            samples=samples if samples.is_file() else None,
            reported=_reported((results.get("results") or {}).get(name, {})),
            n_documents=None if n is None else int(n),
            n_shot=None if shots is None else int(shots),
            task_hash=(results.get("task_hashes") or {}).get(name),
        )
    if all(t.samples is None for t in tasks.values()):
        raise InputError(
            f"{results_path.parent}: no samples_<task>_{date}.jsonl for any of its "
            f"{len(tasks)} tasks; rerun lm-eval with --log_samples"
        )
    return LmEvalLog(
        results=results_path,
        identity=model_identity(results, str(results_path)),
        chat_template=bool(results.get("chat_template")),
        settings=results.get("config") or {},
        tasks=tasks,
    )


def read_samples(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, sample) for each non-blank line of a samples file; InputError names the
    line that is not a JSON object (e.g. a file cut off by an interrupted run)."""
    out = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                if not out and line.strip() == "[":
                    raise InputError(f"{path}, line {number}: a JSON array: {_OLD_LAYOUT}")
                try:
                    sample = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{path}, line {number}: not valid JSON ({exc.msg} at column "
                        f"{exc.colno}); is the file truncated (an interrupted run)?"
                    ) from None
                if not isinstance(sample, dict):
                    raise InputError(f"{path}, line {number}: expected a JSON object (a sample)")
                out.append((number, sample))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if not out:
        raise InputError(f"{path}: no samples (the file is empty)")
    return out


def _response_kind(responses: Any) -> str | None:
    """The kind of a sample's responses: "log-likelihoods" ([value, is_greedy] per option),
    "generated text", or None."""
    if not isinstance(responses, list) or not responses:
        return None
    if all(isinstance(r, list) and len(r) == 2 for r in responses):
        return "log-likelihoods"
    if all(isinstance(r, str) for r in responses):
        return "generated text"
    return None


def _options(sample: dict[str, Any], where: str) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The conditional option log-likelihoods (K,) and (context, continuation) per option."""
    try:
        lls = np.array([float(r[0]) for r in sample["filtered_resps"]], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: a log-likelihood is not a number ({exc})") from None
    arguments = sample["arguments"]  # {"gen_args_k": {"arg_0": context, "arg_1": option}}
    try:
        keys = sorted(arguments, key=lambda k: int(k.rpartition("_")[2]))
        pairs = [(arguments[k]["arg_0"], arguments[k]["arg_1"]) for k in keys]
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        pairs = []
    if len(pairs) != len(lls) or not all(
        isinstance(c, str) and isinstance(t, str) for c, t in pairs
    ):
        raise InputError(
            f"{where}: 'arguments' should hold one (context, continuation) pair per response "
            f"({len(lls)}), as {_LAYOUT} writes them"
        )
    if "acc_mutual_info" in sample.get("metrics", ()):
        if len(lls) % 2:
            raise InputError(f"{where}: acc_mutual_info logs 2K responses; found {len(lls)}")
        k = len(lls) // 2
        return lls[:k], pairs[:k]
    return lls, pairs


def _gold(target: str, texts: list[str], where: str) -> int | None:
    """The gold option: a digit string is its index (lm-eval's int target), other text is
    matched to the options; None for several gold options ("[0, 2]")."""
    if target.isdigit():
        k = int(target)
        if k >= len(texts):
            raise InputError(f"{where}: target {k} is not one of the {len(texts)} options")
        return k
    if target in texts:
        return texts.index(target)
    if target.startswith("["):
        return None
    raise InputError(
        f"{where}: target {target!r} is neither an option index nor one of the options "
        f"{texts}; the samples do not follow the {_LAYOUT} layout"
    )


def _logged(sample: dict[str, Any], metric: str, where: str) -> bool | None:
    value = sample.get(metric)
    if value is None:
        return None
    if value not in (0, 1):
        raise InputError(f"{where}: {metric} is {value!r}, expected 0 or 1")
    return bool(value)


def _grade_sample(sample: dict[str, Any], delimiter: str, where: str) -> dict[str, Any]:
    """One document's row (see the module docstring); InputError where lm-eval's logged grading
    disagrees with the log-likelihoods."""
    lls, pairs = _options(sample, where)
    continuations = [t for _, t in pairs]
    options_in_context = len(set(continuations)) == 1 and len({c for c, _ in pairs}) > 1
    texts = [t.removeprefix(delimiter) for t in continuations]
    gold = None if options_in_context else _gold(str(sample["target"]), texts, where)
    p = softmax(lls)
    pred = int(np.argmax(lls))
    row: dict[str, Any] = {"pred": pred, "confidence": float(p[pred])}
    acc = _logged(sample, "acc", where)
    if gold is not None and acc is not None and acc != (pred == gold):
        raise InputError(
            f"{where}: lm-eval logged acc={int(acc)}, but the log-likelihoods rank option {pred} "
            f"first and the gold option is {gold}; the samples do not follow the {_LAYOUT} layout"
        )
    if acc is None and gold is None:
        raise InputError(f"{where}: the gold option is not in the log and lm-eval logged no acc")
    row["correct"] = acc if acc is not None else pred == gold
    if gold is not None:
        row |= {"gold": gold, "p_gold": float(p[gold])}
    if not options_in_context:
        lengths = np.array([float(len(t)) for t in texts])
        with np.errstate(divide="ignore", invalid="ignore"):
            pred_norm = int(np.argmax(lls / lengths))  # lm-eval's acc_norm rule, as it computes it
        acc_norm = _logged(sample, "acc_norm", where)
        if gold is not None and acc_norm is not None and acc_norm != (pred_norm == gold):
            raise InputError(
                f"{where}: lm-eval logged acc_norm={int(acc_norm)}, but the length-normalised "
                f"log-likelihoods rank option {pred_norm} first and the gold option is {gold}"
            )
        if acc_norm is not None or gold is not None:
            row |= {
                "pred_acc_norm": pred_norm,
                "correct_acc_norm": acc_norm if acc_norm is not None else pred_norm == gold,
                "confidence_acc_norm": float(p[pred_norm]),
            }
        row["option_n_chars"] = [len(t) for t in texts]
    row["option_logprobs"] = lls.tolist()
    return row


def _delimiter(config: dict[str, Any], chat_template: bool) -> str:
    """The text lm-eval put between context and option (as `ConfigurableTask` does)."""
    delimiter = config.get("target_delimiter", " ")
    if chat_template:
        prefix = config.get("gen_prefix")
        return delimiter if prefix and not prefix[-1].isspace() else ""
    return delimiter


def _check_layout(task: LogTask, samples: list[tuple[int, dict[str, Any]]]) -> None:
    """InputError naming the first line that lacks a key, holds another kind of response than
    the first line, or another kind than the task's output type."""
    first_kind = None
    for number, sample in samples:
        where = f"{task.samples}, line {number}"
        missing = [k for k in _REQUIRED if k not in sample]
        if missing:
            raise InputError(
                f"{where}: no {missing} (keys: {sorted(sample)}); not a sample in the {_LAYOUT} "
                "layout (another lm-eval version?)"
            )
        kind = _response_kind(sample["filtered_resps"])
        if kind is None:
            raise InputError(
                f"{where}: 'filtered_resps' is neither [log-likelihood, is_greedy] pairs nor "
                f"generated text: {str(sample['filtered_resps'])[:120]}; not the {_LAYOUT} layout"
            )
        if first_kind is None:
            first_kind, first_line = kind, number
            if kind != "log-likelihoods":
                raise InputError(
                    f"{where}: holds {kind}, but the results file says task {task.name!r} is "
                    f"{task.output_type}"
                )
        elif kind != first_kind:
            raise InputError(
                f"{where}: holds {kind}, but line {first_line} holds {first_kind}; a task's "
                "samples have one output type (was another task's file appended?)"
            )


def grade_samples(
    task: LogTask, samples: list[tuple[int, dict[str, Any]]], chat_template: bool = False
) -> pd.DataFrame:
    """Graded rows of one filter's samples of a multiple-choice task, one per document in
    doc_id order: item_id ("task/doc_id"), doc_id, subset (None), pred, correct, confidence,
    gold and p_gold (when the log names the gold option), pred_acc_norm, correct_acc_norm and
    confidence_acc_norm (when acc_norm is defined), option_logprobs (nats), option_n_chars.

    Raises InputError naming the file and line of a malformed sample, a repeated doc_id, or a
    document whose logged grading disagrees with its log-likelihoods.
    """
    _check_layout(task, samples)
    delimiter = _delimiter(task.config, chat_template)
    rows, seen = [], {}
    for number, sample in samples:
        where = f"{task.samples}, line {number}"
        doc_id = sample["doc_id"]
        if not isinstance(doc_id, int):
            raise InputError(f"{where}: doc_id {doc_id!r} is not an integer")
        if doc_id in seen:
            raise InputError(f"{where}: doc_id {doc_id} was already on line {seen[doc_id]}")
        seen[doc_id] = number
        rows.append(
            {"item_id": f"{task.name}/{doc_id}", "doc_id": doc_id, "subset": None}
            | _grade_sample(sample, delimiter, where)
        )
    frame = pd.DataFrame(rows).sort_values("doc_id", ignore_index=True)
    for group in _OPTIONAL:  # kept only where every document has them
        if group[0] in frame and frame[group[0]].isna().any():
            frame = frame.drop(columns=list(group))
    return frame.astype({c: t for c, t in _DTYPES.items() if c in frame})


def compare_with_lm_eval(
    rows: pd.DataFrame, reported: dict[tuple[str, str], float], filt: str, source: str = "samples"
) -> list[dict[str, Any]]:
    """calibbench's values of the metrics lm-eval reported for this filter: accuracy (`acc`,
    `acc_norm`: equal exactly) and the multi-class Brier score (`brier_score`, summed over
    the options: within BRIER_ATOL), the top-label Brier beside it. One dict per metric: metric,
    lm_eval, calibbench, difference, tolerance, ok. InputError (naming `source`) when lm-eval
    reported a Brier score that the rows cannot give."""
    checks = []
    for metric, column in (("acc", "correct"), ("acc_norm", "correct_acc_norm")):
        if (metric, filt) in reported and column in rows:
            checks.append(_check(metric, reported[(metric, filt)], rows[column].mean(), 0.0))
    if ("brier_score", filt) in reported:
        scores = option_scores(rows)
        if scores is None:
            raise InputError(
                f"{source}: lm-eval reported brier_score, but the log names no single gold "
                "option or the documents have different numbers of options"
            )
        entry = _check("brier_score", reported[("brier_score", filt)],
                       scores["multiclass_brier"], BRIER_ATOL)  # fmt: skip
        entry["top_label_brier"] = brier(rows["confidence"], rows["correct"])
        checks.append(entry)
    return checks


def option_scores(rows: pd.DataFrame) -> dict[str, float] | None:
    """Proper scores of the documents' option distributions softmax(l): the multi-class Brier
    score (summed over the options, as lm-eval's `brier_score`) and the NLL of the gold option
    (nats); None when the log names no single gold option or the documents have different
    numbers of options."""
    if "gold" not in rows or len({len(r) for r in rows["option_logprobs"]}) != 1:
        return None
    probs = softmax(np.array(list(rows["option_logprobs"])), axis=1)
    gold = rows["gold"].to_numpy()
    return {"multiclass_brier": multiclass_brier(probs, gold),
            "multiclass_nll": multiclass_nll(probs, gold)}  # fmt: skip


def _check(metric: str, lm_eval: float, calibbench: float, tolerance: float) -> dict[str, Any]:
    difference = float(calibbench) - float(lm_eval)
    return {"metric": metric, "lm_eval": float(lm_eval), "calibbench": float(calibbench),
            "difference": difference, "tolerance": tolerance,
            "ok": bool(abs(difference) <= tolerance)}  # fmt: skip


def no_confidence_reason(task: LogTask) -> str | None:
    """Why the log holds no confidence for `task` (see NO_CONFIDENCE, NO_SAMPLES), or None."""
    if task.output_type != "multiple_choice":
        default = f"output type {task.output_type!r} is not read by calibbench"
        return NO_CONFIDENCE.get(task.output_type, default)
    return NO_SAMPLES if task.samples is None else None


def grade_task(log: LmEvalLog, name: str) -> list[GradedTask]:
    """Task `name` of `log`, graded and checked against lm-eval's metrics: one GradedTask per
    filter in its samples (lm-eval's multiple-choice tasks have one, "none").

    Raises InputError for an unknown task or one without confidence (the reason), malformed
    samples (see `grade_samples`), a samples file with another number of documents than lm-eval
    reports, or a metric that differs from lm-eval's.
    """
    if name not in log.tasks:
        raise InputError(f"{log.results}: no task {name!r}; tasks: {sorted(log.tasks)}")
    task = log.tasks[name]
    reason = no_confidence_reason(task)
    if reason is not None or task.samples is None:
        raise InputError(f"{log.results}: task {name!r} has no confidence in this log: {reason}")
    by_filter: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, sample in read_samples(task.samples):
        by_filter.setdefault(str(sample.get("filter", "none")), []).append((number, sample))
    return [
        _graded(log, task, task.samples, filt, samples, several=len(by_filter) > 1)
        for filt, samples in by_filter.items()
    ]


def grade_log(log: LmEvalLog) -> tuple[list[GradedTask], list[dict[str, Any]]]:
    """Every task of `log` with a confidence (`grade_task`), and the tasks without one:
    [{task, output_type, n_documents, reason}]. Raises InputError as `grade_task` does."""
    graded, without = [], []
    for task in log.tasks.values():
        reason = no_confidence_reason(task)
        if reason is None:
            graded += grade_task(log, task.name)
        else:
            without.append({"task": task.name, "output_type": task.output_type,
                            "n_documents": task.n_documents, "reason": reason})  # fmt: skip
    return graded, without


def _graded(
    log: LmEvalLog,
    task: LogTask,
    path: Path,
    filt: str,
    samples: list[tuple[int, dict[str, Any]]],
    several: bool,
) -> GradedTask:
    rows = grade_samples(task, samples, log.chat_template)
    if task.n_documents is not None and len(rows) != task.n_documents:
        raise InputError(
            f"{path}: {len(rows)} documents (filter {filt!r}), but {log.results} reports "
            f"{task.n_documents} for task {task.name!r}; the samples file is incomplete or from "
            "another run"
        )
    checks = compare_with_lm_eval(rows, task.reported, filt, str(path))
    for check in checks:
        if not check["ok"]:
            raise InputError(
                f"{path}: {check['metric']} from the samples is {check['calibbench']!r}, but "
                f"{log.results} reports {check['lm_eval']!r}; are they from the same run?"
            )
    reported = {m: v for (m, f), v in task.reported.items() if f == filt}
    name = f"{task.name},{filt}" if several else task.name
    return GradedTask(name, task.name, filt, rows, reported, checks, path)
