"""Run untrusted Python (model-written code) in a sandbox, and grade it with trusted tests.

`run_tests(program, tests, entry_point)` grades the function `entry_point` of an untrusted
`program` with trusted `tests`; `run_program(source)` runs one program alone. Both run the
program in a fresh process, return a `SandboxResult` and never raise for anything the program
does, so a grader can run thousands of programs in a row (or from several threads at once) and
keep going. Linux (5.3 or later) only.

Containment of the program, layer by layer:

1. Always. A separate interpreter, `python -I -S -B` (isolated mode: PYTHON* variables and the
   user's site-packages are ignored; no site-packages at all: programs see the standard library
   only, so `exit()` and `quit()` do not exist either; no bytecode is written). It starts in its
   own session and process group, with stdin from /dev/null, an environment of PATH, LANG, HOME
   and TMPDIR only (none of the parent's variables), and a fresh empty working directory (HOME and
   TMPDIR) inside a temporary directory that is deleted afterwards. Resource limits are set before
   the interpreter is exec'd (`Limits`: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC and
   RLIMIT_CORE 0), and PR_SET_NO_NEW_PRIVS stops setuid programs from gaining privileges. At the
   wall-clock timeout, and after every run, the whole process group is killed with SIGKILL.
2. Always. A Python audit hook installed before the program is compiled (audit hooks cannot be
   removed). It refuses, with `PermissionError`: every socket operation (connect, bind, sendto,
   name lookups, creating sockets), starting processes (fork, exec, posix_spawn, os.system,
   subprocess, and importing `_posixsubprocess`), signalling processes (os.kill, os.killpg),
   ctypes, opening files for writing or modifying the filesystem (remove, rename, mkdir, chmod,
   ...) outside the working directory (symlinks are resolved; /dev/null is allowed; relative
   paths with a directory fd are refused), and opening anything under /proc/<pid> of another
   process (its environment, memory, command line, descriptors). The hook stops accidents, not a
   program written to get around it: it is not a security boundary against native code,
   interpreter internals or races between its check and the use.
3. Only when the grader runs as root: the program runs as the unprivileged user `nobody` (no
   supplementary groups), so it can write only where everybody may and cannot read the grader's
   /proc/<pid>/environ or root's files; in a new network namespace (no interface but a loopback
   that is down: no connection anywhere, 127.0.0.1 and abstract Unix sockets included); and in a
   private mount namespace in which the interpreter's installation is bind-mounted read-only into
   the temporary directory (root's home, where it may live, is not readable by `nobody`). These
   are the strong layers. If they cannot be set up (a container without CAP_SYS_ADMIN),
   `run_program` and `run_tests` raise `InputError` rather than run with less.

Not contained: reading files the program's user may read (as a non-root grader that is everything
the grader can read, once the hook is evaded); writing to world-writable directories (/tmp,
/dev/shm) by code that evades the hook; network access, as a non-root grader, by code that evades
the hook; a native process that leaves the process group with setsid (bounded by RLIMIT_CPU
only); contention for CPU, memory and disk with the host (no cgroups); kernel exploits.
RLIMIT_NPROC counts every process of the user (as a non-root grader, the grader's own user).

The verdict (`run_tests`). Anything in the program's process can say anything about it: its exit
code, its status pipe, the runner's frames and memory are the program's to read and write. So the
tests run in a second, trusted process: `python -I -S -B` as the grader's user, in its own
session, under the same `Limits`, not dumpable (PR_SET_DUMPABLE 0: no ptrace and no
/proc/<pid>/fd, mem or environ for a process without CAP_SYS_PTRACE), with the tests' source on
its stdin (never on disk). The tests define `check(candidate)`; `check(<entry_point>)` runs with
`entry_point` bound to a stand-in that sends each call's arguments to the program, which calls
its function and sends back what it returned or raised, as data
(`calibbench.tasks.sandbox_protocol`: JSON, never pickle). The program is handed only its ends of
these two pipes, and does not start before the tests' process is not dumpable. "passed" is that
process exiting 0 after `check` returned, which nothing else can bring about: the program chooses
what its function returns and how it fails, nothing more (a value that is not data reaches the
tests as a stand-in equal only to itself; the program's own status only tells failed, timeout and
error apart when it ended first). As in one file, the program runs before the tests call it and
its function is the one defined by then; unlike one file, arguments are copies, so changes the
function makes to them stay in the program. Limits of the guarantee: as root, the program is
another user in other namespaces, and only a kernel exploit reaches the tests' process; as a
non-root grader the program is the grader's user, so code that evades the hook can kill tests'
processes (its own or others' running at the same time: failures, never passes) and, where the
kernel lets a user ptrace its own processes (Yama ptrace_scope 0), tamper with the grader itself.
`run_program`'s "passed" is the program's own account (it ran to its end), which it can forge:
use it to run code, not to grade it.

Statuses of `run_program`: "passed" (the program ran to its end and the process exited 0),
"failed" (an uncaught exception such as a failed assert, a syntax error, or an early exit:
`sys.exit` and `os._exit` count as failures whatever their code, so an early exit does not skip
the tests that follow it, unless the program forges its account), "timeout" (the wall-clock
timeout or the CPU-time limit), "error" (stopped by the sandbox: an uncaught refusal, MemoryError
or write over the file-size limit, death by another signal, or an interpreter that could not
start within the limits). Statuses of `run_tests`: "passed" (`check` returned), "failed" (an
uncaught exception in the tests, including one the function raised, or a program that failed or
ended before the tests did), "timeout" (the wall-clock timeout, or the CPU-time limit of either
process), "error" (as for `run_program`, in either process: the tests get the function's
exceptions with the sandbox's stops marked).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import keyword
import os
import pwd
import resource
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

from calibbench.errors import InputError
from calibbench.tasks import sandbox_protocol

STATUSES = ("passed", "failed", "timeout", "error")
TAIL_CHARS = 4096  # characters of stdout / stderr kept in a result
_PROTOCOL = inspect.getsource(sandbox_protocol)
_ENDED, _NOT_STARTED = 3, 125  # exit codes of the tests' process (0 passed, 1 failed, 2 stopped)

# Runs as root or as the grader's user, before the program's interpreter: namespaces, user,
# limits, then exec. Failures before the exec are written to the status pipe.
_LAUNCHER = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
try:
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        if getattr(libc, name)(*args) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{name}: {os.strerror(err)}")
    env = dict(os.environ)
    if cfg["uid"] is not None:
        CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
        MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
        MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
        call("unshare", CLONE_NEWNS | CLONE_NEWNET)
        call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)
        prefix, mount = cfg["prefix"].encode(), cfg["mount"].encode()
        call("mount", prefix, mount, None, MS_BIND | MS_REC, None)
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
        call("mount", None, mount, None, flags, None)
        if cfg["libdir"]:
            env["LD_LIBRARY_PATH"] = cfg["libdir"]
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    PR_SET_NO_NEW_PRIVS = 38
    call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for res, soft, hard in cfg["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    os.execve(cfg["argv"][0], cfg["argv"], env)
except BaseException as exc:
    os.write(cfg["status_fd"], f"{type(exc).__name__}: {exc}".encode())
    os._exit(125)
"""

# The program's interpreter: writes "S" to the status pipe, installs the audit hook, runs the
# program as __main__ and writes "P" (ran to its end), "F" (failed) or "E" (stopped by the
# sandbox: a refusal, MemoryError, or a file over the size limit; Python ignores SIGXFSZ). With an
# entry point (`run_tests`) it runs the program only once the tests' process sends "load", then
# answers its calls instead of writing "P", and exits 0 when the tests end.
_RUNNER = (
    _PROTOCOL
    + r"""
import os, sys, traceback, types
config = json.loads(sys.argv[1])
program, work, fd = config["program"], config["work"], config["status"]
entry_point = config["entry_point"]
os.write(fd, b"S")

WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
REFUSED = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
           "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill"}
# Filesystem changes: event -> positions of its dir_fd arguments.
CHANGES = {"os.remove": (1,), "os.rmdir": (1,), "os.rename": (2, 3), "os.link": (2, 3),
           "os.symlink": (2,), "os.mkdir": (2,), "os.chmod": (2,), "os.chown": (3,),
           "os.utime": (3,), "os.truncate": (), "shutil.rmtree": (1,)}

def hook(event, args, realpath=os.path.realpath, fspath=os.fspath, fsdecode=os.fsdecode,
         isabs=os.path.isabs, pathlike=os.PathLike, pid=str(os.getpid())):
    def writable(path):
        real = realpath(fsdecode(fspath(path)))
        return real == work or real.startswith(work + "/") or real == "/dev/null"

    if event in REFUSED or event.startswith(("socket.", "ctypes.")) or (
        event == "import" and args[0] == "_posixsubprocess"
    ):
        what = f"importing {args[0]}" if event == "import" else event
        raise Refused(f"sandbox: {what} is not allowed")
    if event == "open" and not isinstance(args[0], int):
        path, mode, flags = args
        parts = realpath(fsdecode(fspath(path))).split("/")
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != pid:
            raise Refused(f"sandbox: reading another process's /proc entry {path!r}")
        if flags & WRITE and not (writable(path) and (mode is not None or isabs(path))):
            raise Refused(f"sandbox: writing {path!r} is not allowed (only under {work})")
    elif event in CHANGES:
        paths = [a for a in args if isinstance(a, (str, bytes, pathlike))]
        if any(args[i] not in (None, -1) for i in CHANGES[event]) or not all(
            writable(p) for p in paths
        ):
            raise Refused(f"sandbox: {event} outside {work} is not allowed")

def fail(exc):
    try:
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.stderr.flush()
    finally:
        os.write(fd, b"E" if stopped(exc) else b"F")
        os._exit(1)

def serve(namespace, calls, replies):
    function, reply = namespace.get(entry_point), dumps("ready")
    if entry_point not in namespace:
        reply = dumps("raised", *raised(NameError(f"name {entry_point!r} is not defined")))
    while True:
        replies.write(reply)
        replies.flush()
        line = calls.readline()
        if not line:
            break
        try:
            _, (args, kwargs) = loads(line)
            reply = dumps("returned", function(*args, **kwargs))
        except BaseException as exc:
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
            reply = dumps("raised", *raised(exc))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

if config["audit"]:
    sys.addaudithook(hook)
if entry_point:
    calls, replies = os.fdopen(config["calls"], "rb"), os.fdopen(config["replies"], "wb")
    if calls.readline() != dumps("load"):
        os._exit(1)
main = types.ModuleType("__main__")
main.__file__ = program
sys.modules["__main__"] = main
sys.argv = [program]
try:
    with open(program, encoding="utf-8") as fh:
        code = compile(fh.read(), program, "exec")
    exec(code, main.__dict__)
    sys.stdout.flush()
    sys.stderr.flush()
    if entry_point:
        serve(main.__dict__, calls, replies)
except BaseException as exc:
    fail(exc)
os.write(fd, b"P")
"""
)

# The tests' interpreter (see "The verdict" above): sets itself up, runs the tests' code, lets the
# program run ("load"), binds the entry point to the stand-in and calls `check` with it. Exits 0
# when `check` returned, 1 when the tests failed, 2 when the sandbox stopped them (or the function
# they called), ENDED when the program ended first, NOT_STARTED when it could not set itself up.
_TESTS = (
    _PROTOCOL
    + f"ENDED, NOT_STARTED = {_ENDED}, {_NOT_STARTED}\n"
    + r"""
import ctypes, linecache, os, resource, sys, traceback, types
config = json.loads(sys.argv[1])

def end(code, why):
    print(f"sandbox: {why}", file=sys.stderr, flush=True)
    os._exit(code)

try:
    PR_SET_DUMPABLE = 4
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
    for res, soft, hard in config["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    source = sys.stdin.buffer.read().decode("utf-8")
    calls, replies = os.fdopen(config["calls"], "wb"), os.fdopen(config["replies"], "rb")
except BaseException as exc:
    end(NOT_STARTED, f"the tests' process could not start: {type(exc).__name__}: {exc}")

def ask(kind, *fields):
    # The program's answer to a message: what the function returned (None for "load"); raises
    # what it raised. Ends the tests when the program has ended or its reply is not one.
    try:
        calls.write(dumps(kind, *fields))
        calls.flush()
        line = replies.readline()
    except BrokenPipeError:
        line = b""
    if not line.endswith(b"\n"):
        end(ENDED, "the program ended before the tests did")
    try:
        reply, answer = loads(line)
        if reply not in ("raised", "ready" if kind == "load" else "returned"):
            raise ValueError(f"{reply!r} does not answer {kind!r}")
        if reply == "raised":
            answer = rebuild(*answer)
    except Exception as exc:
        end(2 if stopped(exc) else 1, f"the program's reply is not one: {exc!r}"[:500])
    if reply == "raised":
        raise answer
    return answer[0] if answer else None

def candidate(*args, **kwargs):
    return ask("call", args, kwargs)

main = types.ModuleType("__main__")
sys.modules["__main__"] = main
try:
    linecache.cache["<tests>"] = (len(source), None, source.splitlines(True), "<tests>")
    exec(compile(source, "<tests>", "exec"), main.__dict__)
    ask("load")
    setattr(main, config["entry_point"], candidate)
    exec(f"check({config['entry_point']})", main.__dict__)
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException as exc:
    try:
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.stderr.flush()
    finally:
        os._exit(2 if stopped(exc) else 1)
os._exit(0)
"""
)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program, and of its tests' process in `run_tests` (soft = hard,
    except CPU: SIGXCPU, then SIGKILL 1 s later).

    cpu_seconds: CPU time (RLIMIT_CPU); memory_bytes: address space (RLIMIT_AS, so a large
    allocation raises MemoryError); file_bytes: largest file the program may write, including its
    captured stdout and stderr (RLIMIT_FSIZE; a write beyond it fails with EFBIG); processes:
    processes and threads of the program's user (RLIMIT_NPROC).
    """

    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    processes: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"Limits.{f.name}: expected a positive integer, got {value!r}")


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one program.

    status: one of STATUSES (see the module docstring); returncode: the program's exit code, or
    -N when signal N killed it (under `run_tests` the program exits 0 once the tests are done with
    it); seconds: wall-clock time from start to end (sandbox set-up included); stdout, stderr:
    their last TAIL_CHARS characters (UTF-8, undecodable bytes replaced); under `run_tests`,
    stderr is the program's followed by the tests' output.
    """

    status: str
    returncode: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_program(source: str, timeout: float = 10.0, limits: Limits = Limits()) -> SandboxResult:
    """Run Python `source` in the sandbox for at most `timeout` wall-clock seconds.

    Its "passed" is the program's own account, which the program can forge: grade untrusted code
    with `run_tests`. Raises InputError for a non-positive timeout, on a platform other than
    Linux, or when the sandbox cannot be set up (the message says why and what to do); never for
    what the program does.
    """
    return _run(source, timeout, limits, audit=True)


def run_tests(
    program: str, tests: str, entry_point: str, timeout: float = 10.0, limits: Limits = Limits()
) -> SandboxResult:
    """Grade the function `entry_point` of the untrusted `program` with the trusted `tests`,
    which define `check(candidate)`, in at most `timeout` wall-clock seconds for both.

    The program runs in the sandbox, the tests in their own process, which calls the function
    through the sandbox's pipes and alone decides "passed" (see "The verdict" in the module
    docstring). Raises InputError as `run_program` does, and when `entry_point` is not a name;
    never for what the program does.
    """
    if not entry_point.isidentifier() or keyword.iskeyword(entry_point):
        raise InputError(f"entry_point: expected a Python name, got {entry_point!r}")
    return _run(program, timeout, limits, audit=True, tests=(tests, entry_point))


def _run(
    source: str,
    timeout: float,
    limits: Limits,
    audit: bool,
    tests: tuple[str, str] | None = None,
) -> SandboxResult:
    """`run_program` (`tests` None) or `run_tests` (`tests`: the tests and the entry point), with
    the audit hook switched off when `audit` is False (tests use that to show that the other
    layers hold on their own)."""
    if not sys.platform.startswith("linux"):
        raise InputError(f"the code sandbox needs Linux >= 5.3 (pidfd); this is {sys.platform}")
    if not timeout > 0:
        raise InputError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    root = Path(tempfile.mkdtemp(prefix="calibbench-sandbox-"))
    try:
        if tests is None:
            return _run_alone(root, source, timeout, limits, audit)
        return _run_judged(root, source, *tests, timeout, limits, audit)
    finally:
        _remove_tree(root)


def _run_alone(
    root: Path, source: str, timeout: float, limits: Limits, audit: bool
) -> SandboxResult:
    status_read, status_write = os.pipe()
    start = time.monotonic()
    program = None
    try:
        try:
            program = _start_program(root, source, limits, audit, {"status": status_write})
        finally:
            os.close(status_write)
        timed_out = not _wait(program.pid, timeout)
    finally:  # also when interrupted: no program outlives run_program
        returncode = _stop(program) if program is not None else 0
        seconds = time.monotonic() - start
        status_bytes = _read_available(status_read)
        os.close(status_read)
    _check_started(status_bytes)
    return SandboxResult(
        status=_status(timed_out, returncode, status_bytes),
        returncode=returncode,
        seconds=seconds,
        stdout=_tail(root / "stdout"),
        stderr=_tail(root / "stderr"),
    )


def _run_judged(
    root: Path,
    source: str,
    tests: str,
    entry_point: str,
    timeout: float,
    limits: Limits,
    audit: bool,
) -> SandboxResult:
    status_read, status_write = os.pipe()
    calls_read, calls_write = os.pipe()
    replies_read, replies_write = os.pipe()
    start = time.monotonic()
    judge = program = None
    try:
        try:
            judge = _start_tests(
                root, tests, entry_point, limits, {"calls": calls_write, "replies": replies_read}
            )
            program = _start_program(
                root,
                source,
                limits,
                audit,
                {"status": status_write, "calls": calls_read, "replies": replies_write},
                entry_point,
            )
        finally:  # each end now belongs to one of the two processes only
            for fd in (status_write, calls_read, calls_write, replies_read, replies_write):
                os.close(fd)
        tested = _wait(judge.pid, timeout)
        ended = tested and _wait(program.pid, max(0.0, start + timeout - time.monotonic()))
    finally:  # also when interrupted: neither process outlives run_tests
        verdict = _stop(judge) if judge is not None else 0
        returncode = _stop(program) if program is not None else 0
        seconds = time.monotonic() - start
        status_bytes = _read_available(status_read)
        os.close(status_read)
    _check_started(status_bytes)
    output = _tail(root / "tests" / "output")
    if verdict == _NOT_STARTED:
        raise InputError(f"the code sandbox could not start the tests' process: {output.strip()}")
    return SandboxResult(
        status=_verdict(tested, ended, verdict, returncode, status_bytes),
        returncode=returncode,
        seconds=seconds,
        stdout=_tail(root / "stdout"),
        stderr=(_tail(root / "stderr") + output)[-TAIL_CHARS:],
    )


def _start_program(
    root: Path,
    source: str,
    limits: Limits,
    audit: bool,
    fds: dict[str, int],
    entry_point: str | None = None,
) -> subprocess.Popen:
    """Start `source` in the sandbox (the layers of the module docstring) in `root`, handing it
    the pipe ends `fds` ("status", and "calls" and "replies" with an `entry_point` to serve)."""
    work = root / "work"
    work.mkdir()
    program = root / "program.py"
    program.write_text(source, encoding="utf-8")
    drop = os.geteuid() == 0
    uid, gid = _unprivileged_ids()
    prefix, interpreter, libdir = _installation()
    mount = root / "python"
    if drop:
        root.chmod(0o755)
        os.chown(work, uid, gid)
        mount.mkdir()
        interpreter, libdir = mount / interpreter, libdir and mount / libdir
    else:
        interpreter, libdir = prefix / interpreter, None
    runner = {"program": str(program), "work": str(work.resolve()), "audit": audit,
              "entry_point": entry_point, **fds}  # fmt: skip
    config = {
        "status_fd": fds["status"],
        "uid": uid if drop else None,
        "gid": gid,
        "prefix": str(prefix),
        "mount": str(mount),
        "libdir": libdir and str(libdir),
        "rlimits": _rlimits(limits),
        "argv": [str(interpreter), "-I", "-S", "-B", "-c", _RUNNER, json.dumps(runner)],
    }
    with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=work,
            env=_environment(work),
            pass_fds=tuple(fds.values()),
            start_new_session=True,
        )


def _start_tests(
    root: Path, tests: str, entry_point: str, limits: Limits, fds: dict[str, int]
) -> subprocess.Popen:
    """Start the tests' process (see "The verdict" in the module docstring) in `root`/tests, a
    folder only the grader's user may open, handing it `tests` on its stdin and the pipe ends
    `fds` ("calls" and "replies")."""
    home = root / "tests"
    home.mkdir(mode=0o700)
    config = {"entry_point": entry_point, "rlimits": _rlimits(limits), **fds}
    with open(home / "output", "wb") as out:
        judge = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-c", _TESTS, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=_environment(home),
            pass_fds=tuple(fds.values()),
            start_new_session=True,
        )
    with contextlib.suppress(BrokenPipeError), judge.stdin:  # a process that died reads no tests
        judge.stdin.write(tests.encode("utf-8"))
    return judge


def _rlimits(limits: Limits) -> list[tuple[int, int, int]]:
    return [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
    ]


def _environment(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "TMPDIR": str(home)}


def _check_started(status_bytes: bytes) -> None:
    """InputError when the program's launcher failed (it wrote why instead of the runner's "S")."""
    if status_bytes and not status_bytes.startswith(b"S"):
        raise InputError(
            f"the code sandbox could not start: {status_bytes.decode(errors='replace')}. As root "
            "it needs CAP_SYS_ADMIN (network and mount namespaces) and CAP_SETUID; run the "
            "grader as an unprivileged user, or in a container allowed to create namespaces"
        )


def _status(timed_out: bool, returncode: int, status_bytes: bytes) -> str:
    """A program's status from its own account (`run_program`)."""
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode < 0 or not status_bytes.startswith(b"S") or status_bytes.endswith(b"E"):
        return "error"
    if returncode == 0 and status_bytes.endswith(b"P"):
        return "passed"
    return "failed"


def _verdict(tested: bool, ended: bool, verdict: int, returncode: int, status_bytes: bytes) -> str:
    """The status of a `run_tests` run from the tests' exit code `verdict`; the program's own
    account (`_status`) tells only how it failed when it ended before the tests."""
    if not tested or verdict == -signal.SIGXCPU:
        return "timeout"
    if verdict == 0:
        return "passed"
    if verdict == _ENDED:
        own = _status(not ended, returncode, status_bytes)
        return "failed" if own == "passed" else own
    return "failed" if verdict == 1 else "error"


def _stop(proc: subprocess.Popen) -> int:
    """Kill `proc`'s process group, reap `proc` and sweep the group: its exit code, or -N."""
    os.killpg(proc.pid, signal.SIGKILL)  # the leader is not reaped yet: the group is still ours
    returncode = proc.wait()
    _sweep_group(proc.pid)
    return returncode


def _installation() -> tuple[Path, Path, Path | None]:
    """The base Python installation (not a virtual environment, which `-S` ignores anyway): its
    prefix, and relative to it the interpreter and, for a shared-library build, libpython's
    folder (the interpreter's RUNPATH is absolute, so a relocated copy needs LD_LIBRARY_PATH)."""
    prefix = Path(os.path.realpath(sys.base_prefix))
    interpreter = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    libdir = (
        sysconfig.get_config_var("LIBDIR") if sysconfig.get_config_var("Py_ENABLE_SHARED") else None
    )
    try:
        return (
            prefix,
            interpreter.relative_to(prefix),
            Path(os.path.realpath(libdir)).relative_to(prefix) if libdir else None,
        )
    except ValueError:
        raise InputError(
            f"the code sandbox needs the Python interpreter ({interpreter}) and its libraries "
            f"inside sys.base_prefix ({prefix}); run the grader with a standard installation"
        ) from None


def _unprivileged_ids() -> tuple[int, int]:
    """uid and gid of `nobody` (65534 where there is no such user)."""
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def _wait(pid: int, timeout: float) -> bool:
    """Wait until process `pid` exits (without reaping it); False at the timeout."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(ready)


def _sweep_group(pgid: int, seconds: float = 2.0) -> None:
    """Kill what is left of the process group (children of a fork the kill raced with) until it
    is empty, for at most `seconds`. Safe after the leader is reaped: a group id is not reused
    while the group has members, and pids are handed out cyclically."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def _read_available(fd: int) -> bytes:
    """What the pipe holds now, without waiting for writers that may have escaped the group."""
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _tail(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4 * TAIL_CHARS))
        return fh.read().decode("utf-8", errors="replace")[-TAIL_CHARS:]


def _remove_tree(root: Path) -> None:
    """Delete the sandbox directory, first restoring permissions the program may have removed."""
    for parent, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    shutil.rmtree(root)
