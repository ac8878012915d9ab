"""SQuAD v1.1 from the official JSON files (or the hub), one row per question.

Rows are `{"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}`,
the hub's layout. Only dev-v1.1.json exists here (see $ALBERT_DATA/squad/PROVENANCE.md), so for
quick runs `split_by_article` carves a stand-in training set out of the dev articles.
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner
import os
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, Sequence, Value

from ..errors import AlbertError, located
from .sources import load_from_hub, resolve_files

FILES = {"train": "train-v1.1.json", "validation": "dev-v1.1.json"}
HUB_NAMES = ("rajpurkar/squad", "squad")
FEATURES = Features({
    "id": Value("string"), "title": Value("string"), "context": Value("string"), "question": Value("string"),
    "answers": {"text": Sequence(Value("string")), "answer_start": Sequence(Value("int32"))},
})


class _Malformed(Exception):
    """A shape problem at a JSON path; turned into an AlbertError with the line of that path."""

    def __init__(self, where: tuple, problem: str):
        super().__init__(problem)
        self.where, self.problem = where, problem


def _expect(cond: bool, where: tuple, problem: str) -> None:
    if not cond:
        raise _Malformed(where, problem)


def _rows(doc: Any) -> list[dict]:
    """Validate the v1.1 shape and flatten it to one row per question."""
    _expect(isinstance(doc, dict) and isinstance(doc.get("data"), list), (),
            'expected a JSON object with a "data" list of articles (SQuAD v1.1)')
    version = doc.get("version")
    _expect(version is None or str(version).startswith("1."), (),
            f"version is {version!r}; only SQuAD v1.1 is supported")
    rows, seen = [], set()
    for a, article in enumerate(doc["data"]):
        at = ("data", a)
        _expect(isinstance(article, dict) and isinstance(article.get("title"), str)
                and isinstance(article.get("paragraphs"), list), at,
                'an article needs a "title" string and a "paragraphs" list')
        for p, para in enumerate(article["paragraphs"]):
            pat = (*at, "paragraphs", p)
            _expect(isinstance(para, dict) and isinstance(para.get("context"), str)
                    and isinstance(para.get("qas"), list), pat,
                    'a paragraph needs a "context" string and a "qas" list')
            context = para["context"]
            for q, qa in enumerate(para["qas"]):
                qat = (*pat, "qas", q)
                _expect(isinstance(qa, dict) and isinstance(qa.get("id"), str) and isinstance(qa.get("question"), str)
                        and isinstance(qa.get("answers"), list), qat,
                        'a question needs "id" and "question" strings and an "answers" list')
                _expect(not qa.get("is_impossible", False), qat, "unanswerable question: this is SQuAD v2.0 data")
                _expect(len(qa["answers"]) > 0, qat, f"question {qa['id']!r} has no answers")
                _expect(qa["id"] not in seen, qat, f"duplicate question id {qa['id']!r}")
                seen.add(qa["id"])
                texts, starts = [], []
                for n, ans in enumerate(qa["answers"]):
                    ant = (*qat, "answers", n)
                    _expect(isinstance(ans, dict) and isinstance(ans.get("text"), str)
                            and isinstance(ans.get("answer_start"), int) and not isinstance(ans["answer_start"], bool),
                            ant, 'an answer needs a "text" string and an integer "answer_start"')
                    start, text = ans["answer_start"], ans["text"]
                    found = context[start:start + len(text)] if start >= 0 else ""
                    _expect(text != "" and found == text, ant,
                            f"answer {text!r} of question {qa['id']!r} does not match the context at "
                            f"answer_start {start} (the context there reads {found!r})")
                    texts.append(text)
                    starts.append(start)
                rows.append({"id": qa["id"], "title": article["title"], "context": context,
                             "question": qa["question"], "answers": {"text": texts, "answer_start": starts}})
    _expect(len(rows) > 0, ("data",), "no questions")
    return rows


class _PositionDecoder(json.JSONDecoder):
    """A (slow, pure-Python) decoder that remembers where every object and list starts."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int] = {}

        def parse_object(s_and_end, *args, **kwargs):
            obj, end = json.decoder.JSONObject(s_and_end, *args, **kwargs)
            self.starts[id(obj)] = s_and_end[1] - 1
            return obj, end

        def parse_array(s_and_end, *args, **kwargs):
            arr, end = json.decoder.JSONArray(s_and_end, *args, **kwargs)
            self.starts[id(arr)] = s_and_end[1] - 1
            return arr, end

        self.parse_object, self.parse_array = parse_object, parse_array
        self.scan_once = json.scanner.py_make_scanner(self)


def _line_of(text: str, where: tuple) -> int:
    """The 1-based line where the object at JSON path `where` starts (only run on the error path)."""
    decoder = _PositionDecoder()
    node = decoder.decode(text)
    offset = decoder.starts.get(id(node), 0)
    for key in where:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        offset = decoder.starts.get(id(node), offset)
    return text.count("\n", 0, offset) + 1


def read_squad(path: str | os.PathLike) -> list[dict]:
    """Parse and check one SQuAD v1.1 JSON file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise AlbertError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise located(path, raw.count(b"\n", 0, e.start) + 1, f"not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise located(path, e.lineno, f"not valid JSON: {e.msg} (column {e.colno})") from None
    try:
        return _rows(doc)
    except _Malformed as e:
        path_text = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in e.where) or "top level"
        raise located(path, _line_of(text, e.where), f"{e.problem} (at {path_text.lstrip('.')})") from None


def load_squad(data_dir: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
               dev_file: str | os.PathLike | None = None) -> DatasetDict:
    """SQuAD v1.1 as a DatasetDict with "validation" and, when a train file exists, "train"."""
    files = resolve_files("squad", FILES, data_dir, {"train": train_file, "validation": dev_file},
                          required=("validation",))
    if files is None:
        hub = load_from_hub(HUB_NAMES, None, "pass a data directory with dev-v1.1.json or set $ALBERT_DATA")
        return DatasetDict({split: hub[split].cast(FEATURES) if set(hub[split].column_names) == set(FEATURES)
                            else hub[split] for split in ("train", "validation") if split in hub})
    return DatasetDict({split: Dataset.from_list(read_squad(path), features=FEATURES) for split, path in files.items()})


def split_by_article(dataset: Dataset, n_train_articles: int) -> DatasetDict:
    """A stand-in train/validation split of one SQuAD split, for quick runs here only.

    The first `n_train_articles` articles (by title, in file order) become "train", the rest
    "validation", so no paragraph is shared between them. Real SQuAD results need
    train-v1.1.json, which is not available on this machine.
    """
    titles = list(dict.fromkeys(dataset["title"]))
    if not 0 < n_train_articles < len(titles):
        raise AlbertError(f"n_train_articles must be between 1 and {len(titles) - 1}, got {n_train_articles}")
    train_titles = set(titles[:n_train_articles])
    is_train = [t in train_titles for t in dataset["title"]]
    return DatasetDict({
        "train": dataset.select([i for i, t in enumerate(is_train) if t]),
        "validation": dataset.select([i for i, t in enumerate(is_train) if not t]),
    })
