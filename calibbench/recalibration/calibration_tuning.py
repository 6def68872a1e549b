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

    def encode(self, texts: Sequence[str]) -> list[tuple[list[int], int]]:
        """Token ids of text + QUERY and the number of tokens before the query."""
        out = []
        bos = [self.tokenizer.bos_token_id] if self._adds_bos() else []
        for i, text in enumerate(texts):
            body = bos + self.tokenizer(text, add_special_tokens=False).input_ids
            query = self.tokenizer(QUERY, add_special_tokens=False).input_ids
            ids = (body + query)[-self.config.max_length :]
            if len(ids) < len(body + query):
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

    def forward(self, encoded: Sequence[tuple[list[int], int]], hidden: bool = False):
        """Logits (B, L, V) of a left-padded batch, and the last hidden state if asked."""
        out = self.model(**self._batch(encoded), output_hidden_states=hidden)
        return out.logits, (out.hidden_states[-1] if hidden else None)

    def yes_no_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 2) logits of " yes" and " no" at the last position."""
        return logits[:, -1, self.choice_ids]

    def loss(
        self,
        encoded: Sequence[tuple[list[int], int]],
        labels: torch.Tensor,
        base_logits: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, query cross-entropy, KL) of a batch; `base_logits` are the frozen model's
        logits on the same batch (None: no KL term)."""
        logits, _ = self.forward(encoded)
        target = (~labels).long()  # index 0 = " yes" = correct
        ce = F.cross_entropy(self.yes_no_logits(logits), target)
        if base_logits is None or self.config.kl_weight == 0:
            return ce, ce.detach(), torch.zeros(())
        kl = answer_kl(base_logits, logits, self._answer_mask(encoded, logits.shape[1]))
        return ce + self.config.kl_weight * kl, ce.detach(), kl.detach()

    @staticmethod
    def _answer_mask(encoded: Sequence[tuple[list[int], int]], width: int) -> torch.Tensor:
        """(B, L) True at positions predicting the answer's tokens (before the query)."""
        mask = torch.zeros(len(encoded), width, dtype=torch.bool)
        for row, (ids, n_body) in enumerate(encoded):
            start = width - len(ids)
            mask[row, start : start + n_body - 1] = True
        return mask


def answer_kl(base_logits: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of KL(p_base || p) of the next-token distributions (nats)."""
    base = F.log_softmax(base_logits.float(), dim=-1)[mask]
    tuned = F.log_softmax(logits.float(), dim=-1)[mask]
    if base.shape[0] == 0:
        return torch.zeros(())
    return (base.exp() * (base - tuned)).sum(-1).mean()


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
    _, train_h = _base_scores(scorer, train_enc)
    test_yn, test_h = _base_scores(scorer, test_enc)
    mean, std = train_h.mean(0), train_h.std(0) + 1e-6
    probe = fit_logistic((train_h - mean) / std, y.astype(float), ridge=cfg.probe_l2)
    probe_conf = expit((test_h - mean) / std @ probe[:-1] + probe[-1])

    order = rng.permutation(len(y))
    n_held = max(2, round(cfg.heldout_fraction * len(y)))
    held, fit_idx = order[:n_held], order[n_held:]
    peft, tuner, history = _train_lora(scorer, train_enc, y, fit_idx, rng)
    held_margin = _tuned_margins(tuner, [train_enc[i] for i in held])
    temperature = fit_binary_temperature(held_margin, y[held].astype(float))
    test_margin = _tuned_margins(tuner, test_enc)
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


def _base_scores(scorer: QueryScorer, encoded: list) -> tuple[np.ndarray, np.ndarray]:
    """The untuned model's (yes, no) logits (N, 2) and last hidden states (N, H) at the query."""
    cfg = scorer.config
    margins, features = [], []
    with torch.inference_mode():
        for start in range(0, len(encoded), cfg.batch_size):
            logits, hidden = scorer.forward(encoded[start : start + cfg.batch_size], hidden=True)
            margins.append(scorer.yes_no_logits(logits).float().numpy())
            features.append(hidden[:, -1].float().numpy())
    return np.concatenate(margins), np.concatenate(features)


def _train_lora(
    scorer: QueryScorer,
    train_enc: list,
    y: np.ndarray,
    fit_idx: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Any, QueryScorer, list[dict[str, Any]]]:
    """LoRA on the items `fit_idx` of `train_enc` (labels y), AdamW with a cosine schedule,
    shuffled by `rng` after each epoch; returns the peft model (in eval mode), its scorer and
    the loss history (one entry per step)."""
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
    history = []
    peft.train()
    for epoch in range(cfg.epochs):
        for start in range(0, len(fit_idx), cfg.batch_size):
            batch = [int(i) for i in fit_idx[start : start + cfg.batch_size]]
            enc = [train_enc[i] for i in batch]
            with torch.no_grad(), peft.disable_adapter():
                base_logits, _ = tuner.forward(enc)
            total, ce, kl = tuner.loss(enc, torch.from_numpy(y[batch]), base_logits)
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
            schedule.step()
            history.append({"epoch": epoch, "loss": total.item(), "ce": ce.item(), "kl": kl.item()})
        fit_idx = rng.permutation(fit_idx)
    peft.eval()
    return peft, tuner, history


def _tuned_margins(tuner: QueryScorer, encoded: list) -> np.ndarray:
    """The tuned model's logit(P(yes)) - logit(P(no)) margin per item, (N,)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(encoded), tuner.config.batch_size):
            logits, _ = tuner.forward(encoded[start : start + tuner.config.batch_size])
            yn = tuner.yes_no_logits(logits).float().numpy()
            out.append(yn[:, 0] - yn[:, 1])
    return np.concatenate(out)


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
