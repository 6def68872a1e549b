"""A local llama.cpp OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`) in a
subprocess, for `OpenAICompatModel` to talk to.

The server runs with `--logits_all True` (needed for log-probs) and listens on 127.0.0.1 on a
free port. Two behaviours of llama-cpp-python's server to know (seen with 0.3.x):

- Its sampling defaults are not OpenAI's: repeat penalty 1.1, top-k 40, min-p 0.05 apply unless
  a request overrides them; pass `PLAIN_SAMPLING` as `OpenAICompatModel(extra_body=...)` so that
  temperature and top_p alone shape the samples. The reported log-probs are unaffected.
- For models without a BOS token (SmolLM2) its echoed prompt log-probs are off by one position
  (abetlen/llama-cpp-python#1983); `OpenAICompatModel` detects this and refuses to score.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from calibbench.errors import InputError

#: Request fields that switch off llama-cpp-python's server-side sampling defaults.
PLAIN_SAMPLING = {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0}

#: Lines of the server log quoted in a start-up error.
LOG_TAIL_LINES = 30


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LlamaCppServer:
    """`python -m llama_cpp.server` serving one GGUF file, as a context manager.

    Args:
        model: path of the GGUF file.
        n_ctx: context size in tokens.
        n_threads: generation threads (None: the server's default, half the CPU count).
        n_threads_batch: prompt-processing threads (None: the server's default, the CPU count).
        port: listen port (None: a free one); the host is always 127.0.0.1.
        log_path: where the server's stdout and stderr go (None: a temporary file, deleted on
            close).
        startup_timeout: seconds to wait for `GET /v1/models` to answer.
        extra_args: further command-line arguments, e.g. ("--model_alias", "smollm2").

    `start()` (or entering the context) returns once the server answers; `base_url` is then
    "http://127.0.0.1:PORT/v1". `close()` terminates it, killing it after 10 s. A server that
    exits or does not answer in time raises `InputError` quoting the end of its log.
    """

    def __init__(
        self,
        model: str | Path,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        port: int | None = None,
        log_path: str | Path | None = None,
        startup_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
    ):
        self.model = Path(model)
        if not self.model.is_file():
            raise InputError(f"model: no GGUF file at {self.model}")
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_threads_batch = n_threads_batch
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self._temporary_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, "http://127.0.0.1:PORT/v1"."""
        if self._process is None:
            raise InputError("LlamaCppServer: not started; use it as a context manager")
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line."""
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
            "--logits_all", "True",
        ]  # fmt: skip
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        if self.n_threads_batch is not None:
            cmd += ["--n_threads_batch", str(self.n_threads_batch)]
        return cmd + list(self.extra_args)

    def start(self) -> LlamaCppServer:
        """Start the server and wait until it answers."""
        if self._process is not None:
            return self
        if self.port is None:
            self.port = free_port()
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            self.log_path = Path(name)
            self._log = open(handle, "wb")
        else:
            self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close(keep_log=True)
            raise
        return self

    def _wait_ready(self) -> None:
        url = f"http://127.0.0.1:{self.port}/v1/models"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise InputError(
                    f"llama.cpp server for {self.model} exited with code {code} before answering "
                    f"{url}; end of its log ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    response.read()
                return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise InputError(
                    f"llama.cpp server for {self.model} did not answer {url} within "
                    f"{self.startup_timeout} s (raise startup_timeout if the model is large); "
                    f"end of its log ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last `lines` lines of the server log."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self, keep_log: bool = False) -> None:
        """Stop the server (terminate, then kill after 10 s); a temporary log is deleted unless
        `keep_log`."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
            if self._temporary_log and not keep_log and self.log_path is not None:
                self.log_path.unlink(missing_ok=True)
                self.log_path = None

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
