"""GLUE sentence(-pair) tasks from the usual glue_data/<TASK>/{train,dev}.tsv files, or the hub.

Rows are `{"id", "sentence1", "sentence2" (None for single-sentence tasks), "label"}`: an int class
id, or a float score for STS-B. Class ids follow the hub's ClassLabel order, so local and hub
data agree. A task with several dev sets (MNLI: dev_matched.tsv, dev_mismatched.tsv) gets them
all in one "validation" split, each row's id prefixed with its set's name ("matched-17"). The TSVs are split on tabs only, never with csv quoting: sentences contain
unbalanced double quotes (see $ALBERT_DATA/glue/PROVENANCE.md).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Value

from ..errors import AlbertError, located
from .sources import load_from_hub, numbered_lines, resolve_files

FILES = {"train": "train.tsv", "validation": "dev.tsv"}
HUB_NAMES = ("nyu-mll/glue", "glue")


@dataclass(frozen=True)
class Layout:
    """Where the fields of one task's TSV are."""
    directory: str
    header: tuple[str, ...] | None  # None: the file has no header line (CoLA)
    columns: int
    sentence1: int
    sentence2: int | None
    label: int
    id: int | None  # None: use the 0-based data row number
    label_names: tuple[str, ...] | None  # None: regression
    labels_are_names: bool = False  # the label column holds names ("entailment"), not ids
    score_range: tuple[float, float] = (0.0, 5.0)
    hub_fields: tuple[str, str | None] = ("sentence1", "sentence2")
    train_required: bool = True
    # (name, file) of each dev set; one unnamed dev.tsv for most tasks.
    dev_sets: tuple[tuple[str, str], ...] = (("", "dev.tsv"),)
    dev_header: tuple[str, ...] | None = None  # the dev files' header where it differs from train's

    def header_of(self, split: str) -> tuple[str, ...] | None:
        return self.dev_header if split != "train" and self.dev_header is not None else self.header


_MNLI_HEAD = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2")
LAYOUTS: dict[str, Layout] = {
    "cola": Layout("CoLA", None, 4, 3, None, 1, None, ("unacceptable", "acceptable"),
                   hub_fields=("sentence", None)),
    "sst2": Layout("SST-2", ("sentence", "label"), 2, 0, None, 1, None, ("negative", "positive"),
                   hub_fields=("sentence", None)),
    "mrpc": Layout("MRPC", ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), 5, 3, 4, 0, None,
                   ("not_equivalent", "equivalent")),
    "rte": Layout("RTE", ("index", "sentence1", "sentence2", "label"), 4, 1, 2, 3, 0,
                  ("entailment", "not_entailment"), labels_are_names=True),
    "qnli": Layout("QNLI", ("index", "question", "sentence", "label"), 4, 1, 2, 3, 0,
                   ("entailment", "not_entailment"), labels_are_names=True, hub_fields=("question", "sentence"),
                   train_required=False),  # only dev.tsv is available here
    "stsb": Layout("STS-B", ("index", "genre", "filename", "year", "old_index", "source1", "source2",
                             "sentence1", "sentence2", "score"), 10, 7, 8, 9, 0, None),
    # MNLI's dev files carry the five annotators' labels before gold_label; the label is the last column.
    "mnli": Layout("MNLI", _MNLI_HEAD + ("label1", "gold_label"), 12, 8, 9, -1, 0,
                   ("entailment", "neutral", "contradiction"), labels_are_names=True, hub_fields=("premise", "hypothesis"),
                   dev_sets=(("matched", "dev_matched.tsv"), ("mismatched", "dev_mismatched.tsv")),
                   dev_header=_MNLI_HEAD + ("label1", "label2", "label3", "label4", "label5", "gold_label")),
    "qqp": Layout("QQP", ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), 6, 3, 4, 5, 0,
                  ("not_duplicate", "duplicate"), hub_fields=("question1", "question2")),
    "wnli": Layout("WNLI", ("index", "sentence1", "sentence2", "label"), 4, 1, 2, 3, 0,
                   ("not_entailment", "entailment")),
}


def layout(task: str) -> Layout:
    if task not in LAYOUTS:
        raise AlbertError(f"unknown GLUE task {task!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[task]


def _parse_label(path: Path, lineno: int, value: str, lay: Layout) -> int | float:
    if lay.label_names is None:
        try:
            score = float(value)
        except ValueError:
            raise located(path, lineno, f"score {value!r} is not a number") from None
        lo, hi = lay.score_range
        if not (math.isfinite(score) and lo <= score <= hi):
            raise located(path, lineno, f"score {value!r} is outside [{lo}, {hi}]")
        return score
    if lay.labels_are_names:
        if value not in lay.label_names:
            raise located(path, lineno, f"label {value!r} is not one of {', '.join(lay.label_names)}")
        return lay.label_names.index(value)
    try:
        label = int(value)
    except ValueError:
        raise located(path, lineno, f"label {value!r} is not an integer") from None
    if not 0 <= label < len(lay.label_names):
        raise located(path, lineno, f"label {label} is out of range 0..{len(lay.label_names) - 1}")
    return label


def read_tsv(path: str | os.PathLike, task: str, split: str = "train") -> tuple[list[dict], list[int]]:
    """Parse one GLUE TSV of `split` ("train" or a dev set): (rows, the file line of every row)."""
    path, lay = Path(path), layout(task)
    header = lay.header_of(split)
    columns = len(header) if header is not None else lay.columns
    rows: list[dict] = []
    lines: list[int] = []
    for lineno, text in numbered_lines(path):
        fields = text.split("\t")
        if lineno == 1 and header is not None:
            if tuple(fields) != header:
                raise located(path, lineno, f"header is {fields!r}, expected {list(header)!r} for {lay.directory}")
            continue
        if len(fields) != columns:
            raise located(path, lineno, f"expected {columns} tab-separated columns for {lay.directory}, "
                                        f"found {len(fields)}")
        rows.append({
            "id": fields[lay.id] if lay.id is not None else str(len(rows)),
            "sentence1": fields[lay.sentence1],
            "sentence2": fields[lay.sentence2] if lay.sentence2 is not None else None,
            "label": _parse_label(path, lineno, fields[lay.label], lay),
        })
        lines.append(lineno)
    if not rows:
        raise located(path, None, "no data rows")
    return rows, lines


def load_glue(task: str, data_dir: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
              dev_file: str | os.PathLike | None = None) -> DatasetDict:
    """One GLUE task as a DatasetDict with "validation" and, where it exists, "train".

    QNLI's train.tsv is not available here: without `train_file=` only "validation" comes back.
    `dev_file=` replaces the first dev set (MNLI: matched); the others are read where they exist.
    """
    lay = layout(task)
    required = ("train", "validation") if lay.train_required else ("validation",)
    dev_splits = {("validation" if i == 0 else f"validation:{name}"): (name, file)
                  for i, (name, file) in enumerate(lay.dev_sets)}
    names = {"train": FILES["train"], **{split: file for split, (_, file) in dev_splits.items()}}
    files = resolve_files(f"glue/{lay.directory}", names, data_dir,
                          {"train": train_file, "validation": dev_file}, required=required)
    if files is None:
        return _from_hub(task, lay)
    parsed = {split: read_tsv(path, task, split) for split, path in files.items()}
    seen = {r["label"] for r in parsed["train"][0]} if lay.label_names is not None and "train" in parsed else None
    dev_rows: list[dict] = []
    for split, (name, _) in dev_splits.items():
        if split not in parsed:
            continue
        rows, lines = parsed[split]
        for r, lineno in zip(rows, lines):
            if seen is not None and r["label"] not in seen:
                raise located(files[split], lineno, f"label {lay.label_names[r['label']]!r} never occurs "
                                                    f"in the training file {files['train']}")
            dev_rows.append({**r, "id": f"{name}-{r['id']}"} if name else r)
    out = {"validation": _to_dataset(dev_rows, lay)}
    if "train" in parsed:
        out = {"train": _to_dataset(parsed["train"][0], lay), **out}
    return DatasetDict(out)


def _to_dataset(rows: list[dict], lay: Layout) -> Dataset:
    features = Features({"id": Value("string"), "sentence1": Value("string"), "sentence2": Value("string"),
                         "label": Value("float64") if lay.label_names is None else Value("int64")})
    return Dataset.from_list(rows, features=features)


def _from_hub(task: str, lay: Layout) -> DatasetDict:
    hint = (f"pass a data directory with {lay.directory}/train.tsv and "
            f"{' and '.join(file for _, file in lay.dev_sets)} or set $ALBERT_DATA")
    hub = load_from_hub(HUB_NAMES, task, hint)
    return from_hub_format(hub, task)


def from_hub_format(hub: DatasetDict, task: str) -> DatasetDict:
    """The hub's columns (sentence/question/..., label, idx) in our schema; the unlabelled test split is dropped."""
    lay = layout(task)
    first, second = lay.hub_fields
    out = {}
    # The hub names MNLI's dev sets validation_matched and validation_mismatched.
    sources = {"train": [("", "train")],
               "validation": [(name, f"validation_{name}" if name else "validation") for name, _ in lay.dev_sets]}
    for split, hub_splits in sources.items():
        rows = [{"id": f"{name}-{r['idx']}" if name else str(r["idx"]), "sentence1": r[first],
                 "sentence2": r[second] if second else None, "label": r["label"]}
                for name, hub_split in hub_splits if hub_split in hub for r in hub[hub_split]]
        if rows:
            out[split] = _to_dataset(rows, lay)
    return DatasetDict(out)
