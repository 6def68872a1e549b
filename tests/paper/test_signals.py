"""The signal comparison by task kind: the `signals` table against brute force on the test
predictions, its order and exclusions, the figure written or skipped, and the claim's verdict
against the intervals it is decided by."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_figures import BIG, SMALL, add_case, add_collection, add_task, method_entry, write_json

from calibbench.confidence.signals import BY_NAME, SIGNALS
from calibbench.metrics.binned import ece
from calibbench.metrics.rejection import prr
from calibbench.metrics.smooth import smooth_ece
from calibbench.paper.document import (
    NOT_SUPPORTED,
    SUPPORTED,
    TOKEN_SIGNALS,
    UNTESTABLE,
    claims,
    write_document,
)
from calibbench.paper.figures import signals_data, write_figures
from calibbench.paper.results import TUNING_SIGNAL, Results
from calibbench.paper.tables import methods_for_task, signal_comparison, write_tables

N = 40
TITLE = "Token probabilities rank answers on multiple choice, not on generation"
#: Signals graded per task of the synthetic tree, deliberately not in the registry's order.
TASKS = {
    "arc_easy": ("multiple_choice", ("confidence_token_norm", "confidence")),
    "mmlu": ("multiple_choice", ("confidence",)),
    "triviaqa": ("qa", ("semantic_entropy", "p_true", "sampling_agreement", "n_semantic_sets",
                        "geometric_mean", "min_token_prob", "confidence")),
    "humaneval": ("code", ("min_token_prob", "confidence", "geometric_mean")),
    "wikitext": ("language_modelling", ("confidence",)),
}  # fmt: skip
TOKEN_LEVEL = ("confidence", "confidence_token_norm", "geometric_mean", "min_token_prob")
MANIFEST = {"code": {"commit": "0" * 12, "dirty": False}, "config_sha256": "f" * 64, "seed": 0,
            "python": "3.11", "packages": {}, "config": {}}  # fmt: skip
ECE10 = partial(ece, n_bins=10, binning="width", norm="l1")


def _separating(correct: np.ndarray) -> np.ndarray:
    """Every right answer above every wrong one: AUROC 1 in every resample."""
    return np.where(correct, 0.9, 0.3)


def _chance(correct: np.ndarray) -> np.ndarray:
    """Right and wrong answers alike at 0.6 and 0.4 (AUROC 0.5)."""
    return np.tile([0.6, 0.6, 0.4, 0.4], N // 4)


def build(
    root: Path,
    kinds: tuple[str, ...] = ("multiple_choice", "qa", "code", "language_modelling"),
    mc=_separating,
    generation=_chance,
) -> Results:
    """Two models x the TASKS of `kinds`: the primary confidence on multiple choice drawn by
    `mc`, the token-level signals on QA and code by `generation`, the others at random; raw and
    Platt for each (Platt not fitted on humaneval's geometric_mean). Plus a calibration-tuning
    run and a signal outside the registry, which the table leaves out."""
    rng = np.random.default_rng(7)
    correct = np.tile([True, False], N // 2)
    for task, (kind, signals) in TASKS.items():
        if kind not in kinds:
            continue
        add_task(root, task, kind, 2 * N)
        for model in (SMALL, BIG):
            add_collection(root, model, task, 1_000_000)
            for signal in signals:
                if kind == "multiple_choice" and signal == "confidence":
                    conf = mc(correct)
                elif kind in ("qa", "code") and signal in TOKEN_LEVEL:
                    conf = generation(correct)
                else:
                    conf = rng.uniform(0.05, 0.95, N)
                platt = np.clip(conf + rng.normal(0, 0.05, N), 0.01, 0.99)
                methods = {"raw": (conf.tolist(), correct.tolist()),
                           "platt": (platt.tolist(), correct.tolist())}  # fmt: skip
                if (task, signal) == ("humaneval", "geometric_mean"):
                    methods["platt"] = "platt.fit: needs both outcomes"
                add_case(root, model, task, methods, None, signal)
    if "multiple_choice" in kinds:
        entry = method_entry(root, SMALL, "arc_easy", "raw", (_separating(correct), correct),
                             "tuning_raw")  # fmt: skip
        tuning = {"best": {"method": None, "reason": "-"}, "methods": {"raw": entry}}
        write_json(root / "tuning" / SMALL / "arc_easy.json", tuning)
        add_case(root, BIG, "arc_easy", {"raw": (_chance(correct), correct)}, None, "lm_eval_acc")
    return Results(root)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Results:
    return build(tmp_path_factory.mktemp("results"))


def _brute_auroc(conf: np.ndarray, correct: np.ndarray) -> float:
    """P(a right answer's confidence > a wrong one's), ties 1/2, over every pair."""
    right, wrong = conf[correct], conf[~correct]
    return float(np.mean([(r > w) + 0.5 * (r == w) for r in right for w in wrong]))


def test_each_row_matches_its_test_predictions(tree: Results):
    table = signal_comparison(tree)
    assert len(table) == 2 * sum(len(signals) for _, signals in TASKS.values())
    for row in table.itertuples():
        raw = tree.predictions(row.model, row.task, row.signal, "raw")
        conf, correct = raw["confidence"].to_numpy(), raw["correct"].to_numpy(bool)
        assert row.n_test == len(raw) == N
        assert row.auroc == pytest.approx(_brute_auroc(conf, correct)), row
        assert row.prr == pytest.approx(prr(conf, correct)), row
        # AURAC: mean accuracy over every rejection level, by brute force (no ties here)
        kept = correct[np.argsort(-conf, kind="stable")]
        brute = np.mean([kept[:k].mean() for k in range(1, N + 1)])
        if len(np.unique(conf)) == N:
            assert row.aurac == pytest.approx(brute), row
        assert row.auroc_low <= row.auroc <= row.auroc_high
        probability = BY_NAME[row.signal].probability
        assert row.probability == ("yes" if probability else "no")
        if probability:
            assert row.ece == pytest.approx(ECE10(conf, correct)), row
            assert row.smooth_ece == pytest.approx(smooth_ece(conf, correct)), row
        else:
            assert np.isnan([row.ece, row.ece_low, row.ece_high, row.smooth_ece]).all(), row
        if (row.task, row.signal) == ("humaneval", "geometric_mean"):
            assert np.isnan(row.ece_platt)
        else:
            platt = tree.predictions(row.model, row.task, row.signal, "platt")
            expected = ECE10(platt["confidence"].to_numpy(), platt["correct"].to_numpy(bool))
            assert row.ece_platt == pytest.approx(expected), row


def test_rows_follow_kind_task_model_and_registry_order(tree: Results):
    table = signal_comparison(tree)
    kinds = list(dict.fromkeys(table["kind"]))
    assert kinds == ["multiple_choice", "qa", "code", "language_modelling"]
    registry = [s.name for s in SIGNALS]
    for kind, part in table.groupby("kind", sort=False):
        assert list(dict.fromkeys(part["task"])) == sorted(set(part["task"])), kind
        for task, case in part.groupby("task", sort=False):
            assert list(dict.fromkeys(case["model"])) == [BIG, SMALL]
            for _, rows in case.groupby("model", sort=False):
                assert list(rows["signal"]) == [s for s in registry if s in TASKS[task][1]]
    assert {TUNING_SIGNAL, "tuning_raw", "lm_eval_acc"}.isdisjoint(table["signal"])


def test_written_like_the_other_tables(tree: Results, tmp_path: Path):
    paths = write_tables(tree, tmp_path)
    assert {tmp_path / f"signals.{x}" for x in ("csv", "md", "tex")} <= set(paths)
    back = pd.read_csv(tmp_path / "signals.csv")
    table = signal_comparison(tree)
    assert list(back.columns) == list(table.columns)
    np.testing.assert_allclose(back["prr"], table["prr"], rtol=1e-5)
    md = (tmp_path / "signals.md").read_text()
    assert "prr_low" not in md and "<NA>" not in md
    entropy = next(line for line in md.splitlines() if "| semantic_entropy " in line)
    assert "| no " in entropy and "—" in entropy and "[" in entropy
    per_task = methods_for_task(tree, "triviaqa")
    assert {"prr", "prr_low", "prr_high"} <= set(per_task.columns)
    raw = per_task[(per_task.model == SMALL) & (per_task.signal == "p_true")].set_index("method")
    mine = table[(table.model == SMALL) & (table.task == "triviaqa") & (table.signal == "p_true")]
    assert raw.loc["raw", "prr"] == pytest.approx(mine["prr"].iloc[0])


def test_figure_data_are_the_tables_ranking_columns(tree: Results):
    data = signals_data(tree)
    table = signal_comparison(tree)
    pd.testing.assert_frame_equal(data, table[data.columns].astype(data.dtypes.to_dict()))


def test_figure_written_and_skipped_without_data(tree: Results, tmp_path: Path, caplog):
    paths = write_figures(tree, tmp_path / "figures")
    assert {p.name for p in paths} >= {"signals_by_kind.pdf", "signals_by_kind.png"}
    root = tmp_path / "only_unregistered"
    add_task(root, "arc_easy", "multiple_choice", 12)
    correct = np.tile([True, False], N // 2)
    add_case(root, SMALL, "arc_easy", {"raw": (_chance(correct), correct)}, None, "lm_eval_acc")
    assert signal_comparison(Results(root)).empty
    with caplog.at_level(logging.WARNING, logger="calibbench.paper.figures"):
        paths = write_figures(Results(root), tmp_path / "none")
    assert not any(p.stem == "signals_by_kind" for p in paths)
    assert "figure signals_by_kind not drawn" in " ".join(caplog.messages)


def _expected_verdict(root: Path) -> str:
    """The claim's rule recomputed from the comparison JSON files: per model, every
    multiple-choice confidence interval above the best token-level signal's on each generation
    task."""
    auroc = {}
    for path in root.glob("compare/*/*/*.json"):
        summary = json.loads(path.read_text())["methods"]["raw"]["summary"]["metrics"]["auroc"]
        auroc[path.parent.parent.name, path.parent.name, path.stem] = summary
    outcomes = []
    for model in (SMALL, BIG):
        for task in ("triviaqa", "humaneval"):
            token = [auroc[model, task, s] for s in TOKEN_LEVEL if (model, task, s) in auroc]
            best = max(token, key=lambda m: m["estimate"])
            for mc in ("arc_easy", "mmlu"):
                outcomes.append(auroc[model, mc, "confidence"]["low"] > best["high"])
    return SUPPORTED if all(outcomes) else NOT_SUPPORTED


@pytest.mark.parametrize(
    ("generation", "verdict", "above"), [(_chance, SUPPORTED, 8), (_separating, NOT_SUPPORTED, 0)]
)
def test_claim_verdict_follows_the_intervals(tmp_path: Path, generation, verdict, above):
    results = build(tmp_path, generation=generation)
    claim = next(c for c in claims(results) if c.title == TITLE)
    assert set(TOKEN_SIGNALS) == set(TOKEN_LEVEL) <= set(BY_NAME)
    assert claim.verdict == verdict == _expected_verdict(tmp_path)
    assert claim.why == (
        f"the multiple-choice interval lies above the generation one in {above} of 8 "
        "model-task pairs"
    )
    details = claim.details.frame
    assert len(details) == 8 and set(details["Best token-level signal"]) <= set(TOKEN_LEVEL)
    assert claim.figures == ("signals_by_kind",)


@pytest.mark.parametrize(
    ("kinds", "why"),
    [
        (("qa", "code"), "no multiple-choice task with a raw AUROC of the primary confidence"),
        (("multiple_choice",), "no open-ended QA or code task with a raw AUROC of a token-level"),
    ],
)
def test_claim_not_testable_without_both_kinds(tmp_path: Path, kinds, why):
    claim = next(c for c in claims(build(tmp_path, kinds)) if c.title == TITLE)
    assert claim.verdict == UNTESTABLE and claim.why.startswith(why)


def test_the_paper_shows_the_table_and_the_figure_beside_the_claim(tree: Results, tmp_path):
    write_json(tree.root / "manifest.json", MANIFEST)
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    write_tables(tree, tables)
    write_figures(tree, figures)
    out = tmp_path / "paper.md"
    write_document(Results(tree.root), tables, figures, out)
    text = out.read_text()
    section = text[text.index(f"### {TITLE}") :]
    assert section.index("(figures/signals_by_kind.png)") < section.index("\n## ")
    signals = text[text.index("## Confidence signals by task kind") :]
    assert "semantic_entropy as exp(-entropy), n_semantic_sets as 1 / count" in signals
    assert "| ECE after Platt " in signals and "| PRR " in signals
    assert "| open-ended QA " in signals


def test_verbalized_replies_are_counted_by_status(tmp_path: Path):
    """Every verbalized reply is counted under its parse status, none dropped; tasks without the
    signal have no row, and without any the table is not written."""
    from calibbench.confidence.verbalized import STATUSES
    from calibbench.paper.tables import verbalized_replies

    root = tmp_path / "results"
    statuses = ["ok", "ok", "no_probability", "empty", "ok", "out_of_range", "no_answer"]
    graded = pd.DataFrame(
        {
            "item_id": [f"q{i}" for i in range(7)],
            "correct": [True] * 7,
            "verbalized_status": statuses,
            "verbalized_correct": [True, False, False, False, True, True, False],
        }
    )
    (root / "graded" / SMALL).mkdir(parents=True)
    graded.to_parquet(root / "graded" / SMALL / "triviaqa.parquet")
    graded[["item_id", "correct"]].to_parquet(root / "graded" / SMALL / "mmlu.parquet")
    table = verbalized_replies(Results(root))
    assert table[["model", "task", "form", "items"]].values.tolist() == [
        [SMALL, "triviaqa", "one-stage", 7]
    ]
    row = table.iloc[0]
    assert {s: row[s] for s in STATUSES} == {s: statuses.count(s) for s in STATUSES}
    assert sum(row[s] for s in STATUSES) == row["items"]
    assert row["answer_accuracy"] == pytest.approx(3 / 7)
    # two-stage replies are counted in their own row, about the graded answers
    two_stage = ["ok", "no_probability", "ok", "ok", "empty", "ok", "ok"]
    graded["verbalized_two_stage_status"] = two_stage
    graded["correct"] = [True, True, False, False, False, False, False]
    graded.to_parquet(root / "graded" / SMALL / "triviaqa.parquet")
    table = verbalized_replies(Results(root))
    assert table["form"].tolist() == ["one-stage", "two-stage"]
    row = table.iloc[1]
    assert {s: row[s] for s in STATUSES} == {s: two_stage.count(s) for s in STATUSES}
    assert row["answer_accuracy"] == pytest.approx(2 / 7)
    (tmp_path / "none").mkdir()
    assert verbalized_replies(Results(tmp_path / "none")).empty
