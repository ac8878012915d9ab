"""RACE reading comprehension from the official distribution (or the hub), one row per question.

The distribution holds one JSON file per article (named 1.txt, 2.txt, ...) under
RACE/{train,dev,test}/{middle,high}/, each `{"id", "article", "questions": [...], "options":
[[four options], ...], "answers": ["A".."D", ...]}`. Rows are `{"id", "level" ("middle" or
"high"), "article", "question", "options" (four), "label" (0..3)}`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, Sequence, Value

from ..errors import AlbertError
from .located_json import expect, read_checked_json
from .sources import load_from_hub, resolve_files

LEVELS = ("middle", "high")
LETTERS = ("A", "B", "C", "D")
SPLIT_DIRS = {"train": "train", "validation": "dev"}
HUB_NAMES = ("ehovy/race", "race")
FEATURES = Features({"id": Value("string"), "level": Value("string"), "article": Value("string"),
                     "question": Value("string"), "options": Sequence(Value("string")), "label": Value("int64")})


def _article_rows(doc: Any, level: str, name: str) -> list[dict]:
    """Check one article file's shape and flatten it to one row per question."""
    expect(isinstance(doc, dict) and isinstance(doc.get("article"), str), (),
           'expected a JSON object with an "article" string (RACE)')
    for key in ("questions", "options", "answers"):
        expect(isinstance(doc.get(key), list), (), f'a RACE article needs a "{key}" list')
    n = len(doc["questions"])
    expect(len(doc["options"]) == n and len(doc["answers"]) == n, (),
           f'{n} questions, {len(doc["options"])} option lists and {len(doc["answers"])} answers: '
           "expected one option list and one answer per question")
    article_id = doc.get("id") if isinstance(doc.get("id"), str) else f"{level}{name}"
    rows = []
    for q, (question, options, answer) in enumerate(zip(doc["questions"], doc["options"], doc["answers"])):
        expect(isinstance(question, str), ("questions", q), f"question {q} is not a string")
        expect(isinstance(options, list) and all(isinstance(o, str) for o in options), ("options", q),
               f"the options of question {q} are not a list of strings")
        expect(len(options) == len(LETTERS), ("options", q),
               f"question {q} has {len(options)} options; RACE has exactly {len(LETTERS)}")
        expect(answer in LETTERS, ("answers", q), f"answer {answer!r} of question {q} is not one of A, B, C, D")
        rows.append({"id": f"{article_id}-{q}", "level": level, "article": doc["article"], "question": question,
                     "options": options, "label": LETTERS.index(answer)})
    return rows


def _file_order(path: Path) -> tuple:
    """1.txt, 2.txt, ..., 10.txt: numeric names in numeric order, then any others by name."""
    return (0, int(path.stem), "") if re.fullmatch(r"\d+", path.stem) else (1, 0, path.name)


def read_race(directory: str | os.PathLike) -> list[dict]:
    """Every article under `directory`/middle and `directory`/high (at least one of them)."""
    directory = Path(directory)
    rows: list[dict] = []
    found = False
    for level in LEVELS:
        if not (directory / level).is_dir():
            continue
        found = True
        for path in sorted((p for p in (directory / level).iterdir() if p.is_file() and not p.name.startswith(".")),
                           key=_file_order):
            rows.extend(read_checked_json(path, lambda doc: _article_rows(doc, level, path.name)))
    if not found:
        raise AlbertError(f"{directory}: no middle/ or high/ directory of RACE articles")
    if not rows:
        raise AlbertError(f"{directory}: no RACE questions in middle/ or high/")
    return rows


def load_race(data_dir: str | os.PathLike | None = None, train_dir: str | os.PathLike | None = None,
              dev_dir: str | os.PathLike | None = None) -> DatasetDict:
    """RACE's "train" and "validation" (its dev/ directory; `dev_dir=` RACE/test for the test set)."""
    dirs = resolve_files("RACE", SPLIT_DIRS, data_dir, {"train": train_dir, "validation": dev_dir},
                         required=("train", "validation"), directories=True)
    if dirs is None:
        hub = load_from_hub(HUB_NAMES, "all", "pass a data directory with train/ and dev/ or set $ALBERT_DATA")
        return from_hub_format(hub)
    return DatasetDict({split: Dataset.from_list(read_race(path), features=FEATURES) for split, path in dirs.items()})


def from_hub_format(hub: DatasetDict) -> DatasetDict:
    """The hub's rows (example_id "high123.txt", article, question, options, answer letter) in our schema."""
    out = {}
    for split in ("train", "validation"):
        if split not in hub:
            continue
        counts: dict[str, int] = {}
        rows = []
        for r in hub[split]:
            article_id = r["example_id"]
            q = counts[article_id] = counts.get(article_id, -1) + 1
            rows.append({"id": f"{article_id}-{q}", "level": "high" if article_id.startswith("high") else "middle",
                         "article": r["article"], "question": r["question"], "options": list(r["options"]),
                         "label": LETTERS.index(r["answer"])})
        out[split] = Dataset.from_list(rows, features=FEATURES)
    return DatasetDict(out)
