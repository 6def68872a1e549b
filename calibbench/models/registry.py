"""The model runtimes, each declared once: how a configuration entry names its weights or
endpoint, which options the runtime's constructor takes, and what it can measure.

`load_model`, the start-up checks of a workflow configuration (`calibbench.config_checks`) and
the workflow's wiring all read these declarations; a test pins `options` to each runtime's
constructor so the two cannot drift apart. Nothing here imports a runtime (torch, llama.cpp).
"""

from __future__ import annotations

from dataclasses import dataclass
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
        built-in llama.cpp server (misaligned echo for models without BOS) do not give."""
        if self.name != "openai":
            return True
        return spec.get("endpoint", "completions") == "completions" and "serve" not in spec


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
                "max_retries", "backoff", "seed", "extra_body", "n_ctx", "concurrency",
            ),
            full_distributions=False,
        ),
    )
}
# fmt: on


def runtime_of(name: str, spec: dict[str, Any]) -> Runtime:
    """The runtime of model `name`'s entry; raises InputError naming the key when unknown."""
    runtime = spec.get("runtime")
    if runtime not in RUNTIMES:
        raise InputError(
            f"models.{name}.spec.runtime: expected one of {sorted(RUNTIMES)}, got {runtime!r}"
        )
    return RUNTIMES[runtime]
