"""Run untrusted Python (model-written code and its unit tests) and report whether it passed.

`run_program(source)` runs one program in a fresh process and returns a `SandboxResult`; it never
raises for anything the program does, so a grader can run thousands of programs in a row (or from
several threads at once) and keep going. Linux (5.3 or later) only.

Containment, layer by layer:

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
   process (its environment, memory, command line). The hook stops accidents, not a program
   written to get around it: it is not a security boundary against native code, interpreter
   internals or races between its check and the use.
3. Only when the grader runs as root: the program runs as the unprivileged user `nobody` (no
   supplementary groups), so it can write only where everybody may and cannot read the grader's
   /proc/<pid>/environ or root's files; in a new network namespace (no interface but a loopback
   that is down: no connection anywhere, 127.0.0.1 and abstract Unix sockets included); and in a
   private mount namespace in which the interpreter's installation is bind-mounted read-only into
   the temporary directory (root's home, where it may live, is not readable by `nobody`). These
   are the strong layers. If they cannot be set up (a container without CAP_SYS_ADMIN),
   `run_program` raises `InputError` rather than run with less.

Not contained: reading files the program's user may read (as a non-root grader that is everything
the grader can read, once the hook is evaded); writing to world-writable directories (/tmp,
/dev/shm) by code that evades the hook; network access, as a non-root grader, by code that evades
the hook; a native process that leaves the process group with setsid (bounded by RLIMIT_CPU
only); contention for CPU, memory and disk with the host (no cgroups); kernel exploits.
RLIMIT_NPROC counts every process of the user (as a non-root grader, the grader's own user).

Statuses: "passed" (the program ran to its end and the process exited 0), "failed" (an uncaught
exception such as a failed assert, a syntax error, or an early exit: `sys.exit` and `os._exit`
count as failures whatever their code, so code cannot skip the tests that follow it),
"timeout" (the wall-clock timeout or the CPU-time limit), "error" (stopped by the sandbox: an
uncaught refusal, MemoryError or write over the file-size limit, death by another signal, or an
interpreter that could not start within the limits).
"""

from __future__ import annotations

import json
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

STATUSES = ("passed", "failed", "timeout", "error")
TAIL_CHARS = 4096  # characters of stdout / stderr kept in a result

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
# sandbox: a refusal, MemoryError, or a file over the size limit; Python ignores SIGXFSZ).
_RUNNER = r"""
import errno, os, sys, traceback, types
program, work, fd, audit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
os.write(fd, b"S")

class Refused(PermissionError):
    pass

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

if audit:
    sys.addaudithook(hook)
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
except BaseException as exc:
    chain, seen, stopped = exc, set(), False
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        stopped = stopped or isinstance(chain, (Refused, MemoryError)) or (
            isinstance(chain, OSError) and chain.errno == errno.EFBIG
        )
        chain = chain.__cause__ or chain.__context__
    try:
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.stderr.flush()
    finally:
        os.write(fd, b"E" if stopped else b"F")
        os._exit(1)
os.write(fd, b"P")
"""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program (soft = hard, except CPU: SIGXCPU, then SIGKILL 1 s later).

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

    status: one of STATUSES (see the module docstring); returncode: the exit code, or -N when
    signal N killed it; seconds: wall-clock time from start to end (sandbox set-up included);
    stdout, stderr: their last TAIL_CHARS characters (UTF-8, undecodable bytes replaced).
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

    Raises InputError for a non-positive timeout, on a platform other than Linux, or when the
    sandbox cannot be set up (the message says why and what to do); never for what the program
    does.
    """
    return _run(source, timeout, limits, audit=True)


def _run(source: str, timeout: float, limits: Limits, audit: bool) -> SandboxResult:
    """`run_program`, with the audit hook switched off when `audit` is False (tests use that to
    show that the other layers hold on their own)."""
    if not sys.platform.startswith("linux"):
        raise InputError(f"the code sandbox needs Linux >= 5.3 (pidfd); this is {sys.platform}")
    if not timeout > 0:
        raise InputError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    root = Path(tempfile.mkdtemp(prefix="calibbench-sandbox-"))
    try:
        return _run_in(root, source, timeout, limits, audit)
    finally:
        _remove_tree(root)


def _run_in(root: Path, source: str, timeout: float, limits: Limits, audit: bool) -> SandboxResult:
    work = root / "work"
    work.mkdir()
    program = root / "program.py"
    program.write_text(source, encoding="utf-8")
    drop = os.geteuid() == 0
    uid, gid = _unprivileged_ids()
    prefix, interpreter, libdir = _installation()
    if drop:
        root.chmod(0o755)
        os.chown(work, uid, gid)
        mount = root / "python"
        mount.mkdir()
        interpreter = mount / interpreter
        libdir = libdir and mount / libdir
    else:
        interpreter = prefix / interpreter
        libdir = None
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "TMPDIR": str(work)}
    read_end, write_end = os.pipe()
    config = {
        "status_fd": write_end,
        "uid": uid if drop else None,
        "gid": gid,
        "prefix": str(prefix),
        "mount": str(root / "python"),
        "libdir": libdir and str(libdir),
        "rlimits": [
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
            (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
            (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
            (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        ],
        "argv": [
            str(interpreter),
            "-I",
            "-S",
            "-B",
            "-c",
            _RUNNER,
            str(program),
            str(work.resolve()),
            str(write_end),
            "1" if audit else "0",
        ],
    }
    proc = None
    start = time.monotonic()
    try:
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=work,
                env=env,
                pass_fds=(write_end,),
                start_new_session=True,
            )
        os.close(write_end)
        write_end = -1
        timed_out = not _wait(proc.pid, timeout)
    finally:
        if proc is not None:  # also when interrupted: no program outlives run_program
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is not reaped: the group is ours
            returncode = proc.wait()
            _sweep_group(proc.pid)
        seconds = time.monotonic() - start
        status_bytes = _read_available(read_end)
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if not status_bytes.startswith(b"S") and status_bytes:
        raise InputError(
            f"the code sandbox could not start: {status_bytes.decode(errors='replace')}. As root "
            "it needs CAP_SYS_ADMIN (network and mount namespaces) and CAP_SETUID; run the "
            "grader as an unprivileged user, or in a container allowed to create namespaces"
        )
    return SandboxResult(
        status=_status(timed_out, returncode, status_bytes),
        returncode=returncode,
        seconds=seconds,
        stdout=_tail(root / "stdout"),
        stderr=_tail(root / "stderr"),
    )


def _status(timed_out: bool, returncode: int, status_bytes: bytes) -> str:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode < 0 or not status_bytes.startswith(b"S") or status_bytes.endswith(b"E"):
        return "error"
    if returncode == 0 and status_bytes.endswith(b"P"):
        return "passed"
    return "failed"


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
