"""The repository's promises to a new user: README commands, CI entry, conda/pip agreement."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_exactly_the_readme_test_command():
    tests = [c for c in readme_commands() if "pytest" in c]
    assert len(tests) == 1
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests[0] in ci


def test_readme_main_command_installs_and_runs_snakemake():
    # One command installs and runs the workflow; others (e.g. `snakemake --cores 2 reproduce`)
    # only run targets after it.
    main = [c for c in readme_commands() if "pip install" in c and "snakemake" in c]
    assert len(main) == 1 and main[0].endswith("snakemake --cores 2")


def test_environment_yml_mirrors_core_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {re.split(r"[<>=]", d)[0]: d for d in env["dependencies"] if isinstance(d, str)}
    for dep in project["dependencies"]:
        name = re.split(r"[<>=\[]", dep)[0]
        assert conda.get(name) == dep, f"environment.yml should list {dep!r}"
