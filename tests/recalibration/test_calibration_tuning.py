"""Calibration-tuning on the default model: the loss against a direct computation, an untouched
adapter's KL term, adapter round trips, and a real (small) run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from calibbench.errors import InputError
from calibbench.recalibration import calibration_tuning as ct

pytestmark = pytest.mark.model

STATEMENTS = [
    ("What is 2 + 2?", "4", True), ("What is 2 + 2?", "5", False),
    ("What is the capital of France?", "Paris", True),
    ("What is the capital of France?", "Rome", False),
    ("How many legs does a spider have?", "8", True),
    ("How many legs does a spider have?", "6", False),
    ("What colour is the sky on a clear day?", "blue", True),
    ("What colour is the sky on a clear day?", "green", False),
    ("What is 10 times 10?", "100", True), ("What is 10 times 10?", "1000", False),
    ("Which planet is closest to the Sun?", "Mercury", True),
    ("Which planet is closest to the Sun?", "Jupiter", False),
    ("What is the boiling point of water in Celsius?", "100", True),
    ("What is the boiling point of water in Celsius?", "50", False),
    ("How many days are in a week?", "7", True), ("How many days are in a week?", "9", False),
]  # fmt: skip
TEXTS = [f"Question: {q}\nAnswer: {a}" for q, a, _ in STATEMENTS]
LABELS = [ok for *_, ok in STATEMENTS]


@pytest.fixture(scope="module")
def base():
    from calibbench.models.hf import HFModel

    model = HFModel.builtin("smollm2-135m", device="cpu")
    return model.model, model.tokenizer


def lora(model, config):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
        target_modules=list(config.target_modules), task_type="CAUSAL_LM",
    ))  # fmt: skip


def test_loss_equals_a_direct_computation(base):
    model, tokenizer = base
    config = ct.TuningConfig(kl_weight=0.5)
    scorer = ct.QueryScorer(model, tokenizer, config)
    enc = scorer.encode(TEXTS[:4])
    labels = torch.tensor(LABELS[:4])
    with torch.no_grad():
        total, ce, _ = scorer.loss(enc, labels, base_logprobs=None)
        logits, _ = scorer.forward(enc)
    z = logits[:, -1].double().numpy()
    yes, no = scorer.choice_ids
    pair = log_softmax(np.stack([z[:, yes], z[:, no]], axis=1), axis=1)
    want = -np.mean([pair[i, 0 if ok else 1] for i, ok in enumerate(LABELS[:4])])
    assert float(ce) == pytest.approx(want, rel=1e-5) and float(total) == float(ce)
    # KL to a different model's logits, against a direct float64 computation on the answers
    # of the full (every position) logits; the loss computes only the positions it reads.
    other = logits + torch.randn_like(logits)
    mask = scorer._answer_mask(enc, logits.shape[1])
    p = log_softmax(other.double().numpy(), axis=-1)[mask.numpy()]
    q = log_softmax(logits.double().numpy(), axis=-1)[mask.numpy()]
    want_kl = np.mean((np.exp(p) * (p - q)).sum(-1))
    with torch.no_grad():
        total, ce, kl = scorer.loss(enc, labels, torch.from_numpy(p).float())
    assert float(kl) == pytest.approx(want_kl, rel=1e-4)
    assert float(total) == pytest.approx(want + 0.5 * want_kl, rel=1e-5)
    # Answer positions: every prompt position but the query's.
    for row, (_, n_body) in enumerate(enc):
        assert int(mask[row].sum()) == n_body - 1


def test_kl_term_is_zero_for_an_untouched_adapter(base):
    model, tokenizer = base
    config = ct.TuningConfig()
    peft = lora(model, config)
    scorer = ct.QueryScorer(peft, tokenizer, config)
    enc = scorer.encode(TEXTS[:4])
    with peft.disable_adapter():
        base_logprobs = scorer.answer_logprobs(enc)
    with torch.no_grad():
        _, _, kl = scorer.loss(enc, torch.tensor(LABELS[:4]), base_logprobs)
    assert float(kl) == pytest.approx(0.0, abs=1e-6)
    peft.unload()


def test_query_scores_match_one_unpadded_forward_per_item(base):
    model, tokenizer = base
    scorer = ct.QueryScorer(model, tokenizer, ct.TuningConfig(batch_size=3))
    enc = scorer.encode(TEXTS[:4])  # two batches: 3 rows sorted by length, then 1
    yes_no, features = scorer.query_scores(enc, hidden=True)
    for row, item in enumerate(enc):
        with torch.inference_mode():
            logits, states = scorer.forward([item], hidden=True)
        np.testing.assert_allclose(yes_no[row], scorer.yes_no_logits(logits)[0], atol=1e-4)
        np.testing.assert_allclose(features[row], states[0, -1], atol=1e-4)


def test_length_grouped_batches_cover_each_item_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 100, size=45)
    order = rng.permutation(45)
    batches = ct.length_grouped_batches(order, lengths, 4, np.random.default_rng(1))
    assert len(batches) == 12 and sorted(np.concatenate(batches)) == list(range(45))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    shuffled = sum(len(b) * lengths[b].max() for b in np.array_split(order, 12))
    assert padded - lengths.sum() < (shuffled - lengths.sum()) / 4


def test_a_real_run_trains_saves_and_reloads_its_adapter(base, tmp_path):
    from peft import PeftModel

    model, tokenizer = base
    config = ct.TuningConfig(epochs=4, batch_size=4, learning_rate=5e-4)
    scorer = ct.QueryScorer(model, tokenizer, config)
    result = ct.run(scorer, TEXTS, LABELS, TEXTS[:4], ["a", "b", "c", "d"], tmp_path / "adapter")
    history = result.training["history"]
    first, last = np.mean([h["ce"] for h in history[:3]]), np.mean([h["ce"] for h in history[-3:]])
    assert last < first  # the query loss falls on the training examples
    frame = result.confidences
    for column in ("zero_shot", "probe", "tuned", "tuned_temperature"):
        assert frame[column].between(0, 1).all()
    assert result.training["data_sha256"] == ct.examples_hash(TEXTS, LABELS)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    reloaded = PeftModel.from_pretrained(model, str(tmp_path / "adapter"))
    again = ct.QueryScorer(reloaded, tokenizer, config)
    with torch.inference_mode():
        logits, _ = again.forward(again.encode(TEXTS[:4]))
    margin = again.yes_no_logits(logits).numpy()
    np.testing.assert_allclose(ct.p_yes(margin), frame["tuned"], rtol=1e-5)
    reloaded.unload()

    # The collect stage loads the adapter merged into the model, and cites it.
    from calibbench.models import load_model

    tuned = load_model("tuned", {"runtime": "hf", "builtin": "smollm2-135m", "device": "cpu",
                                 "adapter": str(tmp_path / "adapter")})  # fmt: skip
    merged = ct.QueryScorer(tuned.model, tuned.tokenizer, config)
    with torch.inference_mode():
        logits, _ = merged.forward(merged.encode(TEXTS[:4]))
    np.testing.assert_allclose(
        ct.p_yes(merged.yes_no_logits(logits).numpy()), frame["tuned"], rtol=1e-4
    )
    assert len(tuned.info().extra["adapter"]["sha256"]) == 64


def test_a_folder_that_is_not_an_adapter_is_refused(tmp_path):
    from calibbench.models.hf import HFModel

    with pytest.raises(InputError, match="not a peft adapter"):
        HFModel.builtin("smollm2-135m", device="cpu", adapter=tmp_path)


def test_degenerate_training_data_is_refused(base):
    model, tokenizer = base
    scorer = ct.QueryScorer(model, tokenizer, ct.TuningConfig())
    with pytest.raises(InputError, match="both correct and wrong"):
        ct.run(scorer, TEXTS[:12], [True] * 12, TEXTS[:2], ["a", "b"])
