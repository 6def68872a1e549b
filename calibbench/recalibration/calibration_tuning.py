"""Calibration-tuning (Kapoor et al. 2024): teach a model to say whether its own answer is right.

Each calibration item becomes one training example: the task's prompt, the model's own answer,
and an uncertainty query appended after it (`QUERY`), whose answer is one of two single tokens
(" yes" / " no"). The confidence is P(yes) renormalised over the two choice tokens at the last
position. Three ways to get it, all from the same query:

- zero-shot P(True): the untouched model (no training);
- probe: L2-regularised logistic regression on the untouched model's last hidden state at the
  query's last position (cheap, often strong);
- calibration-tuned: a LoRA adapter (r = 8, alpha = 32, dropout 0.1 on the attention
  projections; AdamW, lr 1e-4, cosine schedule, as in activatedgeek/calibration-tuning) trained
  with loss = cross-entropy of the correctness label over the two choice logits
  + kl_weight * KL(p_base || p_tuned) over the next-token distributions at the answer's tokens,
  so the model's answers themselves do not drift; optionally a temperature on the tuned yes/no
  logit, fitted on a held-out part of the calibration items.

Only calibration items are ever trained or fitted on; test items are only scored. The adapter is
saved in peft format with the configuration and the hash of the training data.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.special import expit

from calibbench.errors import InputError
from calibbench.recalibration.logistic import fit_logistic

QUERY = "\n\nIs the proposed answer correct? Answer yes or no.\nAnswer:"
CHOICES = (" yes", " no")


@dataclass(frozen=True)
class TuningConfig:
    """Hyper-parameters of a calibration-tuning run (defaults as in the paper's code where it
    gives them; epochs and batch size sized for a CPU)."""

    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    # attention projections: separate (Llama, Gemma, SmolLM2, Qwen) or fused (Phi-3: qkv_proj)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj")
    learning_rate: float = 1e-4
    epochs: int = 3
    batch_size: int = 8
    kl_weight: float = 1.0
    max_length: int = 512
    heldout_fraction: float = 0.2
    probe_l2: float = 1.0
    seed: int = 0


def examples_hash(texts: Sequence[str], labels: Sequence[bool]) -> str:
    """SHA-256 of the training examples (texts and labels, in order)."""
    data = json.dumps([[t, bool(y)] for t, y in zip(texts, labels, strict=True)])
    return hashlib.sha256(data.encode()).hexdigest()


class QueryScorer:
    """A causal LM with the uncertainty query: yes/no logits, hidden states and training."""

    def __init__(self, model: Any, tokenizer: Any, config: TuningConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        ids = [tokenizer(c, add_special_tokens=False).input_ids for c in CHOICES]
        if any(len(i) != 1 for i in ids):
            raise InputError(f"calibration tuning: the choices {CHOICES} must be single tokens")
        self.choice_ids = [i[0] for i in ids]
        self.query_ids = tokenizer(QUERY, add_special_tokens=False).input_ids

    def encode(self, texts: Sequence[str]) -> list[tuple[list[int], int]]:
        """Token ids of text + QUERY and the number of tokens before the query."""
        out = []
        bos = [self.tokenizer.bos_token_id] if self._adds_bos() else []
        for i, text in enumerate(texts):
            body = bos + self.tokenizer(text, add_special_tokens=False).input_ids
            ids = (body + self.query_ids)[-self.config.max_length :]
            if len(ids) < len(body) + len(self.query_ids):
                raise InputError(f"calibration tuning: example {i} exceeds max_length")
            out.append((ids, len(body)))
        return out

    def _adds_bos(self) -> bool:
        probe = self.tokenizer("a").input_ids
        return bool(probe) and probe[0] == self.tokenizer.bos_token_id

    def _batch(self, encoded: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        ids = torch.tensor([[pad] * (width - len(i)) + i for i, _ in encoded])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i, _ in encoded])
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}

    def forward(
        self,
        encoded: Sequence[tuple[list[int], int]],
        hidden: bool = False,
        keep: int | torch.Tensor = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of a left-padded batch, and its last hidden state (B, L, H) if asked.

        `keep` is transformers' `logits_to_keep`: 0 gives the logits at every position
        (B, L, V), k > 0 at the last k (B, k, V), a (B, L) boolean mask at its True positions,
        flattened row by row (M, V); the output layer only runs where they are kept."""
        out = self.model(
            **self._batch(encoded), output_hidden_states=hidden, logits_to_keep=keep,
            use_cache=False,
        )  # fmt: skip
        return out.logits, (out.hidden_states[-1] if hidden else None)

    def yes_no_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 2) logits of " yes" and " no" at the last position."""
        return logits[:, -1, self.choice_ids]

    def query_scores(
        self, encoded: Sequence[tuple[list[int], int]], hidden: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 2) yes/no logits at the query's last position and, if asked, the last hidden
        state there (N, H), in the order of `encoded`. Inference only: batches of similar
        lengths (little padding) and the output layer at the last position only."""
        yes_no = np.empty((len(encoded), 2), dtype=np.float32)
        features: np.ndarray | None = None
        lengths = [len(ids) for ids, _ in encoded]
        with torch.inference_mode():
            for batch in sorted_batches(lengths, self.config.batch_size):
                logits, states = self.forward([encoded[i] for i in batch], hidden, keep=1)
                yes_no[batch] = self.yes_no_logits(logits).float().numpy()
                if states is not None:
                    if features is None:
                        features = np.empty((len(encoded), states.shape[-1]), dtype=np.float32)
                    features[batch] = states[:, -1].float().numpy()
        return yes_no, features

    def answer_logprobs(self, encoded: Sequence[tuple[list[int], int]]) -> torch.Tensor:
        """(M, V) next-token log-probabilities at the M answer positions of the batch (see
        `_answer_mask`), row by row, without gradients: the KL term's reference."""
        mask = self._answer_mask(encoded, max(len(ids) for ids, _ in encoded))
        with torch.no_grad():
            logits, _ = self.forward(encoded, keep=mask)
            return F.log_softmax(logits.float(), dim=-1)

    def loss(
        self,
        encoded: Sequence[tuple[list[int], int]],
        labels: torch.Tensor,
        base_logprobs: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, query cross-entropy, KL) of a batch; `base_logprobs` are the frozen model's
        `answer_logprobs` of the same batch (None: no KL term). The output layer runs only at
        the answer positions and the last one."""
        width = max(len(ids) for ids, _ in encoded)
        answers = self._answer_mask(encoded, width)
        last = torch.zeros_like(answers)
        last[:, -1] = True
        logits, _ = self.forward(encoded, keep=answers | last)
        at_last = last[answers | last]  # which kept rows are last positions
        target = (~labels).long()  # index 0 = " yes" = correct
        ce = F.cross_entropy(logits[at_last][:, self.choice_ids], target)
        if base_logprobs is None or self.config.kl_weight == 0:
            return ce, ce.detach(), torch.zeros(())
        kl = answer_kl(base_logprobs, logits[~at_last])
        return ce + self.config.kl_weight * kl, ce.detach(), kl.detach()

    @staticmethod
    def _answer_mask(encoded: Sequence[tuple[list[int], int]], width: int) -> torch.Tensor:
        """(B, L) True at positions predicting the answer's tokens (before the query)."""
        mask = torch.zeros(len(encoded), width, dtype=torch.bool)
        for row, (ids, n_body) in enumerate(encoded):
            start = width - len(ids)
            mask[row, start : start + n_body - 1] = True
        return mask


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices into `lengths` cut into batches of `batch_size` after a stable sort by length,
    so that a left-padded batch is mostly tokens."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def length_grouped_batches(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Training batches of similar lengths, as transformers' length-grouped sampler does:
    the shuffled `order` is cut into mega-batches of 50 batches, each is sorted by length
    (stable) and cut into batches, and the batches are shuffled by `rng`. Every index of
    `order` is in exactly one batch, and there are ceil(len(order) / batch_size) batches."""
    mega = 50 * batch_size
    batches = []
    for s in range(0, len(order), mega):
        group = order[s : s + mega]
        group = group[np.argsort(lengths[group], kind="stable")]
        batches += [group[b : b + batch_size] for b in range(0, len(group), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def answer_kl(base_logprobs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over the M positions of KL(p_base || p) of the next-token distributions (nats),
    from the base log-probabilities (M, V) and the tuned logits (M, V)."""
    if base_logprobs.shape[0] == 0:
        return torch.zeros(())
    tuned = F.log_softmax(logits.float(), dim=-1)
    return (base_logprobs.exp() * (base_logprobs - tuned)).sum(-1).mean()


def p_yes(yes_no: np.ndarray) -> np.ndarray:
    """P(yes) renormalised over the two choices, from (N, 2) logits."""
    return expit(yes_no[:, 0] - yes_no[:, 1])


def fit_binary_temperature(margin: np.ndarray, correct: np.ndarray) -> float:
    """T minimising the NLL of sigmoid(margin / T) against the outcomes (bounded search)."""

    def nll(log_t: float) -> float:
        z = margin / math.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, z) - correct * z))

    return float(math.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


@dataclass
class TuningResult:
    """Per scored item the confidences of each variant, and what produced them."""

    confidences: pd.DataFrame
    training: dict[str, Any]


def examples(kind: str, items: pd.DataFrame, graded: pd.DataFrame) -> pd.DataFrame:
    """item_id, text (the prompt with the model's own answer) and correct, for the items of a
    multiple-choice task (context + the chosen option) or an open-ended QA task ("Question: ...
    Answer: <greedy answer>")."""
    merged = items.merge(graded, on="item_id", how="inner")
    if kind == "multiple_choice":
        text = [
            c + opts[p]
            for c, opts, p in zip(merged.context, merged.choices, merged.pred, strict=True)
        ]
    elif kind == "qa":
        text = [
            f"Question: {q}\nAnswer: {a}"
            for q, a in zip(merged.question, merged.answer, strict=True)
        ]
    else:
        raise InputError(f"calibration tuning supports multiple-choice and QA tasks, not {kind!r}")
    return pd.DataFrame(
        {"item_id": merged.item_id, "text": text, "correct": merged.correct.astype(bool)}
    )


def run(
    scorer: QueryScorer,
    train_texts: Sequence[str],
    train_correct: Sequence[bool],
    test_texts: Sequence[str],
    test_ids: Sequence[str],
    adapter_dir: Path | None = None,
) -> TuningResult:
    """Zero-shot P(True), probe, LoRA tuning (+ temperature) trained on the calibration items
    (train_*) and scored on the test items; see the module docstring."""
    cfg = scorer.config
    y = np.asarray(train_correct, dtype=bool)
    if len(y) < 10 or y.all() or not y.any():
        raise InputError(
            "calibration tuning needs at least 10 calibration items with both correct and wrong "
            f"answers (got {len(y)}, {int(y.sum())} correct)"
        )
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_enc, test_enc = scorer.encode(train_texts), scorer.encode(test_texts)

    scorer.model.eval()
    _, train_h = scorer.query_scores(train_enc, hidden=True)
    test_yn, test_h = scorer.query_scores(test_enc, hidden=True)
    mean, std = train_h.mean(0), train_h.std(0) + 1e-6
    probe = fit_logistic((train_h - mean) / std, y.astype(float), ridge=cfg.probe_l2)
    probe_conf = expit((test_h - mean) / std @ probe[:-1] + probe[-1])

    order = rng.permutation(len(y))
    n_held = max(2, round(cfg.heldout_fraction * len(y)))
    held, fit_idx = order[:n_held], order[n_held:]
    peft, tuner, history = _train_lora(scorer, train_enc, y, fit_idx, rng)
    held_margin = _margins(tuner.query_scores([train_enc[i] for i in held])[0])
    temperature = fit_binary_temperature(held_margin, y[held].astype(float))
    test_margin = _margins(tuner.query_scores(test_enc)[0])
    confidences = pd.DataFrame({
        "item_id": list(test_ids),
        "zero_shot": p_yes(test_yn),
        "probe": probe_conf,
        "tuned": expit(test_margin),
        "tuned_temperature": expit(test_margin / temperature),
    })  # fmt: skip
    training = {
        "config": asdict(cfg),
        "n_train": len(fit_idx),
        "n_heldout": len(held),
        "data_sha256": examples_hash(train_texts, train_correct),
        "temperature": temperature,
        "history": history,
        "query": QUERY,
        "choices": list(CHOICES),
    }
    if adapter_dir is not None:
        peft.save_pretrained(str(adapter_dir))
        (adapter_dir / "calibbench.json").write_text(json.dumps(training, indent=2, sort_keys=True))
    peft.unload()  # give the caller's model back without the LoRA layers
    return TuningResult(confidences, training)


def _train_lora(
    scorer: QueryScorer,
    train_enc: list,
    y: np.ndarray,
    fit_idx: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Any, QueryScorer, list[dict[str, Any]]]:
    """LoRA on the items `fit_idx` of `train_enc` (labels y), AdamW with a cosine schedule,
    in length-grouped batches (`length_grouped_batches`) of `fit_idx`'s order in the first
    epoch and of a new shuffle by `rng` in each later one; returns the peft model (in eval
    mode), its scorer and the loss history (one entry per step)."""
    from peft import LoraConfig, get_peft_model

    cfg = scorer.config
    peft = get_peft_model(
        scorer.model,
        LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                   target_modules=list(cfg.target_modules), task_type="CAUSAL_LM"),
    )  # fmt: skip
    tuner = QueryScorer(peft, scorer.tokenizer, cfg)
    steps = cfg.epochs * math.ceil(len(fit_idx) / cfg.batch_size)
    optimiser = torch.optim.AdamW(
        [p for p in peft.parameters() if p.requires_grad], lr=cfg.learning_rate
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, steps))
    lengths = np.array([len(ids) for ids, _ in train_enc])
    history = []
    peft.train()
    for epoch in range(cfg.epochs):
        order = fit_idx if epoch == 0 else rng.permutation(fit_idx)
        for batch in length_grouped_batches(order, lengths, cfg.batch_size, rng):
            enc = [train_enc[i] for i in batch]
            base = None
            if cfg.kl_weight != 0:
                with peft.disable_adapter():
                    base = tuner.answer_logprobs(enc)
            total, ce, kl = tuner.loss(enc, torch.from_numpy(y[batch]), base)
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
            schedule.step()
            history.append({"epoch": epoch, "loss": total.item(), "ce": ce.item(), "kl": kl.item()})
    peft.eval()
    return peft, tuner, history


def _margins(yes_no: np.ndarray) -> np.ndarray:
    """logit(P(yes)) - logit(P(no)) per item, (N,), from (N, 2) logits."""
    return yes_no[:, 0] - yes_no[:, 1]


def evaluate(
    result: TuningResult,
    graded: pd.DataFrame,
    n_bins: int = 15,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Test-split summaries (with bootstrap intervals) of the raw confidence and of each
    variant, the best one as in the protocol, and the training record (JSON-ready)."""
    from calibbench.metrics.summary import answer_summary
    from calibbench.recalibration.protocol import best_method

    scored = result.confidences.merge(graded[["item_id", "correct", "confidence"]], on="item_id")
    y = scored["correct"].to_numpy(bool)
    methods: dict[str, Any] = {}
    for name in ("raw", "zero_shot", "probe", "tuned", "tuned_temperature"):
        column = "confidence" if name == "raw" else name
        usable = scored[column].notna().to_numpy()
        methods[name] = {"summary": answer_summary(
            scored[column].to_numpy(np.float64)[usable], y[usable], n_bins=n_bins,
            n_resamples=n_resamples, level=level, seed=seed,
        )}  # fmt: skip
    return {"methods": methods, "best": best_method(methods), "training": result.training}
