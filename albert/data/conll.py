"""CoNLL-2003 NER: the 4-column text files (token POS chunk NER), or the hub copy.

Rows are `{"id", "tokens": [str], "tags": [str]}` with IOB2 tags as strings. `-DOCSTART-` lines
are dropped; a blank line ends a sentence. Every malformed line is an `AlbertError` naming the
file and line.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict

from ..errors import AlbertError, located
from .sources import load_from_hub, numbered_lines, resolve_files

FILES = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
HUB_NAMES = ("eriktks/conll2003", "conll2003")
_TAG = re.compile(r"O|[BI]-\S+")


@dataclass
class _Sentence:
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line of every token, for error messages


def read_conll(path: str | os.PathLike) -> list[_Sentence]:
    """Parse one CoNLL file into sentences; the NER tag is the last column, the token the first."""
    path = Path(path)
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
            raise located(path, lineno, f"expected at least 2 columns (token ... NER tag), found {len(cols)}: {text!r}")
        if columns is None:
            columns = (len(cols), lineno)
        elif len(cols) != columns[0]:
            raise located(path, lineno, f"found {len(cols)} columns, but line {columns[1]} has {columns[0]}")
        tag = cols[-1]
        if not _TAG.fullmatch(tag):
            raise located(path, lineno, f"unknown NER tag {tag!r}: expected O, B-<type> or I-<type>")
        current.tokens.append(cols[0])
        current.tags.append(tag)
        current.lines.append(lineno)
    if current.tokens:
        sentences.append(current)
    if not sentences:
        raise located(path, None, "no sentences found")
    return sentences


def label_list(tags: list[list[str]] | Dataset) -> list[str]:
    """The label vocabulary: "O" first, then the other tags sorted (ids are positions in it)."""
    rows = tags["tags"] if isinstance(tags, Dataset) else tags
    seen = {t for seq in rows for t in seq}
    return ["O"] + sorted(seen - {"O"})


def _check_known_tags(path: Path, sentences: list[_Sentence], known: set[str], train: Path) -> None:
    for s in sentences:
        for tag, lineno in zip(s.tags, s.lines):
            if tag not in known:
                raise located(path, lineno, f"NER tag {tag!r} never occurs in the training file {train}")


def _to_dataset(sentences: list[_Sentence]) -> Dataset:
    return Dataset.from_list([{"id": str(i), "tokens": s.tokens, "tags": s.tags} for i, s in enumerate(sentences)])


def load_conll(data_dir: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
               dev_file: str | os.PathLike | None = None, test_file: str | os.PathLike | None = None) -> DatasetDict:
    """CoNLL-2003 as a DatasetDict with "train", "validation" and (when present) "test"."""
    files = resolve_files("conll2003", FILES, data_dir,
                          {"train": train_file, "validation": dev_file, "test": test_file},
                          required=("train", "validation"))
    if files is None:
        return _from_hub()
    parsed = {split: read_conll(path) for split, path in files.items()}
    known = {t for s in parsed["train"] for t in s.tags}
    for split in ("validation", "test"):
        if split in parsed:
            _check_known_tags(files[split], parsed[split], known, files["train"])
    return DatasetDict({split: _to_dataset(sentences) for split, sentences in parsed.items()})


def _from_hub() -> DatasetDict:
    hint = "pass a data directory with train.txt/valid.txt/test.txt or set $ALBERT_DATA"
    hub = load_from_hub(HUB_NAMES, None, hint)
    return from_hub_format(hub)


def from_hub_format(hub: DatasetDict) -> DatasetDict:
    """Convert the hub's layout (ner_tags as ClassLabel ids) to ours (tags as strings)."""
    out = {}
    for split, ds in hub.items():
        names = ds.features["ner_tags"].feature.names
        rows = [{"id": str(r["id"]), "tokens": r["tokens"], "tags": [names[t] for t in r["ner_tags"]]} for r in ds]
        for r in rows:
            for tag in r["tags"]:
                if not _TAG.fullmatch(tag):
                    raise AlbertError(f"hub CoNLL-2003 {split}: unknown NER tag {tag!r}")
        out[split] = Dataset.from_list(rows)
    return DatasetDict(out)
