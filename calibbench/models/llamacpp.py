"""GGUF models through llama-cpp-python: the fast path on the CPU.

Logits are read batch by batch straight from llama.cpp's output buffer (n_batch x V floats), never
as an n_ctx x V matrix: the model is created with `logits_all=False` and each decode asks for
logits only at the positions a request needs. Those rows feed the token-level accumulator and the
log-softmax directly. Generation uses calibbench's own sampler on the same rows (temperature, then
nucleus top-p, then a draw from `numpy.random.default_rng(seed)`), so log-probs are those of the
untempered distribution and samples are reproducible.

Every public call starts from an empty KV cache, so its results do not depend on what ran before
(a resumed collection reproduces an uninterrupted one); within a call, requests that share a
prefix with the previous one reuse its KV entries.

Install note: the default native build of llama-cpp-python crashed on this project's VMs with an
illegal AMX instruction at the first decode; the README's install command builds it with
GGML_NATIVE=OFF (see docs/DESIGN.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

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


class LlamaCppModel(LocalRuntime):
    """A GGUF model run by llama.cpp.

    Args:
        model_path: the GGUF file.
        name, family, quantization: how results name the model (defaults from the file).
        n_ctx: context length in tokens (requests longer than this raise InputError).
        n_batch: tokens per decode; bounds the logits buffer to n_batch x V floats.
        n_threads: CPU threads (default: all this process may use).
    """

    def __init__(
        self,
        model_path: str | Path,
        name: str | None = None,
        family: str | None = None,
        quantization: str | None = None,
        n_ctx: int = 2048,
        n_batch: int = 128,
        n_threads: int | None = None,
    ):
        import llama_cpp
        from llama_cpp import Llama

        path = Path(model_path)
        if not path.is_file():
            raise InputError(f"model_path: no GGUF file at {path}")
        threads = n_threads or len(os.sched_getaffinity(0))
        self._llm = Llama(
            str(path),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=False,
        )
        self._path = path
        self._name = name or path.stem
        self._family = family or self._llm.metadata.get("general.architecture", "unknown")
        self._quantization = quantization
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.vocab_size = self._llm.n_vocab()
        self._vocab = self._llm._model
        self._add_bos = bool(self._vocab.add_bos_token())
        self._prefix = self._vocab.token_bos() if self._add_bos else self._vocab.token_eos()
        self._sliding_window = int(llama_cpp.llama_model_n_swa(self._vocab.model)) > 0
        self._kv: list[int] = []

    @classmethod
    def builtin(cls, name: str, **kwargs: object) -> LlamaCppModel:
        """A built-in model by name (`calibbench.models.builtin`)."""
        spec = BUILTIN.get(name)
        path = gguf_path(name)
        return cls(path, name=name, family=spec.family, quantization=spec.quantization, **kwargs)

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self._name,
            family=self._family,
            runtime="llamacpp",
            source=str(self._path),
            vocab_size=self.vocab_size,
            n_parameters=int(self._vocab.n_params()),
            sha256=file_sha256(self._path),
            quantization=self._quantization,
            extra={
                "n_ctx": self.n_ctx,
                "n_batch": self.n_batch,
                "add_bos": self._add_bos,
                "llama_cpp_python": llama_cpp_version(),
            },
        )

    def close(self) -> None:
        self._llm.close()

    # Tokens ----------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as the model sees it: BOS first where the model uses one."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=False)

    def chat_ids(self, message: str) -> list[int]:
        """`message` as the one user turn of the GGUF's chat template (its
        `tokenizer.chat_template`, rendered by llama-cpp-python's Jinja formatter with the
        assistant's turn opened), tokenized with special tokens; BOS first where the model uses
        one and the template did not write it."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise InputError(
                f"{self._name}: the GGUF file has no chat template (tokenizer.chat_template); a "
                "chat request needs an instruction-tuned model"
            )
        piece = self._piece
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=piece(self._vocab.token_eos()).decode("utf-8", errors="replace"),
            bos_token=piece(self._vocab.token_bos()).decode("utf-8", errors="replace"),
            add_generation_prompt=True,
        )
        text = formatter(messages=[{"role": "user", "content": message}]).prompt
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self._vocab.token_bos()
        if self._add_bos and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids

    def _length_limit(self) -> tuple[str, int]:
        return "n_ctx", self.n_ctx

    def _piece(self, token: int) -> bytes:
        return self._llm.detokenize([token])

    # Forward passes --------------------------------------------------------------------------

    def _reset(self) -> None:
        self._llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        self._kv = []

    def _forward(self, ids: Sequence[int], first: int) -> Iterator[tuple[int, np.ndarray]]:
        """Decode `ids`, reusing the KV cache's common prefix (never past `first`), and yield
        (position of the first row, logits (rows, V) float32) covering positions >= first.

        A yielded array is a view of llama.cpp's buffer, valid until the next decode.
        """
        keep = 0
        for a, b in zip(self._kv, ids[:first], strict=False):
            if a != b:
                break
            keep += 1
        if self._sliding_window and keep < len(self._kv):
            # llama.cpp's sliding-window (iSWA) cache does not forget a removed tail: Gemma 3's
            # logits after a shared prefix then differed from a fresh decode by up to 0.13 nats
            # (measured on MMLU prompts). Such models reuse the cache only to extend it.
            keep = 0
        self._llm._ctx.kv_cache_seq_rm(-1, keep, -1)
        self._kv = list(ids[:keep])
        batch = self._llm._batch
        for start in range(keep, len(ids), self.n_batch):
            chunk = list(ids[start : start + self.n_batch])
            batch.set_batch(chunk, n_past=start, logits_all=False)
            flags = [start + i >= first for i in range(len(chunk))]
            for i, flag in enumerate(flags):
                batch.batch.logits[i] = flag
            self._llm._ctx.decode(batch)
            self._kv.extend(chunk)
            n_out = sum(flags)
            if n_out:
                rows = np.ctypeslib.as_array(
                    self._llm._ctx.get_logits(), shape=(n_out * self.vocab_size,)
                ).reshape(n_out, self.vocab_size)
                yield start + flags.index(True), rows

    def _score_positions(
        self, ids: Sequence[int], first: int, accumulator: TokenCalibration | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs (float64) and greedy flags of ids[p + 1] given ids[: p + 1], p >= first."""
        logps, greedy = [], []
        for pos, rows in self._forward(ids, first):
            rows = rows[: len(ids) - 1 - pos]
            if len(rows) == 0:
                continue
            targets = np.asarray(ids[pos + 1 : pos + 1 + len(rows)], dtype=np.int64)
            if accumulator is not None and np.any(accumulator.temperatures == 1.0):
                lp, gr = accumulator.update_scored(rows, targets)
            else:
                if accumulator is not None:
                    accumulator.update(rows, targets)
                lp, gr = target_logprobs(rows, targets)
            logps.append(lp)
            greedy.append(gr)
        if not logps:
            return np.zeros(0), np.zeros(0, dtype=bool)
        return np.concatenate(logps), np.concatenate(greedy)

    # LocalRuntime primitives ------------------------------------------------------------------

    def _loglikelihood_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]], accumulator: TokenCalibration | None
    ) -> list[LoglikelihoodResult]:
        self._reset()
        out = []
        for ctx, cont in pairs:
            ids = ctx + cont
            logp, greedy = self._score_positions(ids, len(ctx) - 1, accumulator)
            out.append(
                LoglikelihoodResult(
                    logprob=float(logp.sum()),
                    is_greedy=bool(greedy.all()),
                    token_ids=tuple(cont),
                    token_logprobs=tuple(logp.tolist()),
                    n_context_tokens=len(ctx),
                )
            )
        return out

    def _score_tokens(
        self, encoded: Sequence[list[int]], accumulator: TokenCalibration | None
    ) -> list[ScoredText]:
        self._reset()
        out = []
        for ids in encoded:
            logp, _ = self._score_positions(ids, 0, accumulator)
            out.append(ScoredText(token_ids=tuple(ids), token_logprobs=tuple(logp.tolist())))
        return out

    def _generate_tokens(
        self, requests: Sequence[GenerationRequest], prompts: Sequence[list[int]]
    ) -> list[GenerationResult]:
        self._reset()
        return [self._generate_one(r, p) for r, p in zip(requests, prompts, strict=True)]

    def _generate_one(self, req: GenerationRequest, prompt: list[int]) -> GenerationResult:
        *_, (_, rows) = self._forward(prompt, len(prompt) - 1)
        prompt_row = rows[-1].copy()
        completions = []
        for k in range(req.n):
            rng = np.random.default_rng(req.seed + k)
            row, ids = prompt_row, list(prompt)
            chosen, logps, tops, finish = [], [], [], "length"
            for _ in range(req.max_tokens):
                token, logp, top = _choose(row, req, rng)
                chosen.append(token)
                logps.append(logp)
                tops.append(top)
                if llama_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                if req.stop and first_stop(self._text(chosen), req.stop) is not None:
                    finish = "stop"
                    break
                ids.append(token)
                *_, (_, rows) = self._forward(ids, len(ids) - 1)
                row = rows[-1]
            completions.append(self._completion(chosen, logps, tops, finish, req.stop))
        return GenerationResult(completions=tuple(completions))

    def _text(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    def _completion(
        self,
        tokens: list[int],
        logps: list[float],
        tops: list[list[tuple[int, float]]],
        finish: str,
        stop: Sequence[str],
    ) -> Completion:
        """Text cut at the stop string or end-of-generation token; tokens, log-probs and
        alternatives through the token that ended generation (see `Completion`)."""
        eog = bool(tokens) and llama_is_eog(self._vocab, tokens[-1])
        text = self._text(tokens[:-1] if eog else tokens)
        cut = first_stop(text, stop)
        if cut is not None:
            text = text[:cut]
        pieces = tuple(self._piece(t).decode("utf-8", errors="replace") for t in tokens)
        return Completion(
            text=text,
            tokens=pieces,
            token_ids=tuple(tokens),
            token_logprobs=tuple(logps),
            top_logprobs=tuple(
                tuple((self._piece(t).decode("utf-8", errors="replace"), lp) for t, lp in top)
                for top in tops
            ),
            finish_reason=finish,
        )


def llama_cpp_version() -> str:
    """The installed llama-cpp-python version (results can differ slightly between versions)."""
    import llama_cpp

    return str(llama_cpp.__version__)


def llama_is_eog(vocab: object, token: int) -> bool:
    """Whether `token` ends generation (end of sequence / turn)."""
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(vocab.vocab, token))  # type: ignore[attr-defined]


def nucleus(p: np.ndarray, top_p: float, first_k: int = 64) -> np.ndarray:
    """Top-p (nucleus) set of probabilities `p` (V,): the shortest prefix of the entries sorted
    by descending p (ties in index order) whose cumulative mass reaches `top_p`, as indices in
    that order.

    Equal to `np.argsort(-p, kind="stable")[:n]` with n from the cumulative sum of the sorted p,
    but partial: it sorts only the k largest entries (k = first_k, doubled until their mass
    reaches top_p), which saves a full sort of a 262k vocabulary at every sampled token.
    """
    n, k = len(p), first_k
    while k < n:
        threshold = np.partition(p, n - k)[n - k]  # the k-th largest value
        top = np.flatnonzero(p >= threshold)  # the sorted prefix's members, ties included
        order = top[np.argsort(-p[top], kind="stable")]
        cum = np.cumsum(p[order])
        if cum[-1] >= top_p:
            return order[: int(np.searchsorted(cum, top_p, side="left")) + 1]
        k *= 2
    order = np.argsort(-p, kind="stable")
    return order[: int(np.searchsorted(np.cumsum(p[order]), top_p, side="left")) + 1]


def _choose(
    row: np.ndarray, req: GenerationRequest, rng: np.random.Generator
) -> tuple[int, float, list[tuple[int, float]]]:
    """Next token from logits `row` (V,): greedy at temperature 0, else temperature then nucleus
    top-p sampling. Returns the token, its log-prob at temperature 1 and the top alternatives."""
    z = row.astype(np.float64)
    logp = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    if req.temperature == 0:
        token = int(np.argmax(z))
    else:
        scaled = (z - z.max()) / req.temperature
        p = np.exp(scaled)
        p /= p.sum()
        keep = nucleus(p, req.top_p)
        token = int(rng.choice(keep, p=p[keep] / p[keep].sum()))
    top: list[tuple[int, float]] = []
    if req.top_logprobs:
        best = np.argpartition(-logp, req.top_logprobs - 1)[: req.top_logprobs]
        best = best[np.argsort(-logp[best], kind="stable")]
        top = [(int(t), float(logp[t])) for t in best]
    return token, float(logp[token]), top
