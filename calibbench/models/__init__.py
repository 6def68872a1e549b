"""Model runtimes behind one interface (`LanguageModel`), and `load_model` to build one from a
configuration entry.

A model entry (config `models:`) names a runtime and where the weights or the endpoint are:

    {"runtime": "llamacpp", "builtin": "smollm2-135m"}          # GGUF from an installed package
    {"runtime": "llamacpp", "path": "/models/x.gguf"}
    {"runtime": "hf", "builtin": "gemma3-270m"}                  # the same GGUF, via transformers
    {"runtime": "llamacpp", "builtin": "smollm2-135m", "scoring_runtime": "hf"}
                                    # generation via llama.cpp, teacher-forced scoring via
                                    # transformers, on the same weights (`runtime_for`)
    {"runtime": "hf", "hub": "meta-llama/Llama-3.2-1B", "revision": "main"}   # needs network
    {"runtime": "hf", "path": "/models/dir", "gguf_file": "x.gguf"}
    {"runtime": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
     "api_key_env": "OPENAI_API_KEY"}                           # the key's variable, never the key
    {"runtime": "openai", "serve": "smollm2-135m"}   # a local llama.cpp server for the run; its
                                                     # plain sampling (no repeat penalty, top-k
                                                     # or min-p) so greedy means argmax; n_ctx
                                                     # and n_threads (generation and prompt
                                                     # threads) go to the server

Other keys are passed to the runtime's constructor (e.g. n_ctx, batch_size, dtype, timeout);
`calibbench.models.registry` declares, per runtime, which keys locate the model and which options
it takes.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from calibbench.errors import InputError
from calibbench.models.base import (
    Completion,
    GenerationRequest,
    GenerationResult,
    LanguageModel,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelInfo,
    ScoredText,
)
from calibbench.models.builtin import BUILTIN, gguf_path
from calibbench.models.registry import RUNTIMES, runtime_for, runtime_of

__all__ = [
    "BUILTIN",
    "RUNTIMES",
    "Completion",
    "GenerationRequest",
    "GenerationResult",
    "LanguageModel",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "ModelInfo",
    "ScoredText",
    "load_model",
]


def load_model(name: str, spec: dict[str, Any], kind: str | None = None) -> LanguageModel:
    """Build the model `name` from its configuration entry `spec` (see the module docstring):
    the runtime that serves requests of `kind` ("loglikelihood", "score", "generate"; see
    `runtime_for`), or the entry's own `runtime` when `kind` is None."""
    spec = runtime_for(name, spec, kind or "generate")
    runtime = runtime_of(name, spec).name
    spec = {k: v for k, v in spec.items() if k != "runtime"}
    try:
        if runtime == "llamacpp":
            return _llamacpp(name, spec)
        if runtime == "hf":
            return _hf(name, spec)
        return _openai(name, spec)
    except TypeError as exc:
        raise InputError(f"models.{name}: {exc}") from None


def _llamacpp(name: str, spec: dict[str, Any]) -> LanguageModel:
    from calibbench.models.llamacpp import LlamaCppModel

    if "builtin" in spec:
        builtin = spec.pop("builtin")
        return LlamaCppModel.builtin(builtin, **spec) if name == builtin else LlamaCppModel(
            gguf_path(builtin), name=name, family=BUILTIN[builtin].family,
            quantization=BUILTIN[builtin].quantization, **spec,
        )  # fmt: skip
    if "path" not in spec:
        raise InputError(f"models.{name}: a llamacpp model needs 'builtin' or 'path'")
    return LlamaCppModel(spec.pop("path"), name=name, **spec)


def _hf(name: str, spec: dict[str, Any]) -> LanguageModel:
    from calibbench.models.hf import HFModel

    if "builtin" in spec:
        return HFModel.builtin(spec.pop("builtin"), name=name, **spec)
    if "hub" in spec:
        return HFModel(spec.pop("hub"), name=name, **spec)
    if "path" not in spec:
        raise InputError(f"models.{name}: an hf model needs 'builtin', 'hub' or 'path'")
    return HFModel(spec.pop("path"), name=name, **spec)


def _openai(name: str, spec: dict[str, Any]) -> LanguageModel:
    from calibbench.models.openai_compat import OpenAICompatModel

    serve = spec.pop("serve", None)
    if "api_key" in spec:
        raise InputError(
            f"models.{name}.spec.api_key: a key is never written into a configuration (it would "
            "be copied into the run's manifest); put it in an environment variable and name that "
            "variable with api_key_env"
        )
    key_env = spec.pop("api_key_env", None)
    if key_env is not None:
        if not os.environ.get(key_env):
            raise InputError(
                f"models.{name}.spec.api_key_env: the environment variable {key_env} is not set; "
                f"export {key_env}=<your key>"
            )
        spec["api_key"] = os.environ[key_env]
    if serve is None:
        return OpenAICompatModel(name=name, **spec)
    from calibbench.models.llamacpp_server import PLAIN_SAMPLING, LlamaCppServer

    threads = spec.pop("n_threads", None)  # the server's, for generation and prompts alike
    server = LlamaCppServer(
        gguf_path(serve), n_ctx=int(spec.pop("n_ctx", 2048)), n_threads=threads,
        n_threads_batch=threads,
    )  # fmt: skip
    server.start()
    spec.setdefault("extra_body", PLAIN_SAMPLING)
    try:
        model = OpenAICompatModel(base_url=server.base_url, model=serve, name=name, **spec)
        identity = _served_identity(serve)
    except BaseException:
        server.close()
        raise
    return _Served(model, server, identity)


def _served_identity(builtin: str) -> dict[str, Any]:
    """What the API cannot report about a built-in model it serves: family, size, weights hash
    and quantization (the parameter count read from the GGUF file without loading weights)."""
    from llama_cpp import Llama

    from calibbench.models.builtin import file_sha256

    path, entry = gguf_path(builtin), BUILTIN[builtin]
    vocab = Llama(str(path), vocab_only=True, verbose=False)
    try:
        n_parameters = int(vocab._model.n_params())
    finally:
        vocab.close()
    return {"family": entry.family, "n_parameters": n_parameters, "sha256": file_sha256(path),
            "quantization": entry.quantization, "extra": {"served": builtin}}  # fmt: skip


class _Served(LanguageModel):
    """An API model whose local server lives exactly as long as the model; its info adds the
    served built-in's identity to what the API reports."""

    def __init__(self, model: LanguageModel, server: Any, identity: dict[str, Any]):
        self._model = model
        self._server = server
        self._identity = identity

    def info(self) -> ModelInfo:
        info = self._model.info()
        extra = info.extra | self._identity["extra"]
        return replace(
            info, **{k: v for k, v in self._identity.items() if k != "extra"}, extra=extra
        )

    def loglikelihood(self, requests, accumulator=None):  # type: ignore[no-untyped-def]
        return self._model.loglikelihood(requests, accumulator)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        return self._model.generate(requests)

    def score_text(self, texts, accumulator=None):  # type: ignore[no-untyped-def]
        return self._model.score_text(texts, accumulator)

    def close(self) -> None:
        try:
            self._model.close()
        finally:
            self._server.close()
