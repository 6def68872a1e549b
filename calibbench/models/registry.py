"""The model runtimes, each declared once: how a configuration entry names its weights or
endpoint, which options the runtime's constructor takes, and what it can measure.

`load_model`, the start-up checks of a workflow configuration (`calibbench.config_checks`) and
the workflow's wiring all read these declarations; a test pins `options` to each runtime's
constructor so the two cannot drift apart. Nothing here imports a runtime (torch, llama.cpp).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibbench.errors import InputError


@dataclass(frozen=True)
class Runtime:
    """A model runtime.

    name: the entry's `runtime` value. sources: keys that locate the model; an entry gives
    exactly one of them (an `openai` entry may give none and use CALIBBENCH_API_BASE). options:
    further keys, passed to the runtime's constructor. full_distributions: the runtime sees whole
    next-token distributions (token-level accumulators, Full-ECE); otherwise only an API's top-k.
    """

    name: str
    sources: tuple[str, ...]
    options: tuple[str, ...]
    full_distributions: bool

    def scores_prompts(self, spec: dict[str, Any]) -> bool:
        """Whether a model of this entry can score given text (option log-likelihoods, P(True)
        follow-ups, language modelling): local runtimes always; an API only through a
        /completions endpoint that echoes prompt log-probs, which OpenAI's chat models and the
        built-in llama.cpp server (misaligned echo for models without BOS) do not give, nor an
        entry with `logprobs: false`."""
        if self.name != "openai":
            return True
        return (
            self.returns_logprobs(spec)
            and spec.get("endpoint", "completions") == "completions"
            and "serve" not in spec
        )

    def returns_logprobs(self, spec: dict[str, Any]) -> bool:
        """Whether a model of this entry returns the log-probs of the tokens it generates (the
        token-level signals): local runtimes always; an API unless its entry sets
        `logprobs: false` (for providers that return none)."""
        return self.name != "openai" or spec.get("logprobs", True) is not False


# fmt: off
RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime(
            "llamacpp",
            sources=("builtin", "path"),
            options=("family", "quantization", "n_ctx", "n_batch", "n_threads"),
            full_distributions=True,
        ),
        Runtime(
            "hf",
            sources=("builtin", "path", "hub"),
            options=(
                "gguf_file", "revision", "device", "dtype", "batch_size", "max_batch_tokens",
                "max_length", "cache_dir", "adapter",
            ),
            full_distributions=True,
        ),
        Runtime(
            "openai",
            sources=("base_url", "serve"),
            options=(
                "model", "api_key_env", "family", "endpoint", "score_top_logprobs", "timeout",
                "max_retries", "backoff", "seed", "extra_body", "n_ctx", "n_threads",
                "concurrency", "logprobs",
            ),
            full_distributions=False,
        ),
    )
}
# fmt: on


#: Request kinds a `scoring_runtime` serves: teacher-forced scoring of given text.
SCORING_KINDS = ("loglikelihood", "score")

#: The names an hf entry's `dtype` may take (calibbench.models.hf.DTYPES).
DTYPE_NAMES = ("float32", "bfloat16", "float16", "float64")


def runtime_for(name: str, spec: dict[str, Any], kind: str) -> dict[str, Any]:
    """The entry that serves requests of `kind` ("loglikelihood", "score" or "generate").

    An entry may name a second runtime for teacher-forced scoring, on the same weights:
    `{"runtime": "llamacpp", "builtin": "smollm2-135m", "scoring_runtime": "hf"}` generates with
    llama.cpp and scores with transformers (on 2 CPU cores transformers scores whole next-token
    distributions about 3 times faster, llama.cpp generates about 3 times faster: bench/collect.py).
    `scoring_runtime` may also be a mapping that gives the scoring runtime's own options, e.g.
    `{"runtime": "hf", "dtype": "bfloat16"}`. The scoring entry keeps the source and the entry's
    options its runtime takes, then the mapping's; a GGUF `path` becomes transformers'
    (directory, gguf_file). Each collection records the identity of the runtime that ran it.
    Raises InputError for a runtime that cannot read the entry's weights.
    """
    scoring, options = _scoring(spec)
    entry = {k: v for k, v in spec.items() if k != "scoring_runtime"}
    if scoring is None or kind not in SCORING_KINDS or scoring == spec.get("runtime"):
        return entry
    problem = scoring_problem(spec)
    if problem:
        raise InputError(f"models.{name}.spec.scoring_runtime: {problem}")
    target = RUNTIMES[scoring]
    routed: dict[str, Any] = {"runtime": scoring}
    if "builtin" in spec:
        routed["builtin"] = spec["builtin"]
    else:
        path = Path(spec["path"])
        routed |= {"path": str(path.parent), "gguf_file": path.name}
    routed |= {k: v for k, v in entry.items() if k in target.options and k not in routed}
    return routed | options


def _scoring(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(runtime name or None, options) of an entry's `scoring_runtime`, a name or a mapping."""
    scoring = spec.get("scoring_runtime")
    if isinstance(scoring, dict):
        return scoring.get("runtime"), {k: v for k, v in scoring.items() if k != "runtime"}
    return scoring, {}


def scoring_problem(spec: dict[str, Any]) -> str | None:
    """Why the entry's `scoring_runtime` cannot serve it, or None when it can (or has none)."""
    scoring, options = _scoring(spec)
    if scoring is None and "scoring_runtime" not in spec:
        return None
    if scoring == spec.get("runtime") and not options:
        return None
    if scoring not in RUNTIMES or not RUNTIMES[scoring].full_distributions:
        local = [r.name for r in RUNTIMES.values() if r.full_distributions]
        return (
            f"expected a local runtime, one of {local}, or a mapping with its runtime and "
            f"options, got {spec['scoring_runtime']!r}"
        )
    if spec.get("runtime") != "llamacpp" or scoring != "hf":
        return (
            "a second runtime for scoring is available for llamacpp entries (scoring_runtime: "
            f"hf), not for {spec.get('runtime')!r} entries"
        )
    if "builtin" not in spec and not str(spec.get("path", "")).endswith(".gguf"):
        return "transformers reads a built-in model or a .gguf path"
    allowed = set(RUNTIMES[scoring].options) - {"gguf_file", "revision", "adapter"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        return f"unknown option(s) {unknown} for runtime {scoring}; options are {sorted(allowed)}"
    return dtype_problem(options)


def dtype_problem(options: dict[str, Any]) -> str | None:
    """Why an hf entry's `dtype` is not one the runtime takes, or None."""
    dtype = options.get("dtype")
    if dtype is None or dtype in DTYPE_NAMES:
        return None
    return f"dtype: expected one of {list(DTYPE_NAMES)}, got {dtype!r}"


def runtime_of(name: str, spec: dict[str, Any]) -> Runtime:
    """The runtime of model `name`'s entry; raises InputError naming the key when unknown."""
    runtime = spec.get("runtime")
    if runtime not in RUNTIMES:
        raise InputError(
            f"models.{name}.spec.runtime: expected one of {sorted(RUNTIMES)}, got {runtime!r}"
        )
    return RUNTIMES[runtime]
