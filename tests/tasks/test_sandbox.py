"""The code sandbox: each containment layer shown to hold, a grader that keeps going, and a
verdict (`run_tests`) that programs written to forge it cannot forge.

Tests that switch the audit hook off (`_run(..., audit=False)`) show that the layers under it
(resource limits, the uid drop, the network namespace) hold on their own.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from calibbench.errors import InputError
from calibbench.tasks.sandbox import TAIL_CHARS, Limits, _run, run_program, run_tests

ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="the uid drop and namespaces apply only as root")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


class Server:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def server():
    s = Server()
    with socket.create_connection(("127.0.0.1", s.port), timeout=2):
        pass  # the server is reachable from here: a sandboxed failure to connect means something
    s.stop.wait(0.5)
    assert s.accepted == 1
    s.accepted = 0
    yield s
    s.close()


def test_a_passing_program_passes():
    r = run_program("import math, json, re\nprint(json.dumps(math.factorial(5)))\n")
    assert r.status == "passed" and r.passed
    assert r.returncode == 0
    assert r.stdout == "120\n"
    assert 0 < r.seconds < 10


@pytest.mark.parametrize(
    "source, status, message",
    [
        ("assert 1 + 1 == 3\n", "failed", "AssertionError"),
        ("def f(:\n", "failed", "SyntaxError"),
        ("raise ValueError('nope')\n", "failed", "ValueError: nope"),
        # An early exit, whatever its code, must not skip the tests that follow it.
        ("import sys\nsys.exit(0)\nassert False\n", "failed", "SystemExit"),
        ("import os\nos._exit(0)\nassert False\n", "failed", ""),
    ],
)
def test_failures_are_failed(source, status, message):
    r = run_program(source)
    assert r.status == status
    assert message in r.stderr
    assert r.returncode != 0 or message == ""


def test_infinite_loop_times_out():
    r = run_program("while True:\n    pass\n", timeout=1.0)
    assert r.status == "timeout"
    assert r.returncode == -signal.SIGKILL
    assert 1.0 <= r.seconds < 6.0


def test_sleeping_program_times_out_on_the_wall_clock():
    r = run_program("import time\ntime.sleep(600)\n", timeout=1.0)
    assert r.status == "timeout" and 1.0 <= r.seconds < 6.0


def test_cpu_limit_stops_a_busy_program_before_the_timeout():
    r = run_program("while True:\n    pass\n", timeout=60.0, limits=Limits(cpu_seconds=1))
    assert r.status == "timeout"
    assert r.returncode == -signal.SIGXCPU
    assert r.seconds < 20.0


FORK_BOMB = """\
import os
print(os.getpgrp(), flush=True)
while True:
    os.fork()
"""
# Keeps forking after a refusal or EAGAIN, sleeping a little between failures.
PERSISTENT_FORK_BOMB = """\
import os, time
print(os.getpgrp(), flush=True)
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.05)
"""


def test_fork_bomb_is_refused():
    r = run_program(FORK_BOMB, timeout=5.0)
    assert r.status == "error"
    assert "os.fork is not allowed" in r.stderr
    assert group_members(int(r.stdout.split()[0])) == []


def test_fork_bomb_without_the_hook_is_held_by_the_process_limit():
    r = _run(PERSISTENT_FORK_BOMB, 2.0, Limits(processes=16), audit=False)
    assert r.status == "timeout"
    assert group_members(int(r.stdout.split()[0])) == []  # every process of the bomb is gone
    assert subprocess.run([sys.executable, "-c", "print(7)"], capture_output=True).stdout == b"7\n"
    assert run_program("print('still here')").stdout == "still here\n"


def test_memory_bomb_fails_without_hurting_the_grader():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grow = "blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20))\n"
    r = run_program(grow, limits=Limits(memory_bytes=512 << 20))
    assert r.status == "error" and "MemoryError" in r.stderr
    r = run_program("x = bytearray(64 << 30)\n")
    assert r.status == "error" and "MemoryError" in r.stderr
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 << 10


def test_file_size_limit_bounds_files_and_captured_output():
    write = "with open('big', 'wb') as fh:\n    fh.write(b'x' * (2 << 20))\n"
    r = run_program(write, limits=Limits(file_bytes=1 << 20))
    assert r.status == "error" and "File too large" in r.stderr
    r = run_program("while True:\n    print('y' * 1000)\n", limits=Limits(file_bytes=1 << 20))
    assert r.status == "error"
    assert len(r.stdout) == TAIL_CHARS and set(r.stdout) <= {"y", "\n"}


def writers(target: Path) -> dict[str, str]:
    """Programs that each try to create `target` (outside the sandbox) another way."""
    t, parent, name = repr(str(target)), repr(str(target.parent)), repr(target.name)
    return {
        "open": f"open({t}, 'w').write('x')\n",
        "pathlib": f"import pathlib\npathlib.Path({t}).write_text('x')\n",
        "os.open": f"import os\nos.open({t}, os.O_WRONLY | os.O_CREAT)\n",
        "symlink": f"import os\nos.symlink({t}, 'link')\nopen('link', 'w').write('x')\n",
        "chdir": f"import os\nos.chdir({parent})\nopen({name}, 'w')\n",
        "dir_fd": (
            f"import os\nd = os.open({parent}, os.O_RDONLY)\n"
            f"os.open({name}, os.O_WRONLY | os.O_CREAT, dir_fd=d)\n"
        ),
        "rename": f"open('x', 'w').close()\nimport os\nos.rename('x', {t})\n",
    }


@pytest.mark.parametrize("how", sorted(writers(Path("/x"))))
def test_writing_outside_the_work_dir_is_refused(tmp_path, how):
    # In the shared temporary directory, which everybody may write to, only the hook stops it.
    shared = Path(tempfile.gettempdir()) / f"calibbench-escape-{uuid.uuid4().hex}"
    try:
        r = run_program(writers(shared)[how])
        assert r.status == "error" and "is not allowed" in r.stderr, r.stderr
        assert not shared.exists()
    finally:
        shared.unlink(missing_ok=True)
    # Under the test's own directory (root's, when run as root) the uid drop may stop it first.
    private = tmp_path / "escape.txt"
    r = run_program(writers(private)[how])
    assert r.status in ("error", "failed"), r.stderr
    assert not private.exists()


def test_changing_files_outside_is_refused(tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    mode = victim.stat().st_mode
    v = str(victim)
    for change in (f"os.remove({v!r})", f"os.truncate({v!r}, 0)", f"os.chmod({v!r}, 0o777)",
                   f"os.rename({v!r}, 'stolen')", f"os.utime({v!r}, (0, 0))"):  # fmt: skip
        r = run_program(f"import os\n{change}\n")
        assert r.status == "error" and "is not allowed" in r.stderr, change
    assert victim.read_text() == "precious"
    assert victim.stat().st_mode == mode and victim.stat().st_mtime > 0


def test_writing_inside_the_work_dir_works():
    source = (
        "import os, tempfile\n"
        "open('a.txt', 'w').write('hello')\n"
        "fd, path = tempfile.mkstemp()\n"
        "os.write(fd, b'x')\n"
        "os.mkdir('sub')\n"
        "os.rename('a.txt', 'sub/b.txt')\n"
        "print(open('sub/b.txt').read(), path.startswith(os.getcwd()))\n"
    )
    r = run_program(source)
    assert r.status == "passed", r.stderr
    assert r.stdout == "hello True\n"


def test_parent_environment_is_not_readable(monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("CALIBBENCH_TEST_SECRET", secret)
    source = (
        "import json, os\n"
        "print(json.dumps(sorted(os.environ)))\n"
        "print(dict(os.environ))\n"
        "for pid in (os.getppid(), 1):\n"
        "    try:\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print('unreadable', type(exc).__name__)\n"
    )
    r = run_program(source)
    assert r.status == "passed", r.stderr
    assert secret not in r.stdout + r.stderr
    assert r.stdout.count("unreadable") == 2
    names = set(json.loads(r.stdout.splitlines()[0]))
    assert {"PATH", "LANG", "HOME", "TMPDIR"} <= names
    assert names <= {"PATH", "LANG", "HOME", "TMPDIR", "LD_LIBRARY_PATH"}


def test_socket_connection_to_a_local_server_fails(server):
    source = f"import socket\nsocket.create_connection(('127.0.0.1', {server.port}), timeout=2)\n"
    r = run_program(source)
    assert r.status == "error" and "not allowed" in r.stderr
    server.stop.wait(0.5)
    assert server.accepted == 0


@as_root
def test_without_the_hook_the_network_namespace_blocks_localhost(server):
    source = (
        "import errno, socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {server.port}), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode.get(exc.errno, exc))\n"
    )
    r = _run(source, 10.0, Limits(), audit=False)
    assert r.status == "passed", r.stderr
    assert r.stdout.strip() == "ENETUNREACH"
    server.stop.wait(0.5)
    assert server.accepted == 0


@as_root
def test_without_the_hook_the_program_runs_as_nobody(tmp_path, monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("CALIBBENCH_TEST_SECRET", secret)
    target = tmp_path / "escape.txt"
    source = (
        "import os\n"
        "print(os.getuid(), os.getgid(), os.getgroups())\n"
        f"for path, mode in ((f'/proc/{{os.getppid()}}/environ', 'rb'), ({str(target)!r}, 'w')):\n"
        "    try:\n"
        "        print(open(path, mode).read())\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    r = _run(source, 10.0, Limits(), audit=False)
    assert r.status == "passed", r.stderr
    assert r.stdout.splitlines() == ["65534 65534 []", "PermissionError", "PermissionError"]
    assert not target.exists()


def test_temporary_directory_is_removed():
    source = (
        "import os\n"
        "print(os.getcwd(), flush=True)\n"
        "os.makedirs('a/b')\n"
        "open('a/b/f', 'w').write('x')\n"
        "os.chmod('a/b', 0)\n"
        "os.chmod('a', 0)\n"
        "while True:\n"
        "    pass\n"
    )
    r = run_program(source, timeout=1.0)
    assert r.status == "timeout"
    work = Path(r.stdout.split()[0])
    assert work.name == "work" and work.parent.name.startswith("calibbench-sandbox-")
    assert not work.parent.exists()
    assert "calibbench-sandbox-" not in Path("/proc/self/mountinfo").read_text()


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="timeout"):
        run_program("print(1)", timeout=0)
    with pytest.raises(InputError, match="memory_bytes"):
        Limits(memory_bytes=0)


def test_grader_keeps_going_after_every_failure(tmp_path, server):
    bad = [
        "while True:\n    pass\n",
        FORK_BOMB,
        "x = bytearray(64 << 30)\n",
        f"open({str(tmp_path / 'x')!r}, 'w')\n",
        "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())\n",
        f"import socket\nsocket.create_connection(('127.0.0.1', {server.port}))\n",
        "import ctypes\n",
        "import subprocess\nsubprocess.run(['true'])\n",
        "import os\nos.system('true')\n",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    ]
    statuses = [run_program(source, timeout=1.0).status for source in bad]
    assert statuses == ["timeout"] + ["error"] * (len(bad) - 1)
    r = run_program("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')\n")
    assert r.status == "passed" and r.stdout == "ok\n"
    assert server.accepted == 0


ADD = "def add(a, b):\n    return a + b\n"
CHECK_ADD = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert add(-1, 1) == 0\n"
# Each program makes the in-process signal say "passed", then exits 0 before a failing assert.
FORGERIES = {
    "every descriptor": (
        "import os\n"
        "def add(a, b):\n"
        "    return 0\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, b'P')\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    ),
    "the runner's frame": (
        "import os, sys\n"
        "def add(a, b):\n"
        "    return 0\n"
        "frame = sys._getframe()\n"
        "while frame.f_back is not None:\n"
        "    frame = frame.f_back\n"
        "os.write(frame.f_globals['fd'], b'P')\n"
        "os._exit(0)\n"
    ),
}


def test_run_tests_passes_a_right_function_and_fails_a_wrong_one():
    r = run_tests("print('loaded')\n" + ADD, CHECK_ADD, "add")
    assert r.status == "passed" and r.returncode == 0, r.stderr
    assert r.stdout == "loaded\n"
    r = run_tests(ADD.replace("a + b", "a - b"), CHECK_ADD, "add")
    assert r.status == "failed"
    assert "AssertionError" in r.stderr and "candidate(2, 3) == 5" in r.stderr


@pytest.mark.parametrize("how", sorted(FORGERIES))
def test_a_program_cannot_forge_passing(how):
    forged = FORGERIES[how] + "assert False\n"
    assert run_program(forged).status == "passed"  # the program's own account is forged
    assert run_tests(forged, CHECK_ADD, "add").status == "failed"


ANYTHING = (
    "class Anything:\n"
    "    __eq__ = lambda self, other: True\n"
    "    __ne__ = lambda self, other: False\n"
    "def add(a, b):\n"
    "    return Anything()\n"
)


def test_a_value_that_claims_to_equal_anything_does_not():
    assert run_program(ANYTHING + "assert add(2, 3) == 5\n").passed  # in its own process, it does
    r = run_tests(ANYTHING, CHECK_ADD, "add")
    assert r.status == "failed" and "AssertionError" in r.stderr


def test_a_program_cannot_answer_for_the_tests_beyond_answering():
    # The reply pipe is the program's to write: ten answers ahead of the calls count as answers,
    # and the line after them, which is not a reply, ends the tests as a failure.
    answers = '["ready"]\\n' + '["returned", 5]\\n' * 10 + "garbage\\n"
    source = (
        "import sys\n"
        "replies = sys._getframe().f_back.f_globals['replies']\n"
        f"replies.write(b'{answers}')\n"
        "replies.flush()\n" + ADD
    )
    tests = "def check(candidate):\n" + "    assert candidate(2, 3) == 5\n" * 12
    r = run_tests(source, tests, "add")
    assert r.status == "failed"
    assert "the program's reply is not one" in r.stderr


@pytest.mark.parametrize(
    "body, status, message",
    [
        ("    raise ValueError('no')\n", "failed", "ValueError: no"),
        ("    import sys\n    sys.exit(0)\n", "failed", "SystemExit"),
        ("    import os\n    os._exit(0)\n", "failed", "the program ended"),
        ("    while True:\n        pass\n", "timeout", ""),
        ("    import os\n    os.fork()\n", "error", "os.fork is not allowed"),
        ("    return bytearray(64 << 30)\n", "error", "MemoryError"),
    ],
)
def test_run_tests_statuses_of_what_the_function_does(body, status, message):
    r = run_tests(f"def add(a, b):\n{body}", CHECK_ADD, "add", timeout=2.0)
    assert r.status == status, r.stderr
    assert message in r.stderr


@pytest.mark.parametrize(
    "program, status",
    [
        ("raise RuntimeError('at load')\n" + ADD, "failed"),
        ("def add(a, b:\n", "failed"),
        ("import os\nos._exit(0)\n" + ADD, "failed"),
        ("def sub(a, b):\n    return a - b\n", "failed"),  # no entry point: NameError
        ("import socket\nsocket.socket()\n" + ADD, "error"),
        ("while True:\n    pass\n", "timeout"),
    ],
)
def test_run_tests_statuses_of_what_the_program_does(program, status):
    r = run_tests(program, CHECK_ADD, "add", timeout=2.0, limits=Limits(cpu_seconds=1))
    assert r.status == status, r.stderr


def test_the_function_runs_after_the_program_keeps_its_state_and_raises_what_it_raised():
    program = (
        "calls = []\n"
        "def count(x):\n"
        "    calls.append(x)\n"
        "    if x < 0:\n"
        "        raise KeyError(x)\n"
        "    return len(calls)\n"
        "count(0)\n"
    )
    tests = (
        "def check(candidate):\n"
        "    assert [candidate(1), candidate(1)] == [2, 3]\n"
        "    try:\n"
        "        candidate(-1)\n"
        "    except KeyError as exc:\n"
        "        assert exc.args == (-1,)\n"
        "    else:\n"
        "        raise AssertionError('no KeyError')\n"
        "    assert count(5) == 5  # the entry point's name is the stand-in too\n"
    )
    r = run_tests(program, tests, "count")
    assert r.status == "passed", r.stderr
    assert "KeyError: -1" in r.stderr  # the program's traceback


def test_values_cross_as_the_tests_would_see_them():
    program = (
        "import collections, decimal, enum, fractions, re\n"
        "class Level(enum.IntEnum):\n"
        "    HIGH = 3\n"
        "VALUES = [None, True, 2 ** 80, -0.0, float('nan'), float('inf'), 'é\\n',\n"
        "          b'\\x00\\xff', 1 + 2j, (1, [2, {3}]), frozenset({4}), {(1, 2): 'a'},\n"
        "          collections.Counter('aab'), collections.deque([1]), fractions.Fraction(1, 3),\n"
        "          decimal.Decimal('0.1'), Level.HIGH, (x * x for x in range(3)),\n"
        "          map(str, [1, 2]), re.match('a', 'a'), re.match('a', 'b'), {}.keys()]\n"
        "def value(i, copy=False):\n"
        "    return VALUES[i]\n"
    )
    tests = (
        "import collections, decimal, fractions, math\n"
        "def check(candidate):\n"
        "    got = [candidate(i) for i in range(22)]\n"
        "    assert got[:4] == [None, True, 2 ** 80, 0.0] and got[1] is True\n"
        "    assert math.copysign(1, got[3]) == -1 and math.isnan(got[4]) and got[5] == math.inf\n"
        "    assert got[6:11] == ['é\\n', b'\\x00\\xff', 1 + 2j, (1, [2, {3}]), frozenset({4})]\n"
        "    assert got[11:14] == [{(1, 2): 'a'}, {'a': 2, 'b': 1}, collections.deque([1])]\n"
        "    assert got[14] == fractions.Fraction(1, 3) and got[15] == decimal.Decimal('0.1')\n"
        "    assert got[16] == 3 and type(got[16]) is int\n"
        "    assert list(got[17]) == [0, 1, 4] and tuple(got[18]) == ('1', '2')\n"
        "    assert got[19] and not got[20] and got[19] != got[19].__class__('', True)\n"
        "    assert repr(got[21]) == 'dict_keys([])' and got[21] != []\n"
        "    assert candidate(0, copy=True) is None\n"
    )
    r = run_tests(program, tests, "value")
    assert r.status == "passed", r.stderr


def test_the_tests_process_is_out_of_the_programs_reach():
    # Without the hook (as the same user when the grader is not root), the program finds the
    # tests' process and tries its descriptors, memory and environment: it is not dumpable.
    source = (
        "import os\n"
        "mine = str(os.getpid())\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if b'NOT_STARTED' in cmdline and b'sandbox' in cmdline and pid != mine:\n"
        "        break\n"
        "else:\n"
        "    raise LookupError('no tests process')\n"
        "for what, path in (('fd', f'/proc/{pid}/fd'), ('mem', f'/proc/{pid}/mem'),\n"
        "                   ('environ', f'/proc/{pid}/environ')):\n"
        "    try:\n"
        "        os.listdir(path) if what == 'fd' else open(path, 'rb').read(1)\n"
        "        print(what, 'open')\n"
        "    except OSError as exc:\n"
        "        print(what, type(exc).__name__)\n" + ADD
    )
    r = _run(source, 10.0, Limits(), audit=False, tests=(CHECK_ADD, "add"))
    assert r.status == "passed", r.stderr
    assert r.stdout.splitlines() == ["fd PermissionError", "mem PermissionError",
                                     "environ PermissionError"]  # fmt: skip


def test_run_tests_needs_a_name_for_the_entry_point():
    with pytest.raises(InputError, match="entry_point"):
        run_tests(ADD, CHECK_ADD, "add(1)")
