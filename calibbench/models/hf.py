"""Transformers runtime: any causal LM from a local directory, the Hugging Face hub or a GGUF file.

A GGUF file is dequantised by transformers (on 2 cores ~25 s for SmolLM2-135M, ~70 s for Gemma 3
270M) and the result (float32 weights and the tokenizer) is cached as safetensors under
`~/.cache/calibbench/hf/<first 16 hex digits of the file's SHA-256>/`, written to a temporary
directory and renamed into place, so later loads take seconds and never see half-written files.

Encoding follows lm-evaluation-harness's HFLM: a request's context keeps its tokens, trailing
whitespace of the context moves to the continuation, and the continuation's tokens are those of
encode(context + continuation) after the context's. BOS is prepended exactly when the tokenizer
adds one (Gemma: yes, SmolLM2: no). Sequences are batched with left padding (attention mask and
position ids), so padding does not change scores; logits are computed only at the positions asked
for, and log-probabilities are log_softmax of the logits in float32 (nats).

In a reduced precision (`dtype` bfloat16 or float16) the body of the model runs in that precision
and the output layer in float32: the last hidden state is cast to float32 and multiplied by a
float32 copy of the output weights (untied from the input embeddings), so logits keep float32
resolution (a bfloat16 logit near 16 is only resolved to 0.06); everything else, RoPE
frequencies included, is as transformers loads the model in that precision. On 2 CPU cores with
bfloat16 support (AVX512_BF16) SmolLM2-135M then scores about 2-3 times faster than in float32,
and its token log-probs move by about 0.03 nats on average, less than half of what separates
llama.cpp's and transformers' float32 log-probs of the same GGUF weights (bench/collect.py
measures both speeds).

Log-likelihood requests that share a context (the answer options of a multiple-choice item) score
that context once. The unique contexts are forwarded in batches (left-padded, within batch_size and
max_batch_tokens) with a KV cache; the last context position gives each request's first
continuation token. The other continuation tokens are forwarded after it, one row per request
(right-padded; rows x (context + continuation width) within max_batch_tokens), with that context's
cached keys and values selected for the row, the attention mask the context's followed by the
continuation's, and position ids continuing the context's. A one-token continuation needs no
second pass. The accumulator sees the same (logits, target) rows, once per request, as when every
request is scored on its own (grouped by context, so in another order). This needs a
`DynamicCache` of full-attention and sliding-window layers (Llama, Gemma 3 and most decoder-only
models); for any other cache `HFModel.share_context` is False and each request is forwarded whole,
sharing a pass only when one request's tokens are a prefix of another's (one-token options).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GgufConfig,
    PreTrainedTokenizerBase,
)
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
from transformers.utils.hub import resolve_revision

from calibbench.errors import InputError
from calibbench.metrics.token import TokenCalibration
from calibbench.metrics.token_stats import target_logprobs
from calibbench.models.base import (
    Completion,
    GenerationRequest,
    GenerationResult,
    LocalRuntime,
    LoglikelihoodResult,
    ModelInfo,
    ScoredText,
    first_stop,
)
from calibbench.models.builtin import BUILTIN, file_sha256, gguf_path

#: Where dequantised GGUF models are cached, one directory per file hash.
CACHE_DIR = Path.home() / ".cache" / "calibbench" / "hf"


@dataclass(frozen=True)
class _Job:
    """Score the last len(targets) positions of `inputs`; position j predicts token j + 1."""

    inputs: tuple[int, ...]
    targets: tuple[int, ...]


@dataclass
class _Row:
    """One sequence being generated: a request's prompt and, when sampling, its seed."""

    request: int
    prompt: list[int]
    spec: GenerationRequest
    seed: int | None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)
    stop_at: int | None = None
    eos: bool = False
    finish: str | None = None


def _gguf_quantization(path: Path) -> str:
    """The GGUF file type, e.g. "Q4_1" or "Q4_K_M" (reads the whole header: seconds)."""
    from gguf import GGUFReader, LlamaFileType

    field = GGUFReader(path).fields.get("general.file_type")
    if field is None:
        return "unknown GGUF type"
    return LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_")


def _adapter_identity(path: Path) -> dict[str, str]:
    """Path and SHA-256 of a peft adapter directory's weights (for the model's identity)."""
    weights = sorted(path.glob("adapter_model.*"))
    if not (path / "adapter_config.json").is_file() or not weights:
        raise InputError(
            f"adapter: {path} is not a peft adapter directory (adapter_config.json "
            "and adapter_model.safetensors)"
        )
    return {"path": str(path), "sha256": file_sha256(weights[0])}


def dequantised_dir(path: Path, cache_root: Path = CACHE_DIR) -> Path:
    """Directory holding `path` dequantised as safetensors (converted once, then reused)."""
    digest = file_sha256(path)
    target = cache_root / digest[:16]
    if (target / "calibbench.json").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=cache_root))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            path.parent,
            gguf_file=path.name,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        meta = {"gguf": str(path), "sha256": digest, "quantization": _gguf_quantization(path)}
        (tmp / "calibbench.json").write_text(json.dumps(meta, indent=1))
        os.rename(tmp, target)
    except OSError:
        if not (target / "calibbench.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _top_p_filter(z: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits (V,) with every token outside the smallest set of mass >= top_p set to -inf."""
    if top_p >= 1.0:
        return z
    order = torch.argsort(z, descending=True)
    p = torch.softmax(z[order], dim=-1)
    outside = torch.cumsum(p, dim=-1) - p >= top_p
    return z.index_fill(0, order[outside], float("-inf"))


class HFModel(LocalRuntime):
    """A transformers causal LM.

    Args:
        source: a local model directory, a hub id (needs network unless cached), or, with
            `gguf_file`, the directory holding that GGUF file.
        gguf_file: name of a GGUF file in `source`, dequantised and cached (see module docs).
        revision: hub branch, tag or commit (hub ids only).
        name: calibbench's name for the model (default: the file stem, directory name or hub id).
        device: default "cuda" when available, else "cpu".
        dtype: a torch dtype or its name ("float32", "bfloat16", "float16", "float64");
            default bfloat16 on CUDA, float32 on the CPU. In bfloat16 and float16 the output
            layer stays float32 (see module docs), read from a GGUF file's float32 conversion
            so that it keeps the dequantised weights exactly.
        batch_size: most sequences per forward pass.
        max_batch_tokens: most (padded) tokens per forward pass; bounds memory of the logits,
            about max_batch_tokens x V x 4 bytes when every position is scored.
        max_length: most tokens per sequence (default: the model's context length); longer
            texts, requests or prompts + max_tokens raise InputError.
        cache_dir: where GGUF conversions are cached.
        adapter: a peft (LoRA) adapter directory, e.g. one written by calibration-tuning;
            merged into the weights after loading and recorded in `info().extra`.

    `batch_size` and `max_batch_tokens` are plain attributes and may be changed between calls;
    they change speed and memory, not results (up to floating-point rounding). So is
    `share_context`: True when the model's KV cache lets requests with one context score it once
    (see module docs); set it to False to forward every request whole.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        gguf_file: str | None = None,
        revision: str | None = None,
        name: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 16,
        max_batch_tokens: int = 2048,
        max_length: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        adapter: str | os.PathLike[str] | None = None,
    ):
        if batch_size < 1 or max_batch_tokens < 1:
            raise InputError("batch_size, max_batch_tokens: expected positive integers")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _parse_dtype(dtype) or (
            torch.bfloat16 if self.device.type == "cuda" else torch.float32
        )
        self._sha256: str | None = None
        self._revision: str | None = None
        self._quantization: str | None = None
        load_from, load_revision = self._locate(source, gguf_file, revision, cache_dir)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(load_from, revision=load_revision)
            model = AutoModelForCausalLM.from_pretrained(
                load_from,
                revision=load_revision,
                dtype=self.dtype,
            )
        except OSError as exc:
            raise InputError(
                f"source: could not load {str(source)!r} as a local directory or hub model "
                f"(pass a directory, a hub id with network access, or gguf_file=): {exc}"
            ) from None
        self._adapter = None if adapter is None else _adapter_identity(Path(adapter))
        if adapter is not None:  # merged: inference runs at the base model's speed
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        self._n_parameters = sum(p.numel() for p in model.parameters())  # tied weights once
        if self.dtype in REDUCED:
            model = _float32_output(model, Path(load_from) if gguf_file is not None else None)
        self._model = model.to(self.device).eval()
        config = self._model.config
        self._source = str(source if gguf_file is None else Path(source) / gguf_file)
        local = Path(source).is_dir() and gguf_file is None
        self._name = name or (
            Path(gguf_file).stem if gguf_file else Path(source).name if local else str(source)
        )
        self._model_type = self._family = config.model_type
        self.vocab_size = self._model.get_output_embeddings().weight.shape[0]
        context = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        self.max_length = max_length or context
        if not self.max_length:
            raise InputError("max_length: the model's config has no context length; pass one")
        tok = self._tokenizer
        with_special = tok("a", add_special_tokens=True)["input_ids"]
        plain = tok("a", add_special_tokens=False)["input_ids"]
        bos = tok.bos_token_id
        self._bos = [bos] if bos is not None and with_special[:1] == [bos] != plain[:1] else []
        eos = self._model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self._eos = set(eos) | ({tok.eos_token_id} - {None})
        # lm-eval's prefix token for an empty context: BOS if the tokenizer has one, else EOS.
        self._prefix = bos if bos is not None else tok.eos_token_id
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id or 0
        self.share_context = self._cache_is_shareable()

    @torch.inference_mode()
    def _cache_is_shareable(self) -> bool:
        """Whether the model's KV cache (from a one-token probe) is a DynamicCache of full and
        sliding-window layers, whose rows `_select_rows` can copy without writing to it."""
        probe = torch.tensor([[self._pad]], device=self.device)
        cache = self._model(input_ids=probe, use_cache=True).cache
        return type(cache) is DynamicCache and all(
            type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers
        )

    def _locate(
        self,
        source: str | os.PathLike[str],
        gguf_file: str | None,
        revision: str | None,
        cache_dir: str | os.PathLike[str] | None,
    ) -> tuple[str, str | None]:
        """Where transformers loads from (directory or hub id) and the hub revision to use."""
        path = Path(source)
        if gguf_file is not None:
            file = path / gguf_file
            if not file.is_file():
                raise InputError(f"gguf_file: {file} is not a file; pass the directory as source")
            self._sha256 = file_sha256(file)
            root = Path(cache_dir) if cache_dir is not None else CACHE_DIR
            converted = dequantised_dir(file, root)
            meta = json.loads((converted / "calibbench.json").read_text())
            self._quantization = f"{meta['quantization']} dequantised to {_dtype_name(self.dtype)}"
            if self.dtype in REDUCED:
                self._quantization += " (float32 output layer)"
            return str(converted), None
        if path.is_file():
            raise InputError(
                f"source: {path} is a file; for a GGUF file pass "
                f"HFModel({str(path.parent)!r}, gguf_file={path.name!r})"
            )
        if path.is_dir():
            return str(path), None
        resolved = resolve_revision(str(source), revision)
        commit = getattr(resolved, "resolved", None)
        if commit is None and revision and re.fullmatch(r"[0-9a-f]{40}", revision):
            commit = revision
        self._revision = commit
        return str(source), commit or revision

    @classmethod
    def builtin(cls, name: str, /, **kwargs: object) -> HFModel:
        """A built-in model (see `calibbench.models.builtin`) from its package's GGUF file;
        `kwargs` go to the constructor (`name` defaults to the built-in's name)."""
        path = gguf_path(name)
        model = cls(path.parent, gguf_file=path.name, **{"name": name, **kwargs})
        model._family = BUILTIN[name].family
        return model

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self._name,
            family=self._family,
            runtime="hf",
            source=self._source,
            vocab_size=self.vocab_size,
            n_parameters=self._n_parameters,
            sha256=self._sha256,
            revision=self._revision,
            quantization=self._quantization,
            extra={
                "model_type": self._model_type,
                "device": str(self.device),
                "dtype": _dtype_name(self.dtype),
                "output_dtype": _dtype_name(self._model.get_output_embeddings().weight.dtype),
            }
            | ({"adapter": self._adapter} if self._adapter else {}),
        )

    def close(self) -> None:
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @property
    def model(self) -> torch.nn.Module:
        """The transformers model (e.g. for fine-tuning or inspecting logits directly)."""
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The transformers tokenizer; `tokenize` adds BOS the way this runtime does."""
        return self._tokenizer

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as the model sees it: BOS first where the model uses one."""
        return self._bos + self._encode(text)

    def chat_ids(self, message: str) -> list[int]:
        """`message` as the one user turn of the tokenizer's chat template
        (`apply_chat_template`, the assistant's turn opened); BOS first where the model uses one
        and the template did not write it."""
        if not getattr(self._tokenizer, "chat_template", None):
            raise InputError(
                f"{self._name}: the tokenizer has no chat template; a chat request needs an "
                "instruction-tuned model"
            )
        text = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False
        )
        ids = self._encode(text)
        return ids if ids[: len(self._bos)] == self._bos else self._bos + ids

    def _encode(self, text: str) -> list[int]:
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def _length_limit(self) -> tuple[str, int]:
        return "max_length", self.max_length

    def _forward(
        self, rows: Sequence[Sequence[int]], keep: int, use_cache: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
        """Logits (B, keep, V) of the last `keep` positions of `rows` (left-padded; keep 0 means
        all), with the attention mask, position ids and KV cache to continue from."""
        width = max(len(r) for r in rows)
        ids = torch.tensor([[self._pad] * (width - len(r)) + list(r) for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        ids, mask, positions = (t.to(self.device) for t in (ids, mask, positions))
        out = self._model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            logits_to_keep=keep,
            use_cache=use_cache,
        )
        return out.logits, mask, positions, out.cache

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches, longest first, within batch_size and max_batch_tokens."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        for i in order:
            if batches and (
                len(batches[-1]) < self.batch_size
                and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= self.max_batch_tokens
            ):
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    @torch.inference_mode()
    def _score(
        self, jobs: Sequence[_Job], accumulator: TokenCalibration | None
    ) -> list[tuple[torch.Tensor, bool]]:
        """Per job: log-probs of its targets (float32, CPU) and whether each was the argmax.

        A job whose inputs are a prefix of another job's inputs shares its forward pass (e.g.
        one-token answer options after the same context).
        """
        order = sorted(range(len(jobs)), key=lambda i: jobs[i].inputs)
        owner = list(range(len(jobs)))
        for a, b in zip(reversed(order[:-1]), reversed(order[1:]), strict=True):
            ia, ib = jobs[a].inputs, jobs[b].inputs
            if ib[: len(ia)] == ia:
                owner[a] = owner[b]
        members: dict[int, list[int]] = {}
        for i, o in enumerate(owner):
            members.setdefault(o, []).append(i)
        units = list(members)
        lengths = [len(jobs[u].inputs) for u in units]
        results: dict[int, tuple[torch.Tensor, bool]] = {}
        for batch in self._batches(lengths):
            rows = [jobs[units[b]].inputs for b in batch]
            first = {
                b: min(len(jobs[m].inputs) - len(jobs[m].targets) for m in members[units[b]])
                for b in batch
            }
            keep = max(lengths[b] - first[b] for b in batch)
            logits, *_ = self._forward(rows, keep)
            for row, b in enumerate(batch):
                for m in members[units[b]]:
                    n = len(jobs[m].targets)
                    start = keep - lengths[b] + len(jobs[m].inputs) - n
                    z = logits[row, start : start + n]
                    results[m] = self._score_rows(z, jobs[m].targets, accumulator)
        return [results[i] for i in range(len(jobs))]

    @torch.inference_mode()
    def _score_shared(
        self,
        pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
        accumulator: TokenCalibration | None,
    ) -> list[tuple[torch.Tensor, bool]]:
        """`_score` of (context, continuation) pairs with every unique context forwarded once
        (see module docs): per pair, the continuation's log-probs and whether each was the argmax.
        """
        contexts: dict[tuple[int, ...], list[int]] = {}
        for i, (context, _) in enumerate(pairs):
            contexts.setdefault(tuple(context), []).append(i)
        units = list(contexts)
        results: dict[int, tuple[torch.Tensor, bool]] = {}
        for batch in self._batches([len(u) for u in units]):
            first, mask, positions, cache = self._forward([units[b] for b in batch], 1, True)
            # (row of the context in this batch, pair index) per pair of these contexts
            rows = [(row, i) for row, b in enumerate(batch) for i in contexts[units[b]]]
            for row, i in rows:
                if len(pairs[i][1]) == 1:
                    results[i] = self._score_rows(first[row], pairs[i][1], accumulator)
            long = [(row, i) for row, i in rows if len(pairs[i][1]) > 1]
            width = mask.shape[1]
            for chunk in self._batches([width + len(pairs[i][1]) - 1 for _, i in long]):
                picked = [long[c] for c in chunk]
                logits = self._continue(picked, pairs, mask, positions, cache)
                for k, (row, i) in enumerate(picked):
                    n = len(pairs[i][1])
                    z = torch.cat([first[row], logits[k, : n - 1]])
                    results[i] = self._score_rows(z, pairs[i][1], accumulator)
        return [results[i] for i in range(len(pairs))]

    def _continue(
        self,
        picked: Sequence[tuple[int, int]],
        pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        """Logits (R, W, V) of the continuations of `picked` (row of the context in the batch,
        pair index), all but their last tokens, right-padded to W, after the cached contexts."""
        rows = torch.tensor([row for row, _ in picked], device=self.device)
        tails = [pairs[i][1][:-1] for _, i in picked]
        width = max(len(t) for t in tails)
        ids = torch.tensor([list(t) + [self._pad] * (width - len(t)) for t in tails])
        tail_mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in tails])
        ids, tail_mask = ids.to(self.device), tail_mask.to(self.device)
        out = self._model(
            input_ids=ids,
            attention_mask=torch.cat([mask[rows], tail_mask], dim=1),
            position_ids=positions[rows, -1:] + 1 + torch.arange(width, device=self.device),
            cache=_select_rows(cache, rows),
            use_cache=True,
        )
        return out.logits

    def _score_rows(
        self, z: torch.Tensor, targets: Sequence[int], accumulator: TokenCalibration | None
    ) -> tuple[torch.Tensor, bool]:
        """Log-probs of `targets` under logits z (n, V) and whether each was the argmax; the
        rows go into `accumulator` when given (scored by it when its grid holds 1.0)."""
        y = torch.tensor(targets, device=self.device)
        if accumulator is not None and bool((accumulator.temperatures == 1.0).any()):
            lp, gr = accumulator.update_scored(z, y)
            return torch.from_numpy(lp).float(), bool(gr.all())
        if accumulator is not None:
            accumulator.update(z, y)
        return _target_logprobs(z, y)

    def _loglikelihood_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]], accumulator: TokenCalibration | None
    ) -> list[LoglikelihoodResult]:
        jobs = [
            _Job(tuple(context + continuation)[:-1], tuple(continuation))
            for context, continuation in pairs
        ]
        n_context = [len(context) for context, _ in pairs]
        if self.share_context:
            scores = self._score_shared(pairs, accumulator)
        else:
            scores = self._score(jobs, accumulator)
        return [
            LoglikelihoodResult(
                logprob=float(logp.double().sum()),
                is_greedy=greedy,
                token_ids=job.targets,
                token_logprobs=tuple(logp.tolist()),
                n_context_tokens=n,
            )
            for (logp, greedy), job, n in zip(scores, jobs, n_context, strict=True)
        ]

    def _score_tokens(
        self, encoded: Sequence[list[int]], accumulator: TokenCalibration | None
    ) -> list[ScoredText]:
        scored = [i for i, ids in enumerate(encoded) if len(ids) >= 2]
        jobs = [_Job(tuple(encoded[i][:-1]), tuple(encoded[i][1:])) for i in scored]
        scores = self._score(jobs, accumulator)
        logprobs = {i: tuple(s[0].tolist()) for i, s in zip(scored, scores, strict=True)}
        return [ScoredText(tuple(ids), logprobs.get(i, ())) for i, ids in enumerate(encoded)]

    def _generate_tokens(
        self, requests: Sequence[GenerationRequest], prompts: Sequence[list[int]]
    ) -> list[GenerationResult]:
        """Greedy (temperature 0) or sampled continuations (see `GenerationRequest`).

        Sample k of a request uses a torch generator seeded with seed + k, so each completion is
        reproducible on its own. Log-probs and alternatives are those of the raw logits at
        temperature 1; an end-of-sequence token ends a completion (finish_reason "stop"), is
        kept with its log-prob and is not part of `text`. `tokens` are the tokens decoded one by
        one (a character split across tokens shows as U+FFFD there, never in `text`).
        """
        rows = []
        for i, (r, prompt) in enumerate(zip(requests, prompts, strict=True)):
            seeds = [None] if r.temperature == 0 else [r.seed + k for k in range(r.n)]
            rows += [_Row(i, prompt, r, s) for s in seeds]
        lengths = [len(row.prompt) + row.spec.max_tokens for row in rows]
        for batch in self._batches(lengths):
            self._generate_batch([rows[b] for b in batch])
        completions: list[list[Completion]] = [[] for _ in requests]
        for row in rows:
            done = self._completion(row)
            completions[row.request] += [done] * (row.spec.n if row.seed is None else 1)
        return [GenerationResult(tuple(c)) for c in completions]

    @torch.inference_mode()
    def _generate_batch(self, rows: Sequence[_Row]) -> None:
        """Generate every row of a batch in place, one token per step with a KV cache."""
        generators = [
            None if r.seed is None else torch.Generator(self.device).manual_seed(r.seed)
            for r in rows
        ]
        k = max(r.spec.top_logprobs for r in rows)
        logits, mask, positions, cache = self._forward([r.prompt for r in rows], 1, use_cache=True)
        for _ in range(max(r.spec.max_tokens for r in rows)):
            z = logits[:, -1].float()
            logp = z.log_softmax(-1)
            chosen = z.argmax(-1)
            for b, (r, g) in enumerate(zip(rows, generators, strict=True)):
                if g is not None and r.finish is None:
                    zb = _top_p_filter(z[b] / r.spec.temperature, r.spec.top_p)
                    probs = torch.softmax(zb, dim=-1)
                    chosen[b] = torch.multinomial(probs, 1, generator=g)[0]
            chosen_logp = logp.gather(1, chosen[:, None])[:, 0].tolist()
            top = logp.topk(k, dim=-1) if k else None
            for b, (r, tid) in enumerate(zip(rows, chosen.tolist(), strict=True)):
                if r.finish is not None:
                    continue
                r.ids.append(tid)
                r.logprobs.append(chosen_logp[b])
                if top is not None:
                    pairs = zip(top.indices[b].tolist(), top.values[b].tolist(), strict=True)
                    r.top.append(list(pairs)[: r.spec.top_logprobs])
                if tid in self._eos:
                    r.finish, r.eos = "stop", True
                    continue
                if r.spec.stop:
                    r.stop_at = first_stop(self._decode(r.ids), r.spec.stop)
                if r.stop_at is not None:
                    r.finish = "stop"
                elif len(r.ids) >= r.spec.max_tokens:
                    r.finish = "length"
            if all(r.finish is not None for r in rows):
                break
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            positions = positions[:, -1:] + 1
            out = self._model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )
            logits, cache = out.logits, out.cache

    def _completion(self, row: _Row) -> Completion:
        """The finished row as a Completion: text cut at its stop string or end-of-sequence
        token, tokens and log-probs through the token that ended it (see `Completion`)."""
        ids = row.ids
        text = self._decode(ids[:-1] if row.eos else ids)
        if row.stop_at is not None:
            text = text[: row.stop_at]
        return Completion(
            text=text,
            tokens=tuple(self._decode([t]) for t in ids),
            token_ids=tuple(ids),
            token_logprobs=tuple(row.logprobs),
            top_logprobs=tuple(tuple((self._decode([t]), lp) for t, lp in pos) for pos in row.top),
            finish_reason=row.finish or "length",
        )


def _select_rows(cache: DynamicCache, rows: torch.Tensor) -> DynamicCache:
    """A cache holding batch rows `rows` of `cache` (repeats allowed), leaving `cache` as it was:
    its layers are copied shallowly and their tensors replaced, never written to (dynamic layers
    concatenate on update)."""
    chosen = copy.copy(cache)
    chosen.layers = [copy.copy(layer) for layer in cache.layers]
    chosen.batch_select_indices(rows)
    return chosen


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


#: The precisions in which the output layer stays float32 (see module docs).
REDUCED = (torch.bfloat16, torch.float16)

#: The dtypes a model may run in, by name.
DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype or its name (configuration entries give names)."""
    if dtype is None or dtype in DTYPES.values():
        return dtype  # type: ignore[return-value]
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise InputError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")


class _Float32Output(torch.nn.Linear):
    """The output layer in float32 within a reduced-precision model: casts its input up."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden.float())


def _float32_output(model: torch.nn.Module, stored: Path | None) -> torch.nn.Module:
    """`model` (loaded in a reduced precision) with its output layer in float32: the weights as
    stored in the safetensors files of directory `stored` (a GGUF file's float32 conversion), else
    the loaded ones cast up; untied from the input embeddings. The rest of the model, its buffers
    included (RoPE frequencies stay float32), is as transformers loaded it."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        raise InputError(
            "dtype: bfloat16 and float16 keep the output layer in float32, which needs a linear "
            f"output layer; this model's is {type(head).__name__} (use float32)"
        )
    names = {id(p): n for n, p in model.named_parameters()}  # a tied weight under its first name
    out = _Float32Output(
        head.in_features, head.out_features, bias=head.bias is not None, dtype=torch.float32
    )
    with torch.no_grad():
        out.weight.copy_(_stored_tensor(stored, names[id(head.weight)], head.weight))
        if head.bias is not None:
            out.bias.copy_(_stored_tensor(stored, names[id(head.bias)], head.bias))
    model.set_output_embeddings(out)
    model.config.tie_word_embeddings = False  # nothing may tie the copy back to the embeddings
    return model


def _stored_tensor(directory: Path | None, name: str, loaded: torch.Tensor) -> torch.Tensor:
    """Tensor `name` as stored in `directory`'s safetensors files, or `loaded` where there is no
    directory; raises InputError when the directory does not hold it."""
    if directory is None:
        return loaded
    from safetensors import safe_open

    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as stored:
            if name in stored.keys():
                return stored.get_tensor(name)
    raise InputError(f"{directory}: no tensor {name!r} in its safetensors files")


def _target_logprobs(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """log p(y_i) under softmax(z_i) for logits z (n, V) and targets y (n,), as float32 on the
    CPU, and whether every target is its row's argmax. On the CPU through the streaming numpy
    kernel (no (n, V) temporaries); on other devices with torch."""
    if z.device.type == "cpu" and z.dtype in (torch.float32, torch.float64):
        logp, greedy = target_logprobs(z.numpy(), y.numpy())
        return torch.from_numpy(logp).float(), bool(greedy.all())
    zf = z.float()
    logp = zf.gather(1, y[:, None])[:, 0] - torch.logsumexp(zf, dim=-1)
    return logp.cpu(), bool((z.argmax(-1) == y).all())
