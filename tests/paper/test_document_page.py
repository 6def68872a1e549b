"""The paper page: the claims table up front with verdicts by their rules, human headers, figures
beside their claims, the baseline section, and the page in a real browser (headless Chromium):
it fits its window, wide tables scroll inside their box, and the figures render."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_figures import SMALL, add_collection, add_sweep, add_task, small_model, write_json

from calibbench.monitor.compare import RunComparison
from calibbench.paper.document import NOT_SUPPORTED, SUPPORTED, UNTESTABLE, claims, write_document
from calibbench.paper.figures import write_figures
from calibbench.paper.results import Results
from calibbench.paper.tables import write_tables

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitor"))
from headless_chromium import layout, pixels, screenshot

MANIFEST = {
    "code": {"commit": "0123456789abcdef", "dirty": False},
    "config_sha256": "f" * 64,
    "seed": 0,
    "python": "3.11.2",
    "packages": {"numpy": "2.4.6"},
    "config": {},
}


def _results(root: Path) -> Results:
    """One built-in model on arc_easy (with a sweep) and humaneval, plus an API model whose
    runtime reports no vocabulary."""
    small_model(root)
    add_task(root, "lm_hellaswag", "language_modelling", 12)
    add_collection(root, SMALL, "lm_hellaswag", 134_515_008)
    add_sweep(root, SMALL, "lm_hellaswag", 1.09)
    add_collection(root, "api-model", "humaneval", None)
    path = root / "collect" / "api-model" / "humaneval" / "answers" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["model"] |= {"vocab_size": None, "runtime": "openai", "logprob_source": "top-k"}
    write_json(path, manifest)
    write_json(root / "manifest.json", MANIFEST)
    return Results(root)


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    results = _results(root / "results")
    paper = root / "paper"
    write_tables(results, paper / "tables")
    write_figures(results, paper / "figures")
    write_document(
        results, paper / "tables", paper / "figures", paper / "paper.md", paper / "paper.html"
    )
    return paper


def _section(html: str, heading: str) -> str:
    start = html.index(f"<h3>{heading}</h3>")
    end = html.find("<h", start + 5)
    return html[start:end]


def test_claims_table_comes_first_with_each_verdict_by_its_rule(paper: Path):
    html = (paper / "paper.html").read_text()
    assert html.index("Claims at a glance") < html.index("Headline") < html.index("<h3>")
    found = {c.title: c for c in claims(Results(paper.parent / "results"))}
    assert found['"Try temperatures between 0.7 and 1.3"'].verdict == SUPPORTED  # 1.27, 1.09
    assert found["Full-ECE sees what top-1 ECE misses"].verdict == SUPPORTED  # 0.08 > 0.03
    assert found["Calibration-tuning is the strongest fix"].verdict == UNTESTABLE
    assert "<table>" in html and "over-estimates success on code generation" in html
    for claim in found.values():
        row = f"<td>{claim.title.replace(chr(34), '&quot;')}</td>"
        assert row in html and claim.verdict in (SUPPORTED, NOT_SUPPORTED, UNTESTABLE)


def test_a_fitted_temperature_outside_the_range_is_not_supported(tmp_path: Path):
    results = _results(tmp_path)
    add_sweep(tmp_path, SMALL, "arc_easy", 1.5)
    found = {c.title: c for c in claims(Results(results.root))}
    claim = found['"Try temperatures between 0.7 and 1.3"']
    assert claim.verdict == NOT_SUPPORTED and claim.why.startswith("1 of 2 fitted")


def test_headers_are_for_readers_and_csv_tables_stay_as_they_were(paper: Path):
    html = (paper / "paper.html").read_text()
    cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", html)
    for raw in ("parameters_M", "n_parameters", "vocab_size", "nll_T1", "argmax_accuracy_range"):
        assert raw not in cells, raw
    assert "nan" not in cells and "Parameters (M)" in cells and "NLL, T = 1 (nats)" in cells
    assert "Argmax accuracy range over T" in cells
    before = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (paper / "tables").glob("*.csv")
    }
    results = Results(paper.parent / "results")
    write_tables(results, paper / "tables")  # what the workflow's table rule writes
    write_document(
        results, paper / "tables", paper / "figures", paper / "paper.md", paper / "paper.html"
    )
    after = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (paper / "tables").glob("*.csv")
    }
    assert after == before
    headline = pd.read_csv(paper / "tables" / "headline.csv")
    assert "parameters_M" in headline.columns  # the CSV keeps its names


def test_figures_sit_beside_the_claims_they_support(paper: Path):
    html = (paper / "paper.html").read_text()
    assert "figures/pavg_code.png" in _section(
        html, "pavg over-estimates success on code generation"
    )
    assert "figures/reliability__" in _section(html, "Models claim more than they deliver")
    temperature = _section(
        html, "Temperature changes calibration and sampled accuracy, never the argmax"
    )
    assert "figures/temperature__" in temperature
    md = (paper / "paper.md").read_text()
    assert md.index("### pavg over-estimates") < md.index("(figures/pavg_code.png)")


def test_the_baseline_section_shows_a_comparisons_changes(paper: Path, tmp_path: Path):
    rows = pd.DataFrame(
        [
            {
                "model": SMALL,
                "task": "arc_easy",
                "signal": "confidence",
                "metric": "ece",
                "pairing": "paired",
                "n_baseline": 12,
                "n_new": 12,
                "baseline": 0.2,
                "new": 0.31,
                "change": 0.11,
                "low": 0.04,
                "high": 0.19,
                "significant": True,
                "threshold": 0.05,
                "alert": True,
                "reason": None,
            }
        ]
    )
    comparison = RunComparison(
        "runs/old",
        "runs/new",
        {"level": 0.95, "n_resamples": 1000, "n_bins": 10, "seed": 0, "thresholds": {"ece": 0.05}},
        rows,
        ('tasks.arc_easy.spec.format: "cloze" -> "letter"',),
        {},
    )
    results = Results(paper.parent / "results")
    out = tmp_path / "paper.md"
    write_document(
        results,
        paper / "tables",
        paper / "figures",
        out,
        tmp_path / "paper.html",
        baseline_comparison=comparison,
    )
    text = out.read_text()
    assert "## Change since the baseline" in text and "+0.110 [+0.040, +0.190] ALERT" in text
    assert "tasks.arc_easy.spec.format" in text and "Alerts: 1" in text
    assert "Change since the baseline" not in (paper / "paper.md").read_text()


def test_the_page_in_a_browser_fits_scrolls_wide_tables_and_shows_its_figures(paper: Path):
    page = paper / "paper.html"
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    for width in (1280, 800):
        assert layout(page, fits, width=width) == "true", width
    scrolls = (
        "[...document.querySelectorAll('.table-box')].some(b => b.scrollWidth > b.clientWidth)"
    )
    assert layout(page, scrolls, width=800) == "true"  # the temperature table, inside its box
    loaded = "[...document.images].every(i => i.complete && i.naturalWidth > 0)"
    assert layout(page, f"document.images.length > 3 && {loaded}") == "true"
    image = screenshot(page, paper / "page.png", height=4000)
    assert pixels(image, "#1f77b4") > 500  # the figures' series (matplotlib's first colour)
    assert pixels(image, "#f4f6f8") > 20_000  # the tables' header rows


def test_a_table_without_columns_is_said_to_be_empty(paper: Path, tmp_path: Path):
    tables = tmp_path / "tables"
    shutil.copytree(paper / "tables", tables)
    (tables / "methods_summary.csv").write_text("\n")  # what a run with only `raw` writes
    out = tmp_path / "paper.md"
    write_document(Results(paper.parent / "results"), tables, paper / "figures", out)
    assert "*(the methods_summary table is empty)*" in out.read_text()
