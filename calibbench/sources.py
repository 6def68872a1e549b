"""The source files a module runs: the module itself and, transitively, the calibbench modules it
imports.

The workflow makes them inputs of the jobs that run the module: a recalibration method's jobs
depend on its module, on the protocol and on everything those import, so an edit to any of these
files reruns exactly the jobs it can change. Imports are read from the source text (`ast`), at
module level and inside functions. `from calibbench.a.b import x` counts module `a.b` (and `x`
if it is a module), not the package `a`'s `__init__.py`, which Python runs too but which only
gathers names (the recalibration package's imports every method; no method's numbers depend on
the others). Modules outside calibbench (numpy, scikit-learn, ...) are versioned by the run's
manifest instead.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "calibbench"
ROOT = Path(__file__).resolve().parent


def module_path(module: str) -> Path | None:
    """The file of calibbench module `module` (a package's `__init__.py`), or None if it is not
    one (another package's module, or an attribute such as a class)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path, module: str) -> set[str]:
    """Names of calibbench modules that `path` (module `module`) imports."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if module_path(n) is not None}


@functools.cache
def module_sources(module: str) -> tuple[Path, ...]:
    """`module`'s file and those of the calibbench modules it imports, transitively, sorted."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_path(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        todo.extend(_imported(path, name))
    return tuple(sorted(set(seen.values())))


def method_sources(name: str) -> tuple[Path, ...]:
    """The source files recalibration method `name`'s results depend on: its module, the
    protocol, and what they import; the workflow reruns the method's jobs when one changes."""
    from calibbench.recalibration.base import get_method

    modules = (get_method(name).__module__, "calibbench.recalibration.protocol")
    return tuple(sorted({path for m in modules for path in module_sources(m)}))
