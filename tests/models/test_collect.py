"""The collection stage on the default model: outputs, resumption after a kill, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from calibbench.artifacts import write_parquet
from calibbench.collect import CollectSettings, collect
from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.models.base import LoglikelihoodRequest
from calibbench.models.llamacpp import LlamaCppModel

pytestmark = pytest.mark.model

SETTINGS = CollectSettings(chunk_size=4, temperatures=(0.8, 1.0, 1.25))


def sentences(n: int) -> list[str]:
    import argparse
    import json as js
    import logging

    text = " ".join((m.__doc__ or "") for m in (js, argparse, logging))
    parts = [s.strip() for s in text.replace("\n", " ").split(". ") if len(s.split()) >= 6]
    return parts[:n]


def loglikelihood_requests(n: int = 22) -> pd.DataFrame:
    rows = []
    for i, s in enumerate(sentences(n)):
        words = s.split()
        cut = len(words) // 2
        rows.append(
            {"request_id": f"r{i:03d}", "kind": "loglikelihood",
             "context": " ".join(words[:cut]), "continuation": " " + " ".join(words[cut:])}
        )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def model():
    with LlamaCppModel.builtin("smollm2-135m", n_ctx=512) as m:
        yield m


def files(out: Path) -> dict[str, bytes]:
    names = ("records.parquet", "token_calibration.npz", "manifest.json")
    return {n: (out / n).read_bytes() for n in names}


def test_collect_writes_one_row_per_request_and_the_accumulator(model, tmp_path):
    req = loglikelihood_requests()
    out = collect(model, req, tmp_path / "a", SETTINGS, progress=False)
    records = pq.read_table(out / "records.parquet").to_pandas()
    assert records["request_id"].tolist() == req["request_id"].tolist()
    pairs = zip(req["context"], req["continuation"], strict=True)
    direct = model.loglikelihood([LoglikelihoodRequest(c, k) for c, k in pairs])
    # the accumulator's float64 sums of the native kernel against direct scoring's float64 sums
    np.testing.assert_allclose(records["logprob"], [r.logprob for r in direct], rtol=1e-7)
    with np.load(out / "token_calibration.npz") as state:
        acc = TokenCalibration.from_state_dict(dict(state))
    assert acc.n_positions == sum(len(r.token_ids) for r in direct)
    metrics = acc.compute()
    # NLL at T = 1 from the accumulator equals the mean token NLL of the records.
    tokens = np.concatenate(records["token_logprobs"].to_numpy())
    assert metrics.nll[1] == pytest.approx(-tokens.mean(), rel=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["sha256"] == model.info().sha256
    assert manifest["n_requests"] == len(req)


class Interrupt(Exception):
    pass


class FailsAfter:
    """The real model, interrupted at its k-th call (as a kill between chunks would)."""

    def __init__(self, model: LlamaCppModel, calls: int):
        self.model, self.calls = model, calls

    def __getattr__(self, name):
        return getattr(self.model, name)

    def loglikelihood(self, requests, accumulator=None):
        self.calls -= 1
        if self.calls < 0:
            raise Interrupt
        return self.model.loglikelihood(requests, accumulator)


def test_resumed_collection_equals_uninterrupted_one(model, tmp_path):
    req = loglikelihood_requests()
    whole = collect(model, req, tmp_path / "whole", SETTINGS, progress=False)
    with pytest.raises(Interrupt):
        collect(FailsAfter(model, 3), req, tmp_path / "resumed", SETTINGS, progress=False)
    chunks = sorted(p.name for p in (tmp_path / "resumed" / "partial").glob("*.parquet"))
    assert chunks == ["00000.parquet", "00001.parquet", "00002.parquet"]
    assert not (tmp_path / "resumed" / "records.parquet").exists()
    calls = FailsAfter(model, 99)
    resumed = collect(calls, req, tmp_path / "resumed", SETTINGS, progress=False)
    assert calls.calls == 99 - 3  # only the three unfinished chunks ran again
    assert files(resumed) == files(whole)
    assert not (tmp_path / "resumed" / "partial").exists()  # scratch removed once finished


def test_killed_process_resumes_to_identical_files(tmp_path):
    req_path = tmp_path / "requests.parquet"
    write_parquet(loglikelihood_requests(), req_path)
    cmd = [sys.executable, "-m", "calibbench", "collect", "--model", "smollm2-135m",
           "--requests", str(req_path), "--chunk-size", "2", "--temperatures", "0.8,1.0",
           "--no-progress", "--out"]  # fmt: skip
    subprocess.run([*cmd, str(tmp_path / "whole")], check=True, timeout=300)
    proc = subprocess.Popen([*cmd, str(tmp_path / "killed")])
    first = tmp_path / "killed" / "partial" / "00001.parquet"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "records.parquet").exists(), "finished before the kill"
    subprocess.run([*cmd, str(tmp_path / "killed")], check=True, timeout=300)
    assert files(tmp_path / "killed") == files(tmp_path / "whole")
    assert not list((tmp_path / "killed").rglob("*.tmp"))  # a write cut by the kill is cleared


def test_other_requests_in_the_same_directory_are_refused(model, tmp_path):
    req = loglikelihood_requests(6)
    collect(model, req, tmp_path / "a", SETTINGS, progress=False)
    other = req.assign(continuation=req["continuation"] + "!")
    with pytest.raises(InputError, match="finished collection of other requests"):
        collect(model, other, tmp_path / "a", SETTINGS, progress=False)
    again = collect(model, req, tmp_path / "a", SETTINGS, progress=False)  # finished: kept
    assert files(again) == files(tmp_path / "a")


def test_scratch_of_other_interrupted_requests_is_discarded(model, tmp_path):
    req = loglikelihood_requests(6)
    with pytest.raises(Interrupt):
        collect(FailsAfter(model, 1), req, tmp_path / "a", SETTINGS, progress=False)
    other = req.assign(continuation=req["continuation"] + "!")
    out = collect(model, other, tmp_path / "a", SETTINGS, progress=False)
    assert files(out) == files(collect(model, other, tmp_path / "b", SETTINGS, progress=False))


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"kind": ["score"], "text": ["a"]}), "no column 'request_id'"),
        (pd.DataFrame({"request_id": ["a"], "kind": ["nope"], "text": ["a"]}), "one of"),
        (pd.DataFrame({"request_id": ["a"], "kind": ["loglikelihood"], "context": ["x"]}),
         "column 'continuation'"),
        (pd.DataFrame({"request_id": ["a", "a"], "kind": ["score"] * 2, "text": ["x", "y"]}),
         "more than once"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_problem(model, tmp_path, frame, match):
    with pytest.raises(InputError, match=match):
        collect(model, frame, tmp_path / "bad", SETTINGS, progress=False)


def test_generation_and_scoring_requests(model, tmp_path):
    gen = pd.DataFrame(
        {"request_id": ["g0", "g1"], "kind": "generate",
         "prompt": ["The capital of France is", "def add(a, b):"],
         "max_tokens": [8, 12], "temperature": [0.0, 0.7], "n": [1, 3], "seed": [0, 5],
         "stop": [["\n"], ["\n\n"]], "top_logprobs": [3, 3]}
    )  # fmt: skip
    out = collect(model, gen, tmp_path / "gen", SETTINGS, progress=False)
    rec = pq.read_table(out / "records.parquet").to_pandas()
    assert [len(t) for t in rec["texts"]] == [1, 3]
    assert all(len(top) == 3 for c in rec["top_logprobs"][1] for top in c)
    with np.load(out / "token_calibration.npz") as state:  # generation feeds no accumulator
        assert list(state.keys()) == []
    assert (out / "timing.parquet").is_file() and not (out / "partial").exists()
    score = pd.DataFrame({"request_id": ["s0"], "kind": "score", "text": [sentences(1)[0]]})
    out = collect(model, score, tmp_path / "score", SETTINGS, progress=False)
    rec = pq.read_table(out / "records.parquet").to_pandas()
    assert len(rec["token_logprobs"][0]) == len(rec["token_ids"][0]) - 1


class Records:
    """The real model, keeping the generation requests `collect` passes it."""

    def __init__(self, model: LlamaCppModel):
        self.model, self.requests = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, requests):
        self.requests += requests
        return self.model.generate(requests)


def test_the_logprobs_column_is_read_and_tables_without_it_read_as_true(model, tmp_path):
    """A request table written before the logprobs column existed reads every request as
    logprobs=True; with the column, each row's value is passed on (a local runtime still
    returns its log-probs, at no extra cost); a value that is not a bool is refused."""
    old = pd.DataFrame(
        {"request_id": ["g0", "g1"], "kind": "generate",
         "prompt": ["The capital of France is", "def add(a, b):"], "max_tokens": [6, 6],
         "stop": [["\n"], ["\n\n"]], "top_logprobs": [0, 0]}
    )  # fmt: skip
    records = {}
    for name, frame in [("old", old), ("new", old.assign(logprobs=[True, False]))]:
        write_parquet(frame, tmp_path / f"{name}.parquet")  # read back as `collect` reads it
        frame = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert ("logprobs" in frame) is (name == "new")
        spy = Records(model)
        out = collect(spy, frame, tmp_path / name, SETTINGS, progress=False)
        assert [r.logprobs for r in spy.requests] == ([True, True] if name == "old" else
                                                      [True, False])  # fmt: skip
        records[name] = pq.read_table(out / "records.parquet").to_pandas()
    for column in ("texts", "tokens", "token_logprobs"):
        assert records["new"][column].map(lambda c: [list(x) for x in c]).tolist() == (
            records["old"][column].map(lambda c: [list(x) for x in c]).tolist()
        )
    assert all(len(lp[0]) > 0 for lp in records["new"]["token_logprobs"])
    with pytest.raises(InputError, match=r"requests\[0\]\.logprobs: expected true or false"):
        collect(model, old.assign(logprobs=["yes", "no"]), tmp_path / "bad", SETTINGS,
                progress=False)  # fmt: skip
