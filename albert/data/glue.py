"""GLUE sentence(-pair) tasks from the usual glue_data/<TASK>/{train,dev}.tsv files, or the hub.

Rows are `{"id", "sentence1", "sentence2" (None for single-sentence tasks), "label"}`: an int class
id, or a float score for STS-B. Class ids follow the hub's ClassLabel order, so local and hub
data agree. The TSVs are split on tabs only, never with csv quoting: sentences contain
unbalanced double quotes (see $ALBERT_DATA/glue/PROVENANCE.md).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict

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


def read_tsv(path: str | os.PathLike, task: str) -> tuple[list[dict], list[int]]:
    """Parse one GLUE TSV: (rows, the file line of every row)."""
    path, lay = Path(path), layout(task)
    rows: list[dict] = []
    lines: list[int] = []
    for lineno, text in numbered_lines(path):
        fields = text.split("\t")
        if lineno == 1 and lay.header is not None:
            if tuple(fields) != lay.header:
                raise located(path, lineno, f"header is {fields!r}, expected {list(lay.header)!r} for {lay.directory}")
            continue
        if len(fields) != lay.columns:
            raise located(path, lineno, f"expected {lay.columns} tab-separated columns for {lay.directory}, "
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
    """
    lay = layout(task)
    required = ("train", "validation") if lay.train_required else ("validation",)
    files = resolve_files(f"glue/{lay.directory}", FILES, data_dir,
                          {"train": train_file, "validation": dev_file}, required=required)
    if files is None:
        return _from_hub(task, lay)
    parsed = {split: read_tsv(path, task) for split, path in files.items()}
    if lay.label_names is not None and "train" in parsed:
        seen = {r["label"] for r in parsed["train"][0]}
        rows, lines = parsed["validation"]
        for r, lineno in zip(rows, lines):
            if r["label"] not in seen:
                raise located(files["validation"], lineno, f"label {lay.label_names[r['label']]!r} never occurs "
                                                           f"in the training file {files['train']}")
    return DatasetDict({split: _to_dataset(rows, lay) for split, (rows, _) in parsed.items()})


def _to_dataset(rows: list[dict], lay: Layout) -> Dataset:
    from datasets import Features, Value

    features = Features({"id": Value("string"), "sentence1": Value("string"), "sentence2": Value("string"),
                         "label": Value("float64") if lay.label_names is None else Value("int64")})
    return Dataset.from_list(rows, features=features)


def _from_hub(task: str, lay: Layout) -> DatasetDict:
    hint = f"pass a data directory with {lay.directory}/train.tsv and dev.tsv or set $ALBERT_DATA"
    hub = load_from_hub(HUB_NAMES, task, hint)
    return from_hub_format(hub, task)


def from_hub_format(hub: DatasetDict, task: str) -> DatasetDict:
    """The hub's columns (sentence/question/..., label, idx) in our schema; the unlabelled test split is dropped."""
    lay = layout(task)
    first, second = lay.hub_fields
    out = {}
    for split in ("train", "validation"):
        if split not in hub:
            continue
        ds = hub[split]
        rows = [{"id": str(r["idx"]), "sentence1": r[first], "sentence2": r[second] if second else None,
                 "label": r["label"]} for r in ds]
        out[split] = _to_dataset(rows, lay)
    return DatasetDict(out)
