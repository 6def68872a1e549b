"""Benchmark: the API path at 1 and N requests in flight (`OpenAICompatModel(concurrency=N)`).

    python bench/api.py           # 48 sampled completions of 16 tokens, 8 prompts
    python bench/api.py --quick   # a few, for a smoke run (writes nothing)

Against a local llama.cpp server (llama-cpp-python's, serving SmolLM2-135M: it computes one
request at a time, so concurrency cannot help there beyond overlapping the HTTP work), against
the same server behind a proxy that holds every answer for LATENCY_S, as a remote API's network
and queueing latency does, and against a stub that answers every request at once with a canned
completion, which leaves the client's own cost per request (HTTP, JSON, parsing). The proxy and
the stub speak HTTP/1.1, so a client may keep its connections open. Reports requests/s, ms per
request and the speed-up over one request at a time, and checks that every concurrency returned
the same completions. Writes bench/results/api.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibbench.models.base import GenerationRequest
from calibbench.models.builtin import gguf_path
from calibbench.models.llamacpp_server import PLAIN_SAMPLING, LlamaCppServer
from calibbench.models.openai_compat import OpenAICompatModel
from harness import machine_info, markdown_table, write_results

LATENCY_S = 0.25
CONCURRENCY = (1, 4, 16)
#: The stub's answer to every /completions request.
CANNED = {"choices": [{"index": 0, "text": " Paris", "finish_reason": "length",
                       "logprobs": {"tokens": [" Paris"], "token_logprobs": [-0.25],
                                    "top_logprobs": [{" Paris": -0.25, " the": -2.5}],
                                    "text_offset": [24]}}]}  # fmt: skip


class _KeepAlive(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler that answers JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a remote API allows
    # the headers and the body go out in two writes: with Nagle's algorithm the body waits for
    # the client's delayed ACK (40 ms) on a kept connection; servers (uvicorn) switch it off too
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Proxy(_KeepAlive):
    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        self._forward(self.rfile.read(int(self.headers["Content-Length"])))

    def _forward(self, body: bytes | None) -> None:
        server: LatencyProxy = self.server  # type: ignore[assignment]
        time.sleep(server.latency)
        request = urllib.request.Request(server.upstream + self.path, data=body,
                                         headers={"Content-Type": "application/json"},
                                         method=self.command)  # fmt: skip
        with urllib.request.urlopen(request) as response:
            self._answer(response.read())


class _Canned(_KeepAlive):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(json.dumps(CANNED).encode())


class _LocalServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 (a free port), serving from a daemon thread."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class LatencyProxy(_LocalServer):
    """An HTTP proxy to `upstream` (an origin) that waits `latency` s per request."""

    def __init__(self, upstream: str, latency: float):
        self.upstream, self.latency = upstream, latency
        super().__init__(_Proxy)


class CannedServer(_LocalServer):
    """An HTTP server that answers every POST at once with `CANNED`."""

    def __init__(self) -> None:
        super().__init__(_Canned)


def requests(n_prompts: int, n: int, max_tokens: int) -> list[GenerationRequest]:
    stems = ("Once upon a time", "The capital of France is", "def add(a, b):", "My name is",
             "The best way to learn", "In 1905, Einstein", "Water boils at",
             "Dear diary,")  # fmt: skip
    return [GenerationRequest(stems[i % len(stems)], max_tokens=max_tokens, temperature=1.0,
                              n=n, seed=10 * i) for i in range(n_prompts)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few requests; writes nothing")
    args = parser.parse_args()
    batch = requests(2, 2, 4) if args.quick else requests(8, 6, 16)
    canned_batch = requests(8, 4, 1) if args.quick else requests(100, 10, 1)
    rows: list[dict[str, Any]] = []
    with LlamaCppServer(gguf_path("smollm2-135m"), n_ctx=512) as server:
        proxy = LatencyProxy(server.base_url.removesuffix("/v1"), LATENCY_S)
        stub = CannedServer()
        slow = f"same, behind {LATENCY_S * 1000:.0f} ms latency"
        for where, url, work in (("local llama.cpp server", server.base_url, batch),
                                 (slow, proxy.base_url, batch),
                                 ("stub, canned answer at once", stub.base_url,
                                  canned_batch)):  # fmt: skip
            reference = None
            n_requests = sum(r.n for r in work)
            for concurrency in CONCURRENCY:
                model = OpenAICompatModel(url, model="m" if work is canned_batch else None,
                                          extra_body=PLAIN_SAMPLING,
                                          concurrency=concurrency)  # fmt: skip
                model.generate(work[:1])  # warm: model id, connection
                start = time.perf_counter()
                results = model.generate(work)
                seconds = time.perf_counter() - start
                model.close()
                texts = [c.text for r in results for c in r.completions]
                reference = reference or texts
                rows.append({"server": where, "concurrency": concurrency, "requests": n_requests,
                             "seconds": seconds, "requests/s": n_requests / seconds,
                             "ms/request": 1000 * seconds / n_requests,
                             "same completions": texts == reference})  # fmt: skip
        proxy.shutdown()
        stub.shutdown()
    for row in rows:
        first = next(r for r in rows if r["server"] == row["server"])
        row["speed-up"] = first["seconds"] / row["seconds"]
    columns = ("server", "concurrency", "requests", "seconds", "requests/s", "ms/request",
               "speed-up", "same completions")  # fmt: skip
    table = markdown_table(rows, columns)
    print(table)
    if not all(r["same completions"] for r in rows):
        sys.exit("bench/api.py: the completions depend on the concurrency")
    notes = (
        "`python bench/api.py`: sampled completions (temperature 1, 16 tokens, 8 prompts x 6 "
        "samples, one request each with its own seed) through `OpenAICompatModel` at each "
        "concurrency, against llama-cpp-python's server (SmolLM2-135M, which computes one "
        f"request at a time) and the same server behind a proxy holding each answer "
        f"{LATENCY_S} s, as a remote API's latency does; then 1000 one-token requests (100 "
        "prompts x 10 samples) against a stub that answers each at once with a canned "
        "completion: the client's own cost per request. The proxy and the stub speak HTTP/1.1 "
        "(keep-alive). 'same completions': every concurrency returned the texts of "
        "concurrency 1."
    )
    if not args.quick:
        write_results("api", table, {"machine": machine_info(), "rows": rows}, notes)


if __name__ == "__main__":
    main()
