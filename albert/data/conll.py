"""CoNLL-2003: the 4-column text files (token POS chunk NER), or the hub copy.

Rows are `{"id", "tokens": [str], "tags": [str]}`, the tags of one column as strings: the NER
tags (IOB2; the default, and the only column of 2-column "token tag" files), the chunk tags (IOB2)
or the part-of-speech tags. `-DOCSTART-` lines are dropped; a blank line ends a sentence. Every
malformed line is an `AlbertError` naming the file and line.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from datasets import Dataset, DatasetDict

from ..errors import AlbertError, located
from .sources import load_from_hub, numbered_lines, resolve_files

FILES = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
HUB_NAMES = ("eriktks/conll2003", "conll2003")
_TAG = re.compile(r"O|[BI]-\S+")


class Column(NamedTuple):
    index: int  # in the 4-column files; NER is the last column whatever the count
    name: str  # in messages
    spans: bool  # IOB2 span tags (checked against _TAG), or any word (POS)


COLUMNS = {"ner": Column(-1, "NER", True), "chunk": Column(2, "chunk", True), "pos": Column(1, "POS", False)}


@dataclass
class _Sentence:
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line of every token, for error messages


def read_conll(path: str | os.PathLike, column: str = "ner") -> list[_Sentence]:
    """Parse one CoNLL file into sentences: the token is the first column, the tag the `column`
    one (COLUMNS: NER the last, chunk the third, POS the second of token POS chunk NER)."""
    path = Path(path)
    if column not in COLUMNS:
        raise AlbertError(f"unknown CoNLL tag column {column!r}; choose one of {', '.join(COLUMNS)}")
    at, kind, spans = COLUMNS[column]
    sentences: list[_Sentence] = []
    current = _Sentence()
    columns: tuple[int, int] | None = None  # (count, line it was first seen on)
    for lineno, text in numbered_lines(path):
        cols = text.split()
        if not cols or cols[0] == "-DOCSTART-":
            if current.tokens:
                sentences.append(current)
                current = _Sentence()
            continue
        if len(cols) < 2:
            raise located(path, lineno, f"expected at least 2 columns (token ... tag), found {len(cols)}: {text!r}")
        if at > 0 and len(cols) < 4:
            raise located(path, lineno, f"expected 4 columns (token POS chunk NER) for the {kind} tags, "
                                        f"found {len(cols)}: {text!r}")
        if columns is None:
            columns = (len(cols), lineno)
        elif len(cols) != columns[0]:
            raise located(path, lineno, f"found {len(cols)} columns, but line {columns[1]} has {columns[0]}")
        tag = cols[at]
        if spans and not _TAG.fullmatch(tag):
            raise located(path, lineno, f"unknown {kind} tag {tag!r}: expected O, B-<type> or I-<type>")
        current.tokens.append(cols[0])
        current.tags.append(tag)
        current.lines.append(lineno)
    if current.tokens:
        sentences.append(current)
    if not sentences:
        raise located(path, None, "no sentences found")
    return sentences


def label_list(tags: list[list[str]] | Dataset) -> list[str]:
    """The label vocabulary: "O" first (where it occurs), then the other tags sorted (ids are
    positions in it)."""
    rows = tags["tags"] if isinstance(tags, Dataset) else tags
    seen = {t for seq in rows for t in seq}
    return ["O"] * ("O" in seen) + sorted(seen - {"O"})


def _check_known_tags(path: Path, sentences: list[_Sentence], known: set[str], train: Path, kind: str) -> None:
    for s in sentences:
        for tag, lineno in zip(s.tags, s.lines):
            if tag not in known:
                raise located(path, lineno, f"{kind} tag {tag!r} never occurs in the training file {train}")


def _to_dataset(sentences: list[_Sentence]) -> Dataset:
    return Dataset.from_list([{"id": str(i), "tokens": s.tokens, "tags": s.tags} for i, s in enumerate(sentences)])


def load_conll(data_dir: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
               dev_file: str | os.PathLike | None = None, test_file: str | os.PathLike | None = None,
               column: str = "ner", unseen_tags_scored: bool = False) -> DatasetDict:
    """CoNLL-2003 as a DatasetDict with "train", "validation" and (when present) "test", tagged
    with the `column` tags (COLUMNS). A validation or test tag the training file lacks is an
    error naming its line, unless `unseen_tags_scored` (the task scores it, the model cannot
    predict it)."""
    files = resolve_files("conll2003", FILES, data_dir,
                          {"train": train_file, "validation": dev_file, "test": test_file},
                          required=("train", "validation"))
    if files is None:
        return _from_hub(column)
    parsed = {split: read_conll(path, column) for split, path in files.items()}
    known = {t for s in parsed["train"] for t in s.tags}
    for split in ("validation", "test"):
        if split in parsed and not unseen_tags_scored:
            _check_known_tags(files[split], parsed[split], known, files["train"], COLUMNS[column].name)
    return DatasetDict({split: _to_dataset(sentences) for split, sentences in parsed.items()})


def _from_hub(column: str) -> DatasetDict:
    hint = "pass a data directory with train.txt/valid.txt/test.txt or set $ALBERT_DATA"
    hub = load_from_hub(HUB_NAMES, None, hint)
    return from_hub_format(hub, column)


def from_hub_format(hub: DatasetDict, column: str = "ner") -> DatasetDict:
    """Convert the hub's layout (ner_tags, chunk_tags, pos_tags as ClassLabel ids) to ours (the
    `column` tags as strings)."""
    out = {}
    field_name, kind = f"{column}_tags", COLUMNS[column]
    for split, ds in hub.items():
        names = ds.features[field_name].feature.names
        rows = [{"id": str(r["id"]), "tokens": r["tokens"], "tags": [names[t] for t in r[field_name]]} for r in ds]
        for r in rows:
            for tag in r["tags"]:
                if kind.spans and not _TAG.fullmatch(tag):
                    raise AlbertError(f"hub CoNLL-2003 {split}: unknown {kind.name} tag {tag!r}")
        out[split] = Dataset.from_list(rows)
    return DatasetDict(out)
