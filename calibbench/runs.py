"""Run directories: each configuration runs into a directory of its own, `runs/<name>/`.

The name is the configuration's `name:` key, else its file's stem (`config/default.yaml` runs
into `runs/default/`). A run directory holds

    results/        every intermediate result (see `calibbench.paper.results`) and manifest.json
    logs/           one log per job
    paper/          tables/, figures/, paper.md, paper.html of this run
    reproduction.md the comparison of paper/tables with the configuration's `reference` tables
    summary.md      the one-screen summary the workflow prints at the end
    source.json     which configuration file made the run

Two configuration files never share a run directory: a second file under a name already taken
is refused with the fix (a `name:` of its own). The committed reference paper (`paper/` of the
repository) is the default configuration's output; no run ever writes there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from calibbench.errors import InputError

RUNS = "runs"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Columns of the headline table shown in the summary, in order.
SUMMARY_COLUMNS = ("model", "task", "accuracy", "brier", "ece", "best_method")


def run_name(config: dict[str, Any], configfiles: Sequence[str | Path]) -> str:
    """The run's name: `config["name"]`, else the stem of the (last) configuration file."""
    name = config.get("name")
    if name is None:
        if not configfiles:
            raise InputError("name: the configuration has no name and no file; add `name: ...`")
        name = Path(configfiles[-1]).stem
    if not NAME_PATTERN.match(str(name)):
        raise InputError(
            f"name: {name!r} cannot name a run directory; use letters, digits, '.', '_' and '-'"
        )
    return str(name)


def results_of(path: str | Path) -> Path:
    """The results tree of `path`: a run directory (`runs/<name>`) or a history entry holds it
    as `results/`; anything else is taken to be a results folder itself."""
    path = Path(path)
    return path / "results" if (path / "results" / "graded").is_dir() else path


def check_owner(run_dir: Path, configfile: str | Path | None) -> None:
    """Raise InputError when another configuration file already made the run in `run_dir`
    (two configurations must never write into the same directory)."""
    source = run_dir / "source.json"
    if not source.is_file() or configfile is None:
        return
    mine = str(Path(configfile).resolve())
    theirs = json.loads(source.read_text()).get("configfile")
    if theirs and theirs != mine and Path(theirs).exists():
        raise InputError(
            f"name: {run_dir} belongs to the configuration {theirs}; give {mine} a name of its "
            "own (a `name:` key) so that the two runs never share files"
        )


def record_owner(run_dir: Path, configfile: str | Path | None) -> None:
    """Write `source.json`: the configuration file that makes the run in `run_dir`."""
    mine = str(Path(configfile).resolve()) if configfile else None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "source.json").write_text(json.dumps({"configfile": mine}, indent=2) + "\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{value:.3f}"
    return str(value)


def summary_text(
    run_dir: Path,
    headline: pd.DataFrame,
    reproduction: dict[str, Any] | None,
) -> str:
    """The one-screen summary of a finished run (Markdown that reads as plain text).

    headline: the paper's headline table (`calibbench.paper.tables.headline`); reproduction: the
    reference check's outcome (`agree`, `n_tables`, `n_differences`, `reference`, `report`) or
    None when the configuration names no reference. The seed article's reported values are shown
    where the headline table carries them (`calibbench.paper.article`)."""
    paper = run_dir / "paper"
    lines = [
        f"# calibbench run '{run_dir.name}'",
        "",
        f"Paper:   {paper / 'paper.html'}  (Markdown: {paper / 'paper.md'})",
        f"Tables:  {paper / 'tables'}/   Figures: {paper / 'figures'}/",
        f"Results: {run_dir / 'results'}/   Logs: {run_dir / 'logs'}/",
        "",
        "Headline (test split, primary confidence, 95 % bootstrap intervals in the paper):",
        "",
    ]
    if headline.empty:
        lines.append("  (no model x task pair produced a comparison)")
    else:
        cols = [c for c in SUMMARY_COLUMNS if c in headline.columns]
        lines.append(headline[cols].map(_fmt).to_markdown(index=False, disable_numparse=True))
        reported = [c for c in headline.columns if c.startswith("article_")]
        if reported:
            lines += ["", "The seed article reported, for the model each one stands for:", ""]
            table = headline[["model", "task", *reported]]
            lines.append(table.to_markdown(index=False, disable_numparse=True))
    lines.append("")
    if reproduction is None:
        lines.append("Reproduction: this configuration names no reference tables to compare with.")
    elif reproduction["agree"]:
        lines.append(
            f"Reproduction: all {reproduction['n_tables']} tables agree with the reference "
            f"{reproduction['reference']} within the tolerance."
        )
    else:
        lines.append(
            f"Reproduction: {reproduction['n_differences']} difference(s) from the reference "
            f"{reproduction['reference']}; see {reproduction['report']}."
        )
    return "\n".join(lines) + "\n"
