"""Reading lm-eval sample logs (`calibbench.lmeval`): logs written by lm-eval itself, compared with
the metrics lm-eval computed in memory; the cross-fitting; the report; bad input.

Logs come from `lm_eval.simple_evaluate(log_samples=True)` saved the way lm-eval's command line
saves them (`EvaluationTracker.save_results_aggregated` and `save_results_samples`, as
`lm_eval._cli.run.Run._execute` does), on calibbench's offline task definitions. lm-eval's
built-in "dummy" model (random log-likelihoods) makes the fast logs; SmolLM2 the one that is
cross-checked against calibbench's own collection.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # before datasets is imported: never download
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from lm_eval.utils import hash_string
from lm_eval_runs import (
    ARC,
    BRIER,
    GENERATE,
    LOGLIKELIHOOD,
    METRIC,
    MMLU,
    MUTUAL,
    WINOGRANDE,
    run_lm_eval,
    write_tasks,
)
from scipy.special import softmax

from calibbench.errors import InputError
from calibbench.lmeval import (
    ReportSettings,
    assign_folds,
    cross_fit,
    grade_log,
    read_log,
    write_report,
    write_workflow_task,
)
from calibbench.lmeval.crossfit import cross_fit_method
from calibbench.metrics.summary import answer_summary
from calibbench.recalibration import TemperatureScaler
from calibbench.recalibration.protocol import compare_methods
from calibbench.splits import assign_splits
from calibbench.tasks.multiple_choice import MultipleChoiceTask


@pytest.fixture(scope="module")
def dummy_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(output directory, lm-eval's results) of the dummy model on every task, 40 documents."""
    root = tmp_path_factory.mktemp("lmeval-dummy")
    include = write_tasks(root / "tasks")
    tasks = [ARC, MMLU, BRIER, MUTUAL, WINOGRANDE, GENERATE, LOGLIKELIHOOD]
    return root / "out", run_lm_eval(root / "out", include, tasks, limit=40, model="dummy")


def _copy(log: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(log, tmp_path / "log"))


def _samples_file(log: Path, task: str) -> Path:
    (path,) = log.glob(f"*/samples_{task}_[0-9]*.jsonl")  # the date follows the task's name
    return path


def check_against_lm_eval(log: Path, reference: dict) -> dict:
    """Graded tasks by name, after asserting that calibbench's values equal lm-eval's in-memory
    ones: accuracy exactly, brier_score to 1e-9, and per document the option probabilities and
    gold option of lm-eval's brier_score items (to 1e-12)."""
    graded, _ = grade_log(read_log(log))
    by_name = {g.name: g for g in graded}
    for name, task in by_name.items():
        metrics = reference["results"][name]
        for metric, column in METRIC.items():
            if f"{metric},none" in metrics:
                assert task.rows[column].mean() == metrics[f"{metric},none"], (name, metric)
        if "brier_score,none" in metrics:
            (check,) = [c for c in task.checks if c["metric"] == "brier_score"]
            assert check["calibbench"] == pytest.approx(metrics["brier_score,none"], abs=1e-9)
            assert check["top_label_brier"] == pytest.approx(
                np.mean((task.rows["confidence"] - task.rows["correct"]) ** 2)
            )
            samples = sorted(reference["samples"][name], key=lambda s: s["doc_id"])
            gold, probs = zip(*(s["brier_score"] for s in samples), strict=True)
            assert task.rows["gold"].tolist() == list(gold)
            ours = softmax(np.array(list(task.rows["option_logprobs"])), axis=1)
            np.testing.assert_allclose(ours, np.array(probs), rtol=0, atol=1e-12)
    return by_name


def test_graded_rows_equal_lm_evals_metrics(dummy_log):
    log, reference = dummy_log
    graded = check_against_lm_eval(log, reference)
    assert set(graded) == {ARC, MMLU, BRIER, MUTUAL, WINOGRANDE}
    assert {c["metric"] for c in graded[BRIER].checks} == {"acc", "acc_norm", "brier_score"}
    assert all(c["ok"] for g in graded.values() for c in g.checks)
    for task in graded.values():
        assert len(task.rows) == 40 and task.rows["item_id"].is_unique
        top = [softmax(np.array(lls)).max() for lls in task.rows["option_logprobs"]]
        np.testing.assert_allclose(task.rows["confidence"], top, rtol=1e-12)
    # acc_mutual_info logs 2K responses (conditional, then unconditional): the first K count.
    samples = sorted(reference["samples"][MUTUAL], key=lambda s: s["doc_id"])
    conditional = [[ll for ll, _ in s["filtered_resps"][: len(s["doc"]["choices"]["text"])]]
                   for s in samples]  # fmt: skip
    assert graded[MUTUAL].rows["option_logprobs"].tolist() == conditional
    # Winogrande puts its two options in the context: no gold in the log, lm-eval's acc used.
    assert "gold" not in graded[WINOGRANDE].rows
    assert graded[WINOGRANDE].rows["option_logprobs"].map(len).eq(2).all()


def test_tasks_without_confidence_are_listed_with_the_reason(dummy_log):
    log, _ = dummy_log
    graded, without = grade_log(read_log(log))
    reasons = {t["task"]: t["reason"] for t in without}
    assert set(reasons) == {GENERATE, LOGLIKELIHOOD}
    assert "generated text" in reasons[GENERATE]
    assert "one continuation per document" in reasons[LOGLIKELIHOOD]
    assert {t["n_documents"] for t in without} == {40}
    assert {g.name for g in graded} | set(reasons) == set(read_log(log).tasks)


def test_identity_comes_from_the_results_file(dummy_log):
    log, reference = dummy_log
    identity = read_log(log).identity
    assert identity["extra"]["lm_eval_version"] == reference["lm_eval_version"]
    assert identity["extra"]["model_source"] == "dummy"
    assert identity["runtime"] == "lm-eval"


def test_folds_are_balanced_seeded_and_fixed_by_item_id():
    ids = [f"task/{i}" for i in range(103)]
    folds = assign_folds(ids, 5, seed=3)
    assert sorted(np.bincount(folds)) == [20, 20, 21, 21, 21]
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"3\0{i}".encode()).hexdigest())
    assert folds.tolist() == [ranked.index(i) % 5 for i in ids]
    shuffled = list(np.random.default_rng(0).permutation(ids))
    again = dict(zip(shuffled, assign_folds(shuffled, 5, seed=3), strict=True))
    assert [again[i] for i in ids] == folds.tolist()
    assert assign_folds(ids, 5, seed=4).tolist() != folds.tolist()
    with pytest.raises(InputError, match="at least 2 folds"):
        assign_folds(ids, 1)


def test_cross_fitting_predicts_each_fold_from_the_others(dummy_log):
    log, _ = dummy_log
    rows = {g.name: g for g in grade_log(read_log(log))[0]}[ARC].rows
    fold = assign_folds(rows["item_id"], 4, seed=1)
    predicted, fitted, error = cross_fit_method("temperature", rows, fold)
    assert error is None and len(fitted) == 4
    for k in range(4):  # a brute-force loop over the folds
        held = fold == k
        scaler = TemperatureScaler().fit(list(rows["option_logprobs"][~held]), rows["gold"][~held])
        np.testing.assert_array_equal(
            predicted[held], scaler.predict(list(rows["option_logprobs"][held]))
        )
    # Outcomes of a fold never reach its own predictions.
    flipped = rows.assign(correct=np.where(fold == 0, ~rows["correct"], rows["correct"]))
    before = cross_fit_method("isotonic", rows, fold)[0]
    after = cross_fit_method("isotonic", flipped, fold)[0]
    np.testing.assert_array_equal(before[fold == 0], after[fold == 0])
    assert not np.array_equal(before[fold != 0], after[fold != 0])


def test_cross_fit_summarises_every_method_and_records_what_cannot_be_fitted(dummy_log):
    log, _ = dummy_log
    rows = {g.name: g for g in grade_log(read_log(log))[0]}[ARC].rows
    settings = {"n_bins": 40, "n_resamples": 50}  # 40 bins: more than a fold's 32 items
    result = cross_fit(rows, "confidence_acc_norm", "correct_acc_norm", folds=5, **settings)
    raw = answer_summary(rows["confidence_acc_norm"], rows["correct_acc_norm"], **settings)
    assert result["methods"]["raw"]["summary"] == raw
    assert "log-likelihoods" in result["methods"]["temperature"]["error"]
    assert result["methods"]["histogram"]["error"].startswith("fold 0: histogram.fit: 32 calib")
    assert "summary" in result["methods"]["isotonic"]
    assert result["best"]["method"] is None or result["best"]["method"] in result["methods"]


def test_report_writes_json_markdown_and_figures(dummy_log, tmp_path):
    log, _ = dummy_log
    index = write_report(read_log(log), tmp_path, ReportSettings(n_resamples=50))
    assert set(index["tasks"]) == {ARC, MMLU, BRIER, MUTUAL, WINOGRANDE}
    assert [t["task"] for t in index["no_confidence"]] == [GENERATE, LOGLIKELIHOOD]
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(index))
    page = (tmp_path / "report.md").read_text()
    assert "## No confidence in this log" in page and GENERATE in page
    for name, entry in index["tasks"].items():
        report = json.loads((tmp_path / entry["report"]).read_text())
        signals = (
            {"confidence", "confidence_acc_norm"}
            if "acc_norm" in report["lm_eval"]
            else {"confidence"}
        )
        assert set(report["signals"]) == set(entry["figures"]) == signals
        assert all((tmp_path / f).read_bytes()[:4] == b"\x89PNG" for f in entry["figures"].values())
        assert len(pq.read_table(tmp_path / entry["graded"])) == report["n_documents"]
        assert f"## {name}" in page


def test_workflow_files_feed_the_split_and_the_protocol(dummy_log, tmp_path):
    log, reference = dummy_log
    write_workflow_task(log, ARC, tmp_path / "graded.parquet", tmp_path / "items.parquet",
                        tmp_path / "task.json", tmp_path / "identity.json")  # fmt: skip
    graded = pd.read_parquet(tmp_path / "graded.parquet")
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert graded["correct"].mean() == reference["results"][ARC]["acc,none"]
    assert items["item_id"].tolist() == graded["item_id"].tolist()
    info = json.loads((tmp_path / "task.json").read_text())
    hashes = "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                     for s in reference["samples"][ARC])  # fmt: skip
    assert info["n_items"] == 40 and info["dataset"]["sha256"] == hash_string(hashes)
    identity = json.loads((tmp_path / "identity.json").read_text())
    assert identity["extra"]["lm_eval_version"] == reference["lm_eval_version"]
    compared = compare_methods(graded, assign_splits(items["item_id"]), n_resamples=50)
    assert "summary" in compared["methods"]["temperature"]
    with pytest.raises(InputError, match="no confidence in this log"):
        write_workflow_task(log, GENERATE, tmp_path / "g.parquet", tmp_path / "i.parquet")


def test_the_cli_command_reports_and_fails_with_one_line(dummy_log, tmp_path, capsys):
    from calibbench import cli

    if "from-lm-eval" not in {name for name, *_ in cli.COMMANDS}:
        pytest.skip("from-lm-eval is not in calibbench.cli.COMMANDS yet")
    log, _ = dummy_log
    assert (
        cli.main(["from-lm-eval", str(log), "--out", str(tmp_path / "r"), "--bootstrap", "20"]) == 0
    )
    assert (tmp_path / "r" / "report.md").is_file()
    assert cli.main(["from-lm-eval", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no such file or directory" in err and "Traceback" not in err


# Bad input ----------------------------------------------------------------------------------


def test_a_directory_without_results_or_samples_is_refused(dummy_log, tmp_path):
    log, _ = dummy_log
    with pytest.raises(InputError, match="no results_"):
        read_log(tmp_path)
    copy_ = _copy(log, tmp_path)
    for samples in copy_.glob("*/samples_*.jsonl"):
        samples.unlink()
    with pytest.raises(InputError, match="--log_samples"):
        read_log(copy_)
    results = next(copy_.glob("*/results_*.json"))
    shutil.copy(results, results.with_name("results_2000-01-01T00-00-00.json"))
    with pytest.raises(InputError, match="holds 2 lm-eval runs"):
        read_log(copy_)


def _rewrite_line(path: Path, number: int, change: Callable[[str], str]) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = change(lines[number - 1])
    path.write_text("".join(lines))


def test_a_truncated_line_is_named(dummy_log, tmp_path):
    log = _copy(dummy_log[0], tmp_path)
    samples = _samples_file(log, ARC)
    n = len(samples.read_text().splitlines())
    samples.write_text(samples.read_text()[:-200])
    with pytest.raises(InputError, match=rf"{samples.name}, line {n}: not valid JSON"):
        grade_log(read_log(log))


def test_another_layout_is_named_with_file_and_line(dummy_log, tmp_path):
    log = _copy(dummy_log[0], tmp_path)
    samples = _samples_file(log, MMLU)

    def flat(line: str) -> str:
        sample = json.loads(line)
        sample["filtered_resps"] = [sample["filtered_resps"][0][0], 1.5]
        return json.dumps(sample) + "\n"

    _rewrite_line(samples, 3, flat)
    with pytest.raises(InputError, match=rf"{samples.name}, line 3: 'filtered_resps' is neither"):
        grade_log(read_log(log))

    def renamed(line: str) -> str:
        sample = json.loads(line)
        sample["responses"] = sample.pop("filtered_resps")
        return json.dumps(sample) + "\n"

    _rewrite_line(samples, 3, renamed)
    with pytest.raises(InputError, match=rf"{samples.name}, line 3: no \['filtered_resps'\]"):
        grade_log(read_log(log))
    # Early lm-eval 0.4 releases wrote results.json and each task's samples as one JSON array.
    array = [
        json.loads(line) for line in _samples_file(dummy_log[0], MMLU).read_text().splitlines()
    ]
    samples.write_text(json.dumps(array, indent=2))
    with pytest.raises(InputError, match=rf"{samples.name}, line 1: a JSON array: the layout of"):
        grade_log(read_log(log))
    results = next(log.glob("*/results_*.json"))
    results.rename(results.with_name("results.json"))
    with pytest.raises(InputError, match=r"holds results\.json: the layout of early lm-eval 0\.4"):
        read_log(log)


def test_a_task_mixing_output_types_is_refused(dummy_log, tmp_path):
    log = _copy(dummy_log[0], tmp_path)
    samples = _samples_file(log, ARC)
    generated = _samples_file(log, GENERATE).read_text().splitlines(keepends=True)[4]
    _rewrite_line(samples, 5, lambda _: generated)
    with pytest.raises(InputError, match=r"line 5: holds generated text, but line 1 holds log-lik"):
        grade_log(read_log(log))


def test_samples_that_disagree_with_lm_eval_are_refused(dummy_log, tmp_path):
    log = _copy(dummy_log[0], tmp_path)
    samples = _samples_file(log, ARC)

    def flip(line: str) -> str:
        sample = json.loads(line)
        sample["acc"] = 1.0 - sample["acc"]
        return json.dumps(sample) + "\n"

    _rewrite_line(samples, 2, flip)
    with pytest.raises(InputError, match=rf"{samples.name}, line 2: lm-eval logged acc="):
        grade_log(read_log(log))
    lines = _samples_file(dummy_log[0], ARC).read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:-1]))
    with pytest.raises(InputError, match=r"39 documents .* reports 40"):
        grade_log(read_log(log))
    samples.write_text("".join(lines + lines[:1]))
    with pytest.raises(InputError, match=f"line {len(lines) + 1}: doc_id 0 was already on line 1"):
        grade_log(read_log(log))


# A real model --------------------------------------------------------------------------------

LIMIT = 8


@pytest.fixture(scope="module")
def smollm_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(output directory, lm-eval's results) of lm-eval's HF model on SmolLM2-135M: ARC-Easy,
    MMLU abstract algebra with brier_score, and a generation task; LIMIT documents."""
    from calibbench.models.builtin import gguf_path
    from calibbench.models.hf import dequantised_dir

    root = tmp_path_factory.mktemp("lmeval-smollm")
    include = write_tasks(root / "tasks")
    pretrained = dequantised_dir(gguf_path("smollm2-135m"))
    reference = run_lm_eval(
        root / "out", include, [ARC, BRIER, GENERATE], LIMIT, "hf",
        f"pretrained={pretrained},dtype=float32",
    )  # fmt: skip
    return root / "out", reference


@pytest.mark.model
def test_a_real_lm_eval_run_reads_back_with_lm_evals_numbers(smollm_log):
    log, reference = smollm_log
    graded = check_against_lm_eval(log, reference)
    assert set(graded) == {ARC, BRIER}
    assert "brier_score" in {c["metric"] for c in graded[BRIER].checks}
    _, without = grade_log(read_log(log))
    assert [t["task"] for t in without] == [GENERATE]
    identity = read_log(log).identity
    assert identity["n_parameters"] == reference["config"]["model_num_parameters"]
    assert identity["extra"]["dtype"] == str(reference["config"]["model_dtype"])


@pytest.mark.model
def test_the_log_and_calibbenchs_own_collection_agree(smollm_log, tmp_path):
    from calibbench.collect import collect
    from calibbench.models.hf import HFModel

    log, _ = smollm_log
    from_log = {g.name: g for g in grade_log(read_log(log))[0]}[ARC].rows
    task = MultipleChoiceTask("arc_easy")
    items = task.items().head(LIMIT)
    with HFModel.builtin("smollm2-135m") as model:
        collect(model, task.requests(items), tmp_path / "collect", progress=False)
    records = pd.read_parquet(tmp_path / "collect" / "records.parquet")
    own = task.grade(items, records).assign(doc_id=items["doc_id"].to_numpy())
    merged = from_log.merge(own, on="doc_id", suffixes=("_log", "_own"), validate="1:1")
    assert len(merged) == LIMIT
    p_log = softmax(np.array(list(merged["option_logprobs_log"])), axis=1)
    p_own = softmax(np.array(list(merged["option_logprobs_own"])), axis=1)
    np.testing.assert_allclose(p_log, p_own, rtol=0, atol=1e-5)
    assert merged["correct_log"].tolist() == merged["correct_own"].tolist()
    assert merged["correct_acc_norm_log"].tolist() == merged["correct_acc_norm_own"].tolist()
    report_log = answer_summary(merged["confidence_log"], merged["correct_log"], n_resamples=50)
    report_own = answer_summary(merged["confidence_own"], merged["correct_own"], n_resamples=50)
    for name, metric in report_log["metrics"].items():
        other = report_own["metrics"][name]
        for key in ("estimate", "low", "high"):
            if metric[key] is None:
                assert other[key] is None, (name, key)
            else:
                # float32 rounding: calibbench scores a shared context once (KV cache), lm-eval
                # forwards each request whole; log-probs differ by ~1e-5 nats, NLL by as much.
                assert metric[key] == pytest.approx(other[key], abs=5e-5), (name, key)


def test_lm_eval_yaml_writes_tasks_lm_eval_loads_with_calibbenchs_items(tmp_path, capsys):
    from lm_eval.tasks import TaskManager

    from calibbench.cli import main

    assert main(["lm-eval-yaml", "--task", "mmlu", "--spec",
                 '{"format": "letter", "subsets": ["anatomy", "virology"]}',
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    names = capsys.readouterr().out.strip().split(",")
    assert names == ["calibbench_mmlu_letter_anatomy", "calibbench_mmlu_letter_virology"]
    loaded = TaskManager(include_path=str(tmp_path), include_defaults=False).load(names)["tasks"]
    task = MultipleChoiceTask("mmlu", "letter", ["anatomy", "virology"])
    items = task.items()
    docs = [(n, doc) for n in names for _, doc in loaded[n].doc_iterator()]
    assert len(docs) == len(items)
    first_task = loaded[names[0]]
    first_doc = docs[0][1]
    assert first_task.fewshot_context(first_doc, num_fewshot=0) == items["context"].iloc[0]
    assert main(["lm-eval-yaml", "--task", "triviaqa", "--out", str(tmp_path)]) == 2
    assert "not a multiple-choice task" in capsys.readouterr().err
