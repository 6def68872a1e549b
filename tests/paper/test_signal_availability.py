"""The paper's table of which signals each model had: a results tree whose comparisons are the
plan's for a local model, a chat API and an API without token log-probs, against the signals
and reasons written out by hand; the table written and shown in the paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_figures import add_case, add_collection, add_task, write_json

from calibbench import plan
from calibbench.paper.document import write_document
from calibbench.paper.results import Results
from calibbench.paper.tables import signal_availability, write_tables
from calibbench.tasks import get_task

N = 20
MODELS = {
    "local": {"spec": {"runtime": "llamacpp", "builtin": "smollm2-135m"}},
    "chat": {"spec": {"runtime": "openai", "base_url": "https://api.example.com/v1",
                      "model": "x", "endpoint": "chat"}, "tasks": ["triviaqa", "humaneval"]},
    "nolp": {"spec": {"runtime": "openai", "serve": "smollm2-135m", "logprobs": False},
             "tasks": ["triviaqa", "humaneval"]},
}  # fmt: skip
TASKS = {
    "arc_easy": {"spec": {"task": "arc_easy"}},
    "triviaqa": {"spec": {"task": "triviaqa", "n_samples": 3}},
    "humaneval": {"spec": {"task": "humaneval", "n_samples": 3}},
}
KINDS = {"arc_easy": "multiple_choice", "triviaqa": "qa", "humaneval": "code"}
#: The registry's signals EXPECTED is written for (signals added later are checked only to be
#: listed once, as available or not).
KNOWN = {"confidence", "confidence_token_norm", "geometric_mean", "min_token_prob",
         "sampling_agreement", "p_true", "largest_cluster_share", "semantic_entropy",
         "semantic_entropy_weighted", "n_semantic_sets", "verbalized"}  # fmt: skip
TOKEN = "no token log-probs"
#: (model, task): (signals available, signals not available with why), by hand.
EXPECTED = {
    ("local", "arc_easy"): ("confidence, confidence_token_norm", "none"),
    ("local", "triviaqa"): (
        "confidence, geometric_mean, min_token_prob, sampling_agreement, p_true, "
        "largest_cluster_share, semantic_entropy, semantic_entropy_weighted, n_semantic_sets",
        "verbalized (option off)",
    ),
    # min_token_prob's comparison is removed from the tree below
    ("local", "humaneval"): ("confidence, geometric_mean, sampling_agreement, "
                             "largest_cluster_share, semantic_entropy, "
                             "semantic_entropy_weighted, n_semantic_sets",
                             "min_token_prob (not in the results)"),
    ("chat", "triviaqa"): (
        "confidence, geometric_mean, min_token_prob, sampling_agreement, largest_cluster_share, "
        "semantic_entropy, semantic_entropy_weighted, n_semantic_sets",
        "p_true (no prompt scoring); verbalized (option off)",
    ),
    ("chat", "humaneval"): ("confidence, geometric_mean, min_token_prob, sampling_agreement, "
                            "largest_cluster_share, semantic_entropy, "
                            "semantic_entropy_weighted, n_semantic_sets", "none"),
    ("nolp", "triviaqa"): (
        "sampling_agreement, largest_cluster_share, semantic_entropy, n_semantic_sets",
        f"confidence ({TOKEN}); geometric_mean ({TOKEN}); min_token_prob ({TOKEN}); p_true (no "
        f"prompt scoring); semantic_entropy_weighted ({TOKEN}); verbalized (option off)",
    ),
    ("nolp", "humaneval"): ("sampling_agreement, largest_cluster_share, semantic_entropy, "
                            "n_semantic_sets",
                            f"confidence ({TOKEN}); geometric_mean ({TOKEN}); min_token_prob "
                            f"({TOKEN}); semantic_entropy_weighted ({TOKEN})"),
}  # fmt: skip


def build(root: Path) -> Results:
    """Each model's planned signals (`calibbench.plan.pair_signals`) compared (raw only), less
    local x humaneval x min_token_prob; a manifest holding the configuration."""
    correct = np.tile([True, False], N // 2)
    conf = np.linspace(0.1, 0.9, N)
    for task, kind in KINDS.items():
        add_task(root, task, kind, 2 * N)
    for model, entry in MODELS.items():
        for task in entry.get("tasks", list(TASKS)):
            add_collection(root, model, task, None)
            for signal in plan.pair_signals(model, entry["spec"], get_task(TASKS[task]["spec"])):
                if (model, task, signal) != ("local", "humaneval", "min_token_prob"):
                    add_case(root, model, task, {"raw": (conf, correct)}, None, signal)
    write_json(root / "manifest.json", {
        "code": {"commit": "0" * 12, "dirty": False}, "config_sha256": "f" * 64, "seed": 0,
        "python": "3.11", "packages": {}, "config": {"models": MODELS, "tasks": TASKS},
    })  # fmt: skip
    return Results(root)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Results:
    return build(tmp_path_factory.mktemp("results"))


def _split(available: str, missing: str) -> tuple[list[str], list[str]]:
    """The two cells as lists of entries, each signal listed once; those outside KNOWN left out."""
    have = available.split(", ")
    lack = [] if missing == "none" else missing.split("; ")
    names = have + [entry.split(" (")[0] for entry in lack]
    assert len(names) == len(set(names)), names
    return [h for h in have if h in KNOWN], [e for e in lack if e.split(" (")[0] in KNOWN]


def test_each_pair_lists_its_signals_and_why_it_lacks_the_others(tree: Results):
    table = signal_availability(tree)
    assert list(table.columns) == ["kind", "task", "model", "available", "not_available"]
    got = {(r.model, r.task): _split(r.available, r.not_available) for r in table.itertuples()}
    assert got == {pair: _split(*cells) for pair, cells in EXPECTED.items()}
    for r in table.itertuples():
        assert r.kind == KINDS[r.task]


def test_rows_in_kind_task_model_order(tree: Results):
    table = signal_availability(tree)
    assert list(zip(table["kind"], table["task"], table["model"], strict=True)) == [
        ("multiple_choice", "arc_easy", "local"),
        ("qa", "triviaqa", "chat"), ("qa", "triviaqa", "local"), ("qa", "triviaqa", "nolp"),
        ("code", "humaneval", "chat"), ("code", "humaneval", "local"),
        ("code", "humaneval", "nolp"),
    ]  # fmt: skip


def test_empty_without_registered_signals(tmp_path: Path):
    add_task(tmp_path, "arc_easy", "multiple_choice", 2 * N)
    correct = np.tile([True, False], N // 2)
    add_case(tmp_path, "m", "arc_easy", {"raw": (np.full(N, 0.5), correct)}, None, "lm_eval_acc")
    assert signal_availability(Results(tmp_path)).empty


def test_written_and_shown_beside_the_signals_table(tree: Results, tmp_path: Path):
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    paths = write_tables(tree, tables)
    assert {tables / f"signal_availability.{x}" for x in ("csv", "md", "tex")} <= set(paths)
    figures.mkdir()
    out = tmp_path / "paper.md"
    write_document(Results(tree.root), tables, figures, out)
    text = out.read_text()
    section = text[text.index("## Confidence signals by task kind") :]
    assert section.index("Which signals each model had") > section.index("| PRR ")
    shown = section[section.index("Which signals each model had") :].splitlines()
    row = next(line for line in shown if "| nolp " in line and "humaneval" in line)
    assert "| sampling_agreement, " in row and f"confidence ({TOKEN})" in row
