"""The code sandbox: each containment layer shown to hold, and a grader that keeps going.

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
from calibbench.tasks.sandbox import TAIL_CHARS, Limits, _run, run_program

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
