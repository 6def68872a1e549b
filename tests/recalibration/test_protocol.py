"""The protocol: fit on calibration items only, score on test items, pick the best honestly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit, softmax

from calibbench.errors import InputError
from calibbench.recalibration import all_methods, compare_methods
from calibbench.recalibration.protocol import best_method
from calibbench.splits import assign_splits

METHODS = tuple(all_methods())


def graded_mc(n: int, seed: int, sharpness: float) -> pd.DataFrame:
    """Multiple-choice items whose option log-likelihoods are `sharpness` times too sharp."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        z = rng.standard_normal(4) * 1.5
        gold = int(rng.choice(4, p=softmax(z)))
        ll = sharpness * z
        p = softmax(ll)
        pred = int(np.argmax(ll))
        rows.append({"item_id": f"q{i}", "gold": gold, "option_logprobs": ll.tolist(),
                     "correct": pred == gold, "confidence": float(p[pred])})  # fmt: skip
    return pd.DataFrame(rows)


def test_every_method_runs_and_a_real_improvement_is_found():
    graded = graded_mc(2000, seed=0, sharpness=3.0)
    split = assign_splits(graded.item_id, fraction=0.5, seed=1)
    out = compare_methods(graded, split, n_resamples=200)
    assert set(out["methods"]) == set(METHODS)
    assert out["n_calibration"] == out["n_test"] == 1000
    raw = out["methods"]["raw"]["summary"]["metrics"]["ece"]["estimate"]
    for name in METHODS[1:]:
        assert out["methods"][name]["summary"]["metrics"]["ece"]["estimate"] < raw
    assert out["best"]["method"] in METHODS[1:]
    # The temperature fitted on the calibration items alone is near the true 3.
    assert out["methods"]["temperature"]["fitted"]["state"]["temperature"] == pytest.approx(
        3, rel=0.15
    )


def test_calibrated_data_gives_none_significantly_better():
    graded = graded_mc(600, seed=2, sharpness=1.0)
    split = assign_splits(graded.item_id, fraction=0.5, seed=0)
    out = compare_methods(graded, split, n_resamples=200)
    assert out["best"] == {"method": None, "reason": "none significantly better"}


def test_methods_never_see_test_items():
    graded = graded_mc(400, seed=3, sharpness=2.0)
    split = assign_splits(graded.item_id, fraction=0.5, seed=0)
    # Poison the test side: if any method fitted on it, its map would change.
    poisoned = graded.copy()
    test = poisoned.item_id.isin(split.item_id[split.split == "test"])
    poisoned.loc[test, "correct"] = ~poisoned.loc[test, "correct"]
    a = compare_methods(graded, split, n_resamples=50)
    b = compare_methods(poisoned, split, n_resamples=50)
    for name in METHODS[1:]:
        assert a["methods"][name]["fitted"] == b["methods"][name]["fitted"]


def test_scalar_signal_without_option_logits_and_unfittable_methods_are_reported():
    rng = np.random.default_rng(4)
    c = rng.uniform(0.3, 1.0, 300)
    graded = pd.DataFrame({"item_id": [f"g{i}" for i in range(300)], "pavg": c,
                           "correct": rng.random(300) < expit(logit(c) / 2)})  # fmt: skip
    graded.loc[5, "pavg"] = np.nan  # an empty answer
    split = assign_splits(graded.item_id, seed=0)
    out = compare_methods(graded, split, confidence="pavg", n_resamples=50)
    assert "options' log-likelihoods" in out["methods"]["temperature"]["error"]
    assert out["n_missing_confidence"] == 1 and out["n_calibration"] + out["n_test"] == 299
    tiny = split.assign(split=["calibration"] * 4 + ["test"] * 296)
    out = compare_methods(graded, tiny, confidence="pavg", n_resamples=50)
    assert "needs at least" in out["methods"]["histogram"]["error"]


def test_bad_inputs():
    graded = graded_mc(20, seed=5, sharpness=1.0)
    split = assign_splits(graded.item_id, seed=0)
    with pytest.raises(InputError, match="unknown recalibration method 'magic'"):
        compare_methods(graded, split, methods=["raw", "magic"])
    with pytest.raises(InputError, match="no column 'ptrue'"):
        compare_methods(graded, split, confidence="ptrue")
    with pytest.raises(InputError, match="not in the split"):
        compare_methods(graded, split.iloc[1:])


def _entry(estimate: float, low: float, high: float) -> dict:
    return {"summary": {"metrics": {"ece": {"estimate": estimate, "low": low, "high": high}}}}


def test_best_method_names_ties_and_takes_the_simplest():
    results = {
        "raw": _entry(0.6, 0.55, 0.65),
        "beta": _entry(0.2, 0.2, 0.2),
        "platt": _entry(0.2, 0.2, 0.2),  # the same constant fallback as beta
        "isotonic": _entry(0.2 + 1e-9, 0.2, 0.21),
        "histogram": _entry(0.5, 0.4, 0.6),  # overlaps raw: not significantly better
    }
    best = best_method(results)
    assert best["method"] == "platt"
    assert best["reason"].endswith("tied with beta")
    assert best_method({"raw": results["raw"], "histogram": results["histogram"]})["method"] is None


def _graded_signal(confidence: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{k}" for k in range(len(confidence))],
                         "confidence": confidence, "correct": correct})  # fmt: skip


HARD_SIGNALS = {
    # sampling agreement of 2 samples on a small set: three values, one end fully separated
    "three_valued": (np.tile([0.0, 0.5, 1.0, 0.5, 1.0, 1.0], 6),
                     np.tile([False, True, True, False, True, True], 6)),
    "separable": (np.linspace(0.05, 0.95, 36), np.arange(36) >= 18),
    "constant": (np.full(36, 0.7), np.arange(36) % 3 == 0),
    "one_sided": (np.linspace(0.1, 0.9, 36), np.ones(36, dtype=bool)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HARD_SIGNALS))
def test_every_method_fits_or_says_why_not_on_hard_signals(case):
    confidence, correct = HARD_SIGNALS[case]
    graded = _graded_signal(confidence, correct)
    split = assign_splits(graded.item_id, seed=0)
    out = compare_methods(graded, split, n_resamples=50)
    assert set(out["methods"]) == set(METHODS)
    for name, entry in out["methods"].items():
        assert ("summary" in entry) != ("error" in entry), name
        if "summary" in entry:
            for metric in ("ece", "brier"):
                assert 0 <= entry["summary"]["metrics"][metric]["estimate"] <= 1, (name, metric)
    assert "options' log-likelihoods" in out["methods"]["temperature"]["error"]


def test_the_reported_three_valued_failure_now_fits():
    # A calibration set on which the logistic fits once ran out of Newton steps.
    c = np.array([1.0, 0.0, 1 / 3, 1.0, 1.0, 1 / 3, 1.0, 1.0, 1 / 3, 2 / 3, 2 / 3, 1 / 3, 0.0,
                  0.0, 1 / 3, 1 / 3, 2 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3])  # fmt: skip
    y = np.zeros(len(c), dtype=bool)
    y[[4, 6]] = True
    for name in ("platt", "beta"):
        fitted = all_methods()[name]().fit(c, y)
        p = fitted.predict(c)
        assert np.all((p >= 0) & (p <= 1))
        assert p[c == 0.0].max() < 0.05  # every c = 0 answer is wrong


def test_methods_come_from_their_registry_in_table_order():
    assert METHODS == ("raw", "temperature", "platt", "isotonic", "histogram", "beta")
    for cls in all_methods().values():
        assert cls.__module__ == f"calibbench.recalibration.methods.{cls.__module__.split('.')[-1]}"


def test_a_score_signal_is_ranked_raw_and_mapped_only_by_fitted_methods():
    """Semantic entropy (nats, higher = less confident): raw reports its ranking metrics (those of
    -entropy, by brute force), no calibration error of a hand-set map; the fitted methods map
    its feature exp(-entropy) to probabilities, with an ECE."""
    from calibbench.metrics.rejection import prr

    rng = np.random.default_rng(5)
    n = 600
    entropy = rng.exponential(0.8, n)
    correct = rng.random(n) < expit(2.0 - 2.5 * entropy)
    graded = pd.DataFrame({"item_id": [f"q{i}" for i in range(n)], "correct": correct,
                           "semantic_entropy": entropy})  # fmt: skip
    graded.loc[3, "semantic_entropy"] = np.nan  # an item without samples
    split = assign_splits(graded.item_id, fraction=0.5, seed=0)
    out = compare_methods(graded, split, confidence="semantic_entropy", n_resamples=100,
                          methods=["raw", "platt", "isotonic"])  # fmt: skip
    test = graded.merge(split, on="item_id")
    test = test[(test["split"] == "test") & test["semantic_entropy"].notna()]
    raw = out["methods"]["raw"]
    assert raw["feature"] == "exp(-entropy)"
    metrics = raw["summary"]["metrics"]
    h, y = test["semantic_entropy"].to_numpy(), test["correct"].to_numpy(bool)
    pairs = h[y][:, None] - h[~y][None, :]  # a right answer's entropy minus a wrong one's
    assert metrics["auroc"]["estimate"] == pytest.approx(np.mean((pairs < 0) + 0.5 * (pairs == 0)))
    assert metrics["prr"]["estimate"] == pytest.approx(
        prr(-test["semantic_entropy"], test["correct"])
    )
    for name in ("ece", "brier", "nll", "accuracy"):
        assert metrics[name]["estimate"] is None and "not a probability" in metrics[name]["reason"]
    assert raw["summary"]["reliability"] == []
    for name in ("platt", "isotonic"):
        ece = out["methods"][name]["summary"]["metrics"]["ece"]
        assert ece["estimate"] is not None and 0 <= ece["low"] <= ece["estimate"] <= ece["high"]
    assert out["n_missing_confidence"] == 1
    assert out["best"] == {"method": None, "reason": "no raw confidence to compare with"}


def test_a_signal_with_its_own_answer_is_scored_against_that_answer():
    """The verbalized confidence states how likely the model's own guess is right: by default
    the protocol pairs it with verbalized_correct, not with the greedy answer's correct."""
    rng = np.random.default_rng(6)
    n = 400
    stated = rng.uniform(0.05, 0.95, n)
    own = rng.random(n) < stated
    graded = pd.DataFrame({"item_id": [f"q{i}" for i in range(n)], "verbalized": stated,
                           "verbalized_correct": own, "correct": ~own})  # fmt: skip
    split = assign_splits(graded.item_id, fraction=0.5, seed=0)
    out = compare_methods(graded, split, confidence="verbalized", n_resamples=50,
                          methods=["raw"])  # fmt: skip
    test = graded.merge(split, on="item_id")
    test = test[test["split"] == "test"]
    accuracy = out["methods"]["raw"]["summary"]["metrics"]["accuracy"]["estimate"]
    assert accuracy == pytest.approx(test["verbalized_correct"].mean())
    explicit = compare_methods(graded, split, confidence="verbalized", correct="correct",
                               n_resamples=50, methods=["raw"])  # fmt: skip
    assert explicit["methods"]["raw"]["summary"]["metrics"]["accuracy"][
        "estimate"
    ] == pytest.approx(test["correct"].mean())
