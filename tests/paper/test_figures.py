"""Figure data against hand-computed values and brute force; figure files written, skipped and
reproduced byte for byte."""

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibbench.confidence.signals import BY_NAME
from calibbench.errors import InputError
from calibbench.metrics.scores import aurc
from calibbench.metrics.summary import answer_summary
from calibbench.paper.figures import (
    draw_pavg,
    draw_reliability,
    pavg_data,
    raw_ece_data,
    reliability_data,
    risk_coverage,
    risk_coverage_data,
    shown_methods,
    temperature_data,
    write_figures,
)
from calibbench.paper.results import Results

SMALL, BIG = "smollm2-135m", "smollm2-1.7b"
TEMPERATURE_ERROR = (
    "temperature scaling needs the options' log-likelihoods (multiple-choice tasks, primary "
    "confidence)"
)

# Test-split predictions (confidence, correct) with values worked out by hand below.
ARC_RAW = ([0.95, 0.85, 0.62, 0.55, 0.35, 0.31], [True, False, True, False, False, True])
ARC_TEMPERATURE = ([0.8, 0.7, 0.55, 0.5, 0.4, 0.38], [True, False, True, False, False, True])
QA_RAW = ([0.7, 0.4, 0.4, 0.1], [True, False, True, False])
QA_ISOTONIC = ([0.5, 0.25, 0.25, 0.25], [True, False, True, False])
CODE_RAW = ([0.6, 0.5, 0.9, 0.8], [False, True, False, False])
CODE_ISOTONIC = ([0.25, 0.25, 0.25, 0.25], [False, True, False, False])


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def add_task(root: Path, task: str, kind: str, n_items: int) -> None:
    dataset = {
        "licence": "MIT",
        "n_items": 1000,
        "name": task,
        "sha256": "0" * 64,
        "source": "test",
        "split": "validation",
        "subset": None,
        "url": "https://x",
    }
    write_json(
        root / "tasks" / task / "task.json",
        {"dataset": dataset, "kind": kind, "limit": n_items, "n_items": n_items, "task": task},
    )


def add_collection(root: Path, model: str, task: str, n_parameters: int | None) -> None:
    info = {
        "extra": {},
        "family": "smollm2",
        "logprob_source": "full",
        "n_parameters": n_parameters,
        "name": model,
        "quantization": "Q4_1",
        "revision": None,
        "runtime": "llamacpp",
        "sha256": "1" * 64,
        "source": "test.gguf",
        "vocab_size": 49152,
    }
    write_json(
        root / "collect" / model / task / "answers" / "manifest.json",
        {
            "kind": "generate",
            "model": info,
            "n_requests": 8,
            "outputs": {},
            "requests_sha256": "2" * 64,
            "settings": {},
        },
    )


def method_entry(
    root: Path, model: str, task: str, method: str, answers, signal: str = "confidence"
) -> dict:
    """Write recalibrate/{model}/{task}/{signal}/{method}.json (+ .parquet); return the entry.
    `answers` is (confidence, correct) or an error message. A score signal's (see the registry)
    `raw` summary holds only the ranking metrics, as the recalibration protocol writes it."""
    settings = {"level": 0.95, "n_bins": 10, "n_resamples": 20, "seed": 0}
    score = signal in BY_NAME and not BY_NAME[signal].probability
    ranking_only = f"{signal} is a score, not a probability" if score and method == "raw" else None
    base = {
        "confidence": signal,
        "method": method,
        "n_calibration": 6,
        "n_missing_confidence": 0,
        "settings": settings,
    }
    path = root / "recalibrate" / model / task / signal / f"{method}.json"
    if isinstance(answers, str):
        entry = base | {"error": answers, "n_test": 0}
    else:
        conf, correct = answers
        summary = answer_summary(
            conf, correct, n_bins=10, n_resamples=20, seed=0, ranking_only=ranking_only
        )
        entry = base | {"n_test": len(conf), "summary": summary}
        if method != "raw":
            entry["fitted"] = {"method": method, "params": {}, "state": {}}
        ids = pd.array([f"{task}/{i}" for i in range(len(conf))], dtype="string")
        frame = pd.DataFrame({"item_id": ids, "confidence": conf, "correct": correct})
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path.with_suffix(".parquet"), index=False)
    write_json(path, entry)
    return entry


def add_case(
    root: Path, model: str, task: str, methods: dict, best: str | None, signal: str = "confidence"
) -> None:
    entries = {m: method_entry(root, model, task, m, a, signal) for m, a in methods.items()}
    reason = "none significantly better" if best is None else "test ECE 0.1, interval below raw's"
    write_json(
        root / "compare" / model / task / f"{signal}.json",
        {"best": {"method": best, "reason": reason}, "methods": entries},
    )


def add_sweep(root: Path, model: str, task: str, fitted: float | None) -> None:
    t = np.array([0.5, 1.0, 1.5, 2.0])
    frame = pd.DataFrame(
        {
            "temperature": t,
            "top1_ece": [0.35, 0.03, 0.18, 0.27],
            "full_ece": [0.85, 0.08, 0.25, 0.05],
            "brier": [1.0, 0.84, 0.89, 0.96],
            "nll": [6.0, 4.1, 4.4, 5.3],
            "argmax_accuracy": 0.3,
            "sampled_accuracy": [0.27, 0.18, 0.08, 0.03],
            "entropy": [1.2, 3.5, 6.6, 8.7],
            "n_positions": 428,
            "approximation": pd.array([""] * 4, dtype="string"),
        }
    )
    (root / "sweep" / model).mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / "sweep" / model / f"{task}.parquet", index=False)
    fit = (
        {"method": "temperature", "error": "no positions to fit"}
        if fitted is None
        else {
            "method": "temperature",
            "params": {"objective": "nll"},
            "state": {"level": "token", "objective_value": 4.1, "temperature": fitted},
        }
    )
    write_json(root / "sweep" / model / f"{task}.temperature.json", fit)


def small_model(root: Path) -> None:
    """One model: arc_easy (fallback: temperature) with a token sweep, humaneval (fallback:
    isotonic, temperature not applicable)."""
    add_task(root, "arc_easy", "multiple_choice", 12)
    add_task(root, "humaneval", "code", 8)
    for task in ("arc_easy", "humaneval"):
        add_collection(root, SMALL, task, 134_515_008)
    add_case(root, SMALL, "arc_easy", {"raw": ARC_RAW, "temperature": ARC_TEMPERATURE}, None)
    add_case(
        root,
        SMALL,
        "humaneval",
        {"raw": CODE_RAW, "temperature": TEMPERATURE_ERROR, "isotonic": CODE_ISOTONIC},
        None,
    )
    add_sweep(root, SMALL, "arc_easy", 1.27)


@pytest.fixture
def two_models(tmp_path: Path) -> Results:
    """Two models x (arc_easy, humaneval, triviaqa), and a token-level task with sweeps only."""
    small_model(tmp_path)
    add_task(tmp_path, "triviaqa", "qa", 8)
    add_task(tmp_path, "lm_hellaswag", "language_modelling", 12)
    for task in ("triviaqa", "lm_hellaswag"):
        add_collection(tmp_path, SMALL, task, 134_515_008)
    for task in ("arc_easy", "humaneval", "triviaqa", "lm_hellaswag"):
        add_collection(tmp_path, BIG, task, 1_711_376_384)
    add_case(
        tmp_path,
        SMALL,
        "triviaqa",
        {"raw": QA_RAW, "temperature": TEMPERATURE_ERROR, "isotonic": QA_ISOTONIC},
        "isotonic",
    )
    add_case(
        tmp_path,
        BIG,
        "arc_easy",
        {"raw": ARC_TEMPERATURE, "platt": ARC_RAW, "isotonic": ARC_RAW, "temperature": ARC_RAW},
        None,
    )
    add_case(
        tmp_path,
        BIG,
        "humaneval",
        {
            "raw": CODE_ISOTONIC,
            "temperature": TEMPERATURE_ERROR,
            "isotonic": "isotonic.fit: needs at least 2 calibration items",
        },
        None,
    )
    add_case(tmp_path, BIG, "triviaqa", {"raw": QA_ISOTONIC, "platt": QA_RAW}, "platt")
    add_sweep(tmp_path, SMALL, "lm_hellaswag", 1.09)
    add_sweep(tmp_path, BIG, "lm_hellaswag", None)
    return Results(tmp_path)


def test_shown_methods_best_else_temperature_else_isotonic(two_models):
    shown = shown_methods(two_models).set_index(["model", "task"])
    expected = {
        (BIG, "arc_easy"): ("temperature", "fallback"),
        (BIG, "humaneval"): (None, "none fitted"),
        (BIG, "triviaqa"): ("platt", "best"),
        (SMALL, "arc_easy"): ("temperature", "fallback"),
        (SMALL, "humaneval"): ("isotonic", "fallback"),
        (SMALL, "triviaqa"): ("isotonic", "best"),
    }
    assert list(shown.index) == sorted(expected)
    for key, (after, choice) in expected.items():
        got = shown.loc[key, "after"]
        assert (got if isinstance(got, str) else None) == after, key
        assert shown.loc[key, "choice"] == choice, key
    assert shown.loc[(SMALL, "triviaqa"), "best"] == "isotonic"
    assert pd.isna(shown.loc[(SMALL, "arc_easy"), "best"])


def test_reliability_bins_by_hand(two_models):
    data = reliability_data(two_models)
    case = data[(data.model == SMALL) & (data.task == "arc_easy")]
    assert list(dict.fromkeys(zip(case.method, case.role, strict=True))) == [
        ("raw", "before"),
        ("temperature", "after"),
    ]
    raw = case[case.method == "raw"].reset_index(drop=True)
    # ARC_RAW: 0.31, 0.35 in bin 3 (one correct); 0.55, 0.62, 0.85, 0.95 in bins 5, 6, 8, 9.
    assert raw["count"].tolist() == [0, 0, 0, 2, 0, 1, 1, 0, 1, 1]
    assert raw.loc[3, "mean_confidence"] == pytest.approx(0.33)
    assert raw["accuracy"].iloc[[3, 5, 6, 8, 9]].tolist() == [0.5, 0.0, 1.0, 0.0, 1.0]
    filled = raw["count"] > 0
    assert raw.loc[~filled, ["mean_confidence", "accuracy", "ci_low", "ci_high"]].isna().all().all()
    assert (raw.loc[filled, "ci_low"] <= raw.loc[filled, "accuracy"]).all()
    assert (raw.loc[filled, "ci_high"] >= raw.loc[filled, "accuracy"]).all()
    # Wilson interval of 1 hit in 2 at 95 %: 0.5 -/+ z / (1 + z²/2) * sqrt(1/8 + z²/16).
    z = 1.959963984540054
    half = z / (1 + z**2 / 2) * np.sqrt(1 / 8 + z**2 / 16)
    assert raw.loc[3, ["ci_low", "ci_high"]].tolist() == pytest.approx([0.5 - half, 0.5 + half])
    none_fitted = data[(data.model == BIG) & (data.task == "humaneval")]
    assert set(none_fitted.method) == {"raw"}


def test_risk_coverage_with_ties_by_hand():
    curve = risk_coverage(*QA_RAW)
    # Sorted: 0.7 right; a tie at 0.4, one wrong and one right (1/2 expected error at k = 2);
    # 0.1 wrong.
    assert curve["k"].tolist() == [1, 2, 3, 4]
    assert curve["coverage"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve["risk"].tolist() == pytest.approx([0.0, 0.25, 1 / 3, 0.5])
    assert risk_coverage([], []).empty


def test_risk_coverage_is_the_mean_over_tie_breaking_orders():
    rng = np.random.default_rng(3)
    conf = rng.choice([0.2, 0.5, 0.8], size=7)
    correct = rng.random(7) < 0.5
    groups = [np.flatnonzero(conf == v) for v in sorted(set(conf), reverse=True)]
    curves = []
    for parts in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = np.concatenate(parts)
        curves.append(np.cumsum(~correct[order]) / np.arange(1, 8))
    got = risk_coverage(conf, correct)["risk"].to_numpy()
    np.testing.assert_allclose(got, np.mean(curves, axis=0))
    assert got.mean() == pytest.approx(aurc(conf, correct))


def test_risk_coverage_data_uses_the_test_predictions(two_models):
    data = risk_coverage_data(two_models)
    qa = data[(data.model == SMALL) & (data.task == "triviaqa")]
    raw = qa[qa.method == "raw"]
    assert raw["risk"].tolist() == pytest.approx([0.0, 0.25, 1 / 3, 0.5])
    assert raw["aurc"].iloc[0] == pytest.approx((0 + 0.25 + 1 / 3 + 0.5) / 4)
    iso = qa[qa.method == "isotonic"]
    # QA_ISOTONIC: 0.5 right, then three tied at 0.25 with two wrong: 2/3 expected error each.
    assert iso["risk"].tolist() == pytest.approx([0, (2 / 3) / 2, (4 / 3) / 3, 2 / 4])
    assert set(iso.role) == {"after"}
    comp = two_models.comparisons
    reported = comp[(comp.model == SMALL) & (comp.task == "triviaqa") & (comp.metric == "aurc")]
    for method, part in qa.groupby("method"):
        value = reported.loc[reported.method == method, "estimate"].iloc[0]
        assert part["aurc"].iloc[0] == pytest.approx(value)


def test_pavg_gap_by_hand(two_models):
    data = pavg_data(two_models).set_index("model")
    assert set(data.task) == {"humaneval"}
    # CODE_RAW: mean pavg (0.6 + 0.5 + 0.9 + 0.8) / 4 = 0.7, one of four passes.
    assert data.loc[SMALL, ["mean_pavg", "pass_rate", "gap"]].tolist() == pytest.approx(
        [0.7, 0.25, 0.45]
    )
    assert data.loc[BIG, "gap"] == pytest.approx(0.25 - 0.25)
    for name in ("mean_pavg", "pass_rate", "gap"):
        assert (data[f"{name}_low"] <= data[f"{name}_high"]).all()
    # No graded tables: no sampled pass rate.
    assert data[[f"sampled_pass_rate{e}" for e in ("", "_low", "_high")]].isna().all().all()


def test_pavg_sampled_pass_rate_is_the_mean_pass_at_1_of_the_test_items(two_models):
    # The four test items of CODE_RAW, a calibration item (left out) and a NaN one (n_samples 0).
    rates = [0.0, 1 / 3, 1.0, 2 / 3]
    graded = pd.DataFrame(
        {
            "item_id": [f"humaneval/{i}" for i in range(4)] + ["humaneval/cal"],
            "pass_at_1": [*rates, 1.0],
        }
    )
    (two_models.root / "graded" / SMALL).mkdir(parents=True)
    graded.to_parquet(two_models.root / "graded" / SMALL / "humaneval.parquet")
    (two_models.root / "graded" / BIG).mkdir(parents=True)
    no_samples = graded.assign(pass_at_1=np.nan)
    no_samples.to_parquet(two_models.root / "graded" / BIG / "humaneval.parquet")
    summary = pavg_data(two_models)
    data = summary.set_index("model")
    assert data.loc[SMALL, "sampled_pass_rate"] == pytest.approx(0.5)
    # Percentile bootstrap over the four items: 1000 resamples with seed 0 (no manifest).
    idx = np.random.default_rng(0).integers(0, 4, size=(1000, 4))
    means = np.asarray(rates)[idx].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    assert data.loc[SMALL, ["sampled_pass_rate_low", "sampled_pass_rate_high"]].tolist() == (
        pytest.approx([low, high])
    )
    assert data.loc[BIG, ["sampled_pass_rate", "sampled_pass_rate_low"]].isna().all()
    assert data.loc[SMALL, "pass_rate"] == pytest.approx(0.25)  # the greedy one is unchanged
    # The figure's bars: mean pavg, greedy pass rate and sampled pass rate, in that order.
    reliability = reliability_data(two_models)
    fig = draw_pavg(summary, reliability[reliability["method"] == "raw"])
    heights = [[bar.get_height() for bar in c] for c in fig.axes[0].containers[:3]]
    for column, drawn in zip(["mean_pavg", "pass_rate", "sampled_pass_rate"], heights, strict=True):
        np.testing.assert_array_equal(drawn, summary[column])


def test_raw_ece_sizes_and_kinds(two_models):
    data = raw_ece_data(two_models).set_index(["model", "task"])
    assert len(data) == 6
    assert data.loc[(SMALL, "arc_easy"), "kind"] == "multiple_choice"
    assert data.loc[(BIG, "triviaqa"), "kind"] == "qa"
    assert data.loc[(BIG, "humaneval"), "n_parameters"] == 1_711_376_384
    # ARC_RAW, 10 bins: (2|0.5 - 0.33| + 0.55 + |1 - 0.62| + 0.85 + |1 - 0.95|) / 6.
    ece = (2 * 0.17 + 0.55 + 0.38 + 0.85 + 0.05) / 6
    assert data.loc[(SMALL, "arc_easy"), "ece"] == pytest.approx(ece)


def test_temperature_data_joins_the_fit(two_models):
    data = temperature_data(two_models)
    assert sorted(set(zip(data.model, data.task, strict=True))) == [
        (BIG, "lm_hellaswag"),
        (SMALL, "arc_easy"),
        (SMALL, "lm_hellaswag"),
    ]
    small = data[(data.model == SMALL) & (data.task == "lm_hellaswag")]
    assert small["temperature"].tolist() == [0.5, 1.0, 1.5, 2.0]
    assert (small["fitted_temperature"] == 1.09).all()
    assert (small["argmax_accuracy"] == 0.3).all()
    assert data.loc[data.model == BIG, "fitted_temperature"].isna().all()


def test_draw_needs_one_model_and_task(two_models):
    with pytest.raises(InputError, match="one model"):
        draw_reliability(reliability_data(two_models))


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.fixture(scope="module")
def one_model(tmp_path_factory) -> tuple[Results, list[Path]]:
    root = tmp_path_factory.mktemp("results")
    small_model(root)
    results = Results(root)
    return results, write_figures(results, tmp_path_factory.mktemp("figures") / "out")


def test_write_figures_writes_pdf_and_png_per_figure(one_model):
    _, paths = one_model
    stems = [
        "reliability__smollm2-135m__arc_easy",
        "reliability__smollm2-135m__humaneval",
        "risk_coverage__smollm2-135m__arc_easy",
        "risk_coverage__smollm2-135m__humaneval",
        "temperature__smollm2-135m__arc_easy",
        "pavg_code",
        "ece_vs_size",
        "ece_by_kind",
        "signals_by_kind",
    ]
    assert sorted(p.name for p in paths) == sorted(
        f"{s}.{x}" for s in stems for x in ("pdf", "png")
    )
    assert sorted(paths[0].parent.iterdir()) == sorted(paths)
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith(b"%PDF") if path.suffix == ".pdf" else head == b"\x89PNG\r\n\x1a\n"
    out = paths[0].parent
    assert png_size(out / "reliability__smollm2-135m__arc_easy.png") == (600, 690)
    assert png_size(out / "temperature__smollm2-135m__arc_easy.png") == (1350, 450)


def test_write_figures_twice_gives_identical_bytes(one_model, tmp_path):
    results, first = one_model
    second = write_figures(results, tmp_path)
    assert [p.name for p in second] == [p.name for p in first]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_absent_figure_kinds_are_skipped_and_logged(tmp_path, caplog):
    root = tmp_path / "results"
    add_task(root, "arc_easy", "multiple_choice", 12)
    add_collection(root, "api-model", "arc_easy", None)
    add_case(root, "api-model", "arc_easy", {"raw": ARC_RAW}, None)
    with caplog.at_level(logging.WARNING, logger="calibbench.paper.figures"):
        paths = write_figures(Results(root), tmp_path / "figures")
    stems = {
        "reliability__api-model__arc_easy",
        "risk_coverage__api-model__arc_easy",
        "ece_by_kind",
        "signals_by_kind",
    }
    assert sorted(p.name for p in paths) == sorted(
        f"{s}.{x}" for s in stems for x in ("pdf", "png")
    )
    skipped = " ".join(caplog.messages)
    for name in ("temperature", "pavg_code", "ece_vs_size"):
        assert f"figure {name} not drawn" in skipped


def test_empty_results_write_nothing(tmp_path):
    (tmp_path / "results").mkdir()
    assert write_figures(Results(tmp_path / "results"), tmp_path / "figures") == []
    assert list((tmp_path / "figures").iterdir()) == []


@pytest.mark.model
def test_write_figures_on_a_real_run(tmp_path, test_run):
    results = Results(test_run / "results")
    paths = write_figures(results, tmp_path)
    names = {p.name for p in paths}
    assert {"pavg_code.png", "ece_vs_size.pdf", "ece_by_kind.png"} <= names
    for model, task in zip(results.best()["model"], results.best()["task"], strict=True):
        assert f"reliability__{model}__{task}.pdf" in names
    for model, task in zip(results.sweeps["model"], results.sweeps["task"], strict=True):
        assert f"temperature__{model}__{task}.png" in names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_model_of_unknown_size_gets_an_empty_size(tmp_path):
    from calibbench.paper.tables import headline

    small_model(tmp_path)
    for task in ("arc_easy", "humaneval"):  # as an API model's manifests: no parameter count
        add_collection(tmp_path, SMALL, task, None)
    table = headline(Results(tmp_path)).set_index("task")
    assert table["parameters_M"].isna().all()
    assert set(table.index) == {"arc_easy", "humaneval"}
