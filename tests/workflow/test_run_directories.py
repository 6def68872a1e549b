"""Run directories: every configuration plans and runs its own jobs into runs/<name>/, whatever is
committed; the README's main command does the work; bring-your-own models fail at start-up."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, fresh_copy, planned_jobs

from calibbench.models.builtin import gguf_path

pytestmark = pytest.mark.model

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CALIBBENCH = str(Path(sys.executable).with_name("calibbench"))


def _expected_collections(config: dict) -> int:
    tasks = list(config["tasks"])
    return sum(len(entry.get("tasks", tasks)) for entry in config["models"].values())


def _run(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Snakemake in `cwd` (with its own Snakefile if it has one, else the repository's), its
    stdout and stderr together in `.stdout` (dry runs print to stdout, real runs to stderr)."""
    snakefile = cwd / "Snakefile" if (cwd / "Snakefile").is_file() else ROOT / "Snakefile"
    return subprocess.run(
        [SNAKEMAKE, "--snakefile", str(snakefile), *args], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository, the committed reference paper/ included."""
    copy = fresh_copy(tmp_path_factory.mktemp("clone"))
    assert (copy / "paper" / "tables" / "headline.csv").is_file()
    return copy


def test_readme_main_command_plans_the_full_default_dag_on_a_fresh_clone(clone):
    readme = (ROOT / "README.md").read_text()
    main = next(c for c in re.findall(r"```bash\n(.+?)\n```", readme) if "snakemake" in c)
    workflow_part = main.split("&&")[-1].strip()
    assert workflow_part.startswith("snakemake ")
    proc = _run(clone, *shlex.split(workflow_part)[1:], "-n")
    assert proc.returncode == 0, proc.stdout
    assert "Nothing to be done" not in proc.stdout
    plan = planned_jobs(proc.stdout)
    default = yaml.safe_load((clone / "config" / "default.yaml").read_text())
    # 10 model x task collections, SmolLM2's P(True) follow-up on TriviaQA, and the review
    # round (two-stage verbalized, self-reflection) of the 3 models that run TriviaQA
    reviews = sum(
        1
        for entry in default["models"].values()
        for task in entry.get("tasks", list(default["tasks"]))
        if {"two_stage", "reflection"} & {k for k, v in default["tasks"][task]["spec"].items()
                                          if v is True}
    )  # fmt: skip
    assert reviews == 3
    assert plan["collect"] == _expected_collections(default) + 1 + reviews == 14
    for stage in ("prepare", "grade", "split", "recalibrate", "compare", "sweep",
                  "calibration_tuning", "manifest", "paper_tables", "paper_figures",
                  "paper_document", "reproduction", "summary"):  # fmt: skip
        assert plan.get(stage, 0) >= 1, stage
    assert "run 'default' (runs/default)" in proc.stdout


@pytest.mark.parametrize(("name", "followups"), [("test.yaml", 1), ("seed.yaml", 3)])
def test_another_configuration_plans_every_collection_of_its_models(clone, name, followups):
    # followups: TriviaQA's P(True) requests of the local models (the API models have none)
    proc = _run(clone, "--cores", "2", "-n", "--configfile", f"config/{name}")
    assert proc.returncode == 0, proc.stdout
    config = yaml.safe_load((clone / "config" / name).read_text())
    assert planned_jobs(proc.stdout)["collect"] == _expected_collections(config) + followups
    assert f"runs/{Path(name).stem}" in proc.stdout


def test_seed_configuration_names_the_articles_five_models(clone):
    config = yaml.safe_load((clone / "config" / "seed.yaml").read_text())
    assert sorted(e["article"] for e in config["models"].values()) == sorted(
        ["GPT-4o", "GPT-3.5-turbo", "Llama-2-7B", "Gemma-7B", "Phi-3-Mini"]
    )
    kinds = {e["spec"]["task"] for e in config["tasks"].values()}
    assert kinds == {"mmlu", "humaneval", "triviaqa"}


def _starter(workdir: Path, gguf: Path, name: str) -> Path:
    out = workdir / "config" / f"{name}.yaml"
    proc = subprocess.run(
        [CALIBBENCH, "init", "--gguf", str(gguf), "--tasks", "arc_easy", "--limit", "8",
         "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_own_gguf_runs_into_its_own_directory_and_leaves_other_runs_alone(
    workflow_run, test_run, tmp_path
):
    # The built-in model under a second name: a copy of its GGUF file, named in a starter
    # configuration written by `calibbench init`, run as written next to the test config's run.
    gguf = shutil.copy(gguf_path("smollm2-135m"), tmp_path / "my-model.gguf")
    config = _starter(workflow_run, Path(gguf), "mine")
    before = _snapshot(test_run)
    proc = _run(workflow_run, "--cores", "2", "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:]
    mine = workflow_run / "runs" / "mine"
    assert (mine / "paper" / "tables" / "headline.csv").is_file()
    assert "my-model" in (mine / "paper" / "tables" / "headline.csv").read_text()
    assert "runs/mine/paper/paper.html" in proc.stdout  # the summary at the end
    manifest = mine / "results" / "collect" / "my-model" / "arc_easy" / "answers" / "manifest.json"
    assert str(tmp_path / "my-model.gguf") in manifest.read_text()
    assert _snapshot(test_run) == before  # the other run's files are untouched
    again = _run(workflow_run, "--cores", "2", "--configfile", "config/test.yaml")
    assert again.returncode == 0 and "nothing to be done" in again.stdout
    again = _run(workflow_run, "--cores", "2", "--configfile", str(config))
    assert again.returncode == 0 and "nothing to be done" in again.stdout


def test_a_wrong_model_path_fails_at_start_up_naming_the_key(workflow_run, tmp_path):
    config = _starter(workflow_run, tmp_path / "missing.gguf", "wrong")
    start = time.monotonic()
    proc = _run(workflow_run, "--cores", "2", "--configfile", str(config))
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert "models.my-model.spec.path" in proc.stdout and "does not exist" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert not (workflow_run / "runs" / "wrong").exists()  # nothing ran
    assert elapsed < 60


def test_two_configuration_files_cannot_share_a_run_directory(workflow_run, tmp_path):
    other = tmp_path / "elsewhere" / "test.yaml"  # same stem as config/test.yaml
    other.parent.mkdir()
    shutil.copy(workflow_run / "config" / "test.yaml", other)
    proc = _run(workflow_run, "--cores", "2", "-n", "--configfile", str(other))
    assert proc.returncode != 0
    assert "belongs to the configuration" in proc.stdout and "name:" in proc.stdout


def test_a_failing_job_is_shown_with_its_rule_and_log(workflow_run, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)  # passes the start-up check, cannot be loaded
    config = _starter(workflow_run, broken, "broken")
    proc = _run(workflow_run, "--cores", "2", "--configfile", str(config))
    assert proc.returncode != 0
    assert "FAILED: collect model=my-model task=arc_easy requests=answers" in proc.stdout
    assert "runs/broken/logs/collect/my-model/arc_easy/answers.log" in proc.stdout
