"""Functional equivalence of sampled programs: two completions of a function are the same answer
when the function returns equal values, or raises the same exception type, on every input.

This is the code arm's equivalence for `calibbench.confidence.semantic.cluster_answers` (issue
14: programs clustered by their outputs on the task's test inputs, or on inputs drawn from the
prompt's examples). The pieces:

- `inputs_from_tests(test)` and `inputs_from_examples(prompt, entry_point)`: argument tuples of
  the calls to the function in a HumanEval-style `check(candidate)` test or in the prompt's
  `>>>` examples, where every argument is a Python literal (others are skipped);
- `run_on_inputs(program, entry_point, inputs)`: one outcome token per input, from one run of
  the program in the code sandbox (`calibbench.tasks.sandbox.run_program`);
- `clustering_inputs(test, prompt, entry_point)`: the inputs to compare programs on, the
  test's when any are usable, else the prompt's examples', with which source they came from;
- `functional_equivalence(prompt, entry_point, completions, inputs)`: runs each distinct
  completion once (program = prompt + completion, as HumanEval grades it) and returns
  `same(a, b)`, true when the two completions' outcome tuples are equal. An empty completion
  ("") is an answer, not a program: it is not run, and its outcome is `EMPTY` on every input,
  so empty completions form a cluster of their own.

Outcome tokens: "value:<16 hex digits>" (the start of the SHA-256 of a canonical repr of the
returned value: sets and dict items sorted, types kept, so 1 and 1.0 and True differ),
"error:<exception type name>" (raised by the function, or by the program before the function
existed: a syntax error gives "error:SyntaxError" for every input), "error:NoFunction" (the
program defines no `entry_point`), "timeout" (the run's wall-clock or CPU limit stopped it before
this input's outcome: the inputs are run in order, so every input from a hanging one on), and
"stopped:<status>" (the process ended before this input without a timeout, e.g. `os._exit` or a
sandbox refusal), "error:Output" (its outcome was pushed out of the sandbox's kept stdout by a
program writing to `sys.__stdout__`; the program's own prints are discarded). A program never
makes these functions raise, and no outcome is NaN.

Running code is not grading it: the outcomes are the program's own account (see `run_program`),
which a program written to forge them could forge; that moves only its own cluster.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from calibbench.errors import InputError
from calibbench.tasks.sandbox import TAIL_CHARS, Limits, run_program

#: Default limits of one program's run: its whole set of inputs shares them.
PROGRAM_LIMITS = Limits(cpu_seconds=5)

#: Most inputs one program runs on: each outcome line must fit the sandbox's kept stdout.
MAX_INPUTS = 64

#: The outcome, on every input, of an empty completion (never run; see the module docstring).
EMPTY = "empty"

_DRIVER = """
import hashlib as _cb_hashlib, json as _cb_json, sys as _cb_sys


class _CbNull:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _cb_canon(value):
    if isinstance(value, (set, frozenset)):
        return type(value).__name__ + "{" + ",".join(sorted(map(_cb_canon, value))) + "}"
    if isinstance(value, dict):
        items = sorted(_cb_canon(k) + ":" + _cb_canon(v) for k, v in value.items())
        return "dict{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "[" + ",".join(map(_cb_canon, value)) + "]"
    return type(value).__name__ + ":" + repr(value)


def _cb_say(i, token):
    _cb_sys.__stdout__.write(_cb_json.dumps([NONCE, i, token]) + "\\n")
    _cb_sys.__stdout__.flush()


_cb_sys.stdout = _cb_sys.stderr = _CbNull()
_cb_ns = {"__name__": "__candidate__"}
try:
    exec(compile(SOURCE, "<program>", "exec"), _cb_ns)
    _cb_load = None
except BaseException as _cb_exc:
    _cb_load = "error:" + type(_cb_exc).__name__
_cb_f = _cb_ns.get(ENTRY)
for _cb_i, _cb_args in enumerate(INPUTS):
    if _cb_load is not None or not callable(_cb_f):
        _cb_say(_cb_i, _cb_load or "error:NoFunction")
        continue
    try:
        _cb_value = _cb_f(*_cb_args)
        _cb_token = "value:" + _cb_hashlib.sha256(_cb_canon(_cb_value).encode()).hexdigest()[:16]
    except BaseException as _cb_exc:
        _cb_token = "error:" + type(_cb_exc).__name__
    _cb_say(_cb_i, _cb_token)
"""


def _literal_args(call: ast.Call) -> tuple[Any, ...] | None:
    """The call's positional arguments as Python values, or None when one is not a literal or
    the call has keywords or starred arguments."""
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    try:
        return tuple(ast.literal_eval(a) for a in call.args)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _calls(tree: ast.AST, name: str) -> list[tuple[Any, ...]]:
    """Distinct literal argument tuples of calls to `name` in `tree`, in source order."""
    found: list[tuple[Any, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
            args = _literal_args(node)
            if args is not None and args not in found:
                found.append(args)
    return found


def inputs_from_tests(test: str, name: str = "candidate") -> list[tuple[Any, ...]]:
    """Argument tuples of the calls to `name` (HumanEval's tests call `candidate(...)`) in the
    test source whose arguments are all literals, distinct, in the order `ast.walk` meets them.
    InputError when `test` is not valid Python."""
    try:
        tree = ast.parse(test)
    except SyntaxError as exc:
        raise InputError(f"test: not valid Python ({exc.msg}, line {exc.lineno})") from None
    return _calls(tree, name)


def inputs_from_examples(prompt: str, entry_point: str) -> list[tuple[Any, ...]]:
    """Argument tuples of the calls to `entry_point` in the prompt's `>>>` example lines whose
    arguments are all literals (lines that do not parse are skipped)."""
    found: list[tuple[Any, ...]] = []
    for line in re.findall(r"^\s*>>>\s?(.*)$", prompt, re.MULTILINE):
        try:
            tree = ast.parse(line.strip())
        except SyntaxError:
            continue
        found += [args for args in _calls(tree, entry_point) if args not in found]
    return found


def clustering_inputs(
    test: str, prompt: str, entry_point: str
) -> tuple[list[tuple[Any, ...]], str]:
    """The inputs to compare completions of `entry_point` on, and their source: the test's
    (`inputs_from_tests`) when at least one is usable, "tests"; else the prompt's examples'
    (`inputs_from_examples`), "examples"; else ([], "none"). Usable: every argument's repr is
    a Python literal again (not, e.g., `inf` from `1e999`); at most the first MAX_INPUTS are
    kept. InputError when `test` is not valid Python."""
    for source, found in (
        ("tests", inputs_from_tests(test)),
        ("examples", inputs_from_examples(prompt, entry_point)),
    ):
        usable = [args for args in found if _literal_repr(args)][:MAX_INPUTS]
        if usable:
            return usable, source
    return [], "none"


def _literal_repr(args: tuple[Any, ...]) -> bool:
    try:
        ast.literal_eval(repr(tuple(args)))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _check_inputs(entry_point: str, inputs: Sequence[tuple[Any, ...]]) -> str:
    """The inputs as Python source (a list of tuples); InputError for a bad entry point, too
    many inputs, or inputs that are not literals."""
    if not entry_point.isidentifier():
        raise InputError(f"entry_point: expected a Python name, got {entry_point!r}")
    if not 0 < len(inputs) <= MAX_INPUTS:
        raise InputError(
            f"inputs: expected 1..{MAX_INPUTS} argument tuples, got {len(inputs)}; "
            "take inputs_from_tests or inputs_from_examples (a subset if there are more)"
        )
    source = repr([tuple(args) for args in inputs])
    try:
        ast.literal_eval(source)
    except (ValueError, SyntaxError):
        raise InputError("inputs: every argument must be a Python literal") from None
    return source


def run_on_inputs(
    program: str,
    entry_point: str,
    inputs: Sequence[tuple[Any, ...]],
    timeout: float = 5.0,
    limits: Limits = PROGRAM_LIMITS,
) -> tuple[str, ...]:
    """One outcome token per input (see the module docstring) of the function `entry_point`
    defined by `program`, called on each argument tuple in turn, in one sandboxed run of at most
    `timeout` wall-clock seconds. InputError for bad arguments (see `_check_inputs`) or a sandbox
    that cannot be set up; never for what the program does."""
    nonce = secrets.token_hex(8)
    source = (
        f"NONCE = {nonce!r}\nENTRY = {entry_point!r}\nSOURCE = {program!r}\n"
        f"INPUTS = {_check_inputs(entry_point, inputs)}\n{_DRIVER}"
    )
    result = run_program(source, timeout, limits)
    said: dict[int, str] = {}
    for line in result.stdout.splitlines():
        try:
            tag, i, token = json.loads(line)
        except (ValueError, TypeError):
            continue
        if tag == nonce and isinstance(i, int) and isinstance(token, str):
            said.setdefault(i, token)
    if result.status == "timeout":
        missing = "timeout"
    elif len(result.stdout) >= TAIL_CHARS:  # a program writing to sys.__stdout__ pushed them out
        missing = "error:Output"
    else:
        missing = f"stopped:{result.status}"
    return tuple(said.get(i, missing) for i in range(len(inputs)))


def functional_equivalence(
    prompt: str,
    entry_point: str,
    completions: Sequence[str],
    inputs: Sequence[tuple[Any, ...]],
    timeout: float = 5.0,
    limits: Limits = PROGRAM_LIMITS,
    workers: int = 2,
) -> Callable[[str, str], bool]:
    """`same(a, b)` for completions of `prompt`: true when prompt + a and prompt + b give equal
    outcome tuples on `inputs` (see `run_on_inputs`; an empty completion is not run, its
    outcome is `EMPTY` on every input). Every distinct non-empty completion runs once, up to
    `workers` at a time; `same` on a completion not in `completions` raises InputError."""
    _check_inputs(entry_point, inputs)
    distinct = [c for c in dict.fromkeys(completions) if c]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        runs = pool.map(
            lambda c: run_on_inputs(prompt + c, entry_point, inputs, timeout, limits), distinct
        )
        outcomes = dict(zip(distinct, runs, strict=True))
    if "" in completions:
        outcomes[""] = (EMPTY,) * len(inputs)

    def same(a: str, b: str) -> bool:
        for c in (a, b):
            if c not in outcomes:
                raise InputError(
                    f"same: {c[:40]!r} is not one of the completions that were run; pass it "
                    "to functional_equivalence"
                )
        return outcomes[a] == outcomes[b]

    return same
