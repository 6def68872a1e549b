"""Starter configurations (`calibbench init`): a commented YAML file for "my model on these
tasks" that runs as written with `snakemake --cores N --configfile <file>`.

The model entry is one of the four kinds a user brings (see README, "Run your own models"): a
local GGUF file (llama.cpp), a local transformers directory, a hub id (needs network), or an
OpenAI-compatible endpoint whose key is read from an environment variable.
"""

from __future__ import annotations

import json
from pathlib import Path

from calibbench.config_checks import is_local
from calibbench.errors import InputError

#: Task entries a starter configuration can name: spec and a comment on what it measures.
STARTER_TASKS: dict[str, tuple[dict[str, object], str]] = {
    "mmlu": ({"task": "mmlu", "format": "cloze"}, "MMLU, 57 subjects (subsets: [...] picks some)"),
    "arc_easy": ({"task": "arc_easy"}, "ARC-Easy (validation split of the offline copy)"),
    "arc_challenge": ({"task": "arc_challenge"}, "ARC-Challenge (validation split)"),
    "openbookqa": ({"task": "openbookqa"}, "OpenBookQA"),
    "commonsense_qa": ({"task": "commonsense_qa", "format": "letter"}, "CommonsenseQA"),
    "hellaswag": ({"task": "hellaswag"}, "HellaSwag"),
    "humaneval": ({"task": "humaneval", "n_samples": 3, "max_tokens": 256},
                  "HumanEval code generation, tests run in calibbench's sandbox"),
    "triviaqa": ({"task": "triviaqa", "n_samples": 3, "num_fewshot": 3},
                 "TriviaQA open-ended QA, with P(True)"),
    "nq_open": ({"task": "nq_open", "n_samples": 3, "num_fewshot": 3}, "Natural Questions (open)"),
    "lm_hellaswag": ({"task": "lm", "source": "hellaswag"},
                     "token-level calibration (Full-ECE) on HellaSwag text"),
}  # fmt: skip
#: Tasks an API model can run: generation only (chat APIs return no prompt log-probs).
GENERATION_TASKS = ("humaneval", "triviaqa", "nq_open")
KINDS = ("gguf", "hf", "hub", "api")


def _model_entry(
    kind: str, source: str, api_model: str | None, api_key_env: str | None
) -> list[str]:
    if kind == "gguf":
        path = Path(source).expanduser().resolve()
        return [
            "    # A local GGUF file, run with llama.cpp on the CPU (or GPU build of llama-cpp).",
            f"    spec: {{runtime: llamacpp, path: {json.dumps(str(path))}, n_ctx: 2048}}",
        ]
    if kind == "hf":
        path = Path(source).expanduser().resolve()
        return [
            "    # A local transformers directory (config.json and weights), run with torch.",
            f"    spec: {{runtime: hf, path: {json.dumps(str(path))}}}",
            "    # gpu: 1   # uncomment on a machine with a CUDA GPU",
        ]
    if kind == "hub":
        return [
            "    # A Hugging Face hub id, downloaded on first use (needs network; a gated model",
            "    # needs its licence accepted and `huggingface-cli login`).",
            f"    spec: {{runtime: hf, hub: {json.dumps(source)}}}",
            "    gpu: 1   # GPUs its collection jobs need; 0 runs on the CPU",
        ]
    if api_model is None:
        raise InputError("--api-model: an API entry needs the model id the endpoint serves")
    if api_key_env is None and not is_local(source):
        api_key_env = "OPENAI_API_KEY"
    key = f", api_key_env: {api_key_env}" if api_key_env else ""
    comment = (
        f"    # the key is read from ${api_key_env} at run time, never written into results"
        if api_key_env
        else "    # a local endpoint: no key (add api_key_env: VAR if it needs one)"
    )
    return [
        "    # An OpenAI-compatible endpoint (chat: the prompt is one user message);",
        comment,
        f"    spec: {{runtime: openai, base_url: {json.dumps(source)}, "
        f"model: {json.dumps(api_model)}{key}, endpoint: chat}}",
    ]


def starter_config(
    kind: str,
    source: str,
    tasks: list[str],
    *,
    name: str,
    model: str = "my-model",
    limit: int = 100,
    api_model: str | None = None,
    api_key_env: str | None = None,
) -> str:
    """The YAML text of a starter configuration (see the module docstring).

    kind: "gguf" (source: a .gguf file), "hf" (a transformers directory), "hub" (a hub id) or
    "api" (source: the endpoint's base URL ending in /v1, with `api_model`, and `api_key_env`,
    the variable holding its key: default OPENAI_API_KEY, none for a local endpoint); tasks:
    names from STARTER_TASKS; limit: items per task (the first ones, split into calibration and
    test halves).
    """
    if kind not in KINDS:
        raise InputError(f"kind: expected one of {KINDS}, got {kind!r}")
    unknown = [t for t in tasks if t not in STARTER_TASKS]
    if unknown or not tasks:
        raise InputError(f"--tasks: unknown {unknown}; choose from {list(STARTER_TASKS)}")
    if kind == "api":
        scored = [t for t in tasks if t not in GENERATION_TASKS]
        if scored:
            raise InputError(
                f"--tasks: an API model runs the generation tasks {list(GENERATION_TASKS)} only "
                f"(chat endpoints return no prompt log-probs); drop {scored}"
            )
    if limit < 2:
        raise InputError(f"--limit: needs at least 2 items per task, got {limit}")
    lines = [
        f"# calibbench configuration '{name}', written by `calibbench init`.",
        f"# Run it:  snakemake --cores 2 --configfile <this file>   -> runs/{name}/",
        "# Every key is described in workflows/schemas/config.schema.yaml and the README.",
        f"name: {name}",
        "seed: 0                      # every random choice (splits, sampling, bootstrap)",
        "n_bins: 15                   # confidence bins of ECE and the reliability diagrams",
        "bootstrap_resamples: 1000    # resamples of every 95 % interval",
        "ci_level: 0.95",
        "calibration_fraction: 0.5    # share of each task's items the methods are fitted on",
        "# Token-level temperature grid of the sweep and the one-pass temperature fit (has 1.0).",
        "temperatures: [0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0]",
        "# Recalibration methods fitted on the calibration half, scored on the test half.",
        "methods: [raw, temperature, platt, isotonic, histogram, beta]",
        "collect_chunk_size: 16       # requests per resumable chunk of a collection",
        "",
        "models:",
        f"  {model}:",
        *_model_entry(kind, source, api_model, api_key_env),
        "",
        f"# The first {limit} items of each task (remove `limit` to run a task in full).",
        "tasks:",
    ]
    for task in tasks:
        spec, comment = STARTER_TASKS[task]
        flow = ", ".join(f"{k}: {json.dumps(v)}" for k, v in spec.items())
        lines += [f"  {task}:  # {comment}", f"    spec: {{{flow}}}", f"    limit: {limit}"]
    return "\n".join(lines) + "\n"
