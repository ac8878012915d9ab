"""SQuAD v1.1 and v2.0 from the official JSON files (or the hub), one row per question.

Rows are `{"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}`,
the hub's layout; a v2.0 question with `is_impossible` has no answers (its `plausible_answers`
are checked against the context, then dropped, as the hub does). Only dev-v1.1.json exists here
(see $ALBERT_DATA/squad/PROVENANCE.md), so for quick runs `split_by_article` carves a stand-in
training set out of the dev articles.
"""
from __future__ import annotations

import os
from typing import Any

from datasets import Dataset, DatasetDict, Features, Sequence, Value

from ..errors import AlbertError
from .located_json import expect, read_checked_json
from .sources import load_from_hub, resolve_files

# By SQuAD version: the data directory under $ALBERT_DATA, its file names, the hub's names.
SOURCES = {
    1: ("squad", {"train": "train-v1.1.json", "validation": "dev-v1.1.json"}, ("rajpurkar/squad", "squad")),
    2: ("squad2", {"train": "train-v2.0.json", "validation": "dev-v2.0.json"}, ("rajpurkar/squad_v2", "squad_v2")),
}
FILES = SOURCES[1][1]
FEATURES = Features({
    "id": Value("string"), "title": Value("string"), "context": Value("string"), "question": Value("string"),
    "answers": {"text": Sequence(Value("string")), "answer_start": Sequence(Value("int32"))},
})


def _answers(qa: dict, key: str, context: str, qat: tuple) -> tuple[list[str], list[int]]:
    """The texts and starts of `qa[key]`, each checked against the context."""
    expect(isinstance(qa.get(key), list), qat, f'a question needs an "{key}" list')
    texts, starts = [], []
    for n, ans in enumerate(qa[key]):
        ant = (*qat, key, n)
        expect(isinstance(ans, dict) and isinstance(ans.get("text"), str)
                and isinstance(ans.get("answer_start"), int) and not isinstance(ans["answer_start"], bool),
                ant, 'an answer needs a "text" string and an integer "answer_start"')
        start, text = ans["answer_start"], ans["text"]
        expect(0 <= start and start + len(text) <= len(context), ant,
                f"answer {text!r} of question {qa['id']!r} does not match the context at answer_start {start}: "
                f"the offset is outside the context ({len(context)} characters)")
        found = context[start:start + len(text)]
        expect(text != "" and found == text, ant,
                f"answer {text!r} of question {qa['id']!r} does not match the context at "
                f"answer_start {start} (the context there reads {found!r})")
        texts.append(text)
        starts.append(start)
    return texts, starts


def _rows(doc: Any, version: int = 1) -> list[dict]:
    """Validate the v1.1 (or v2.0) shape and flatten it to one row per question."""
    name = "SQuAD v1.1" if version == 1 else "SQuAD v2.0"
    expect(isinstance(doc, dict) and isinstance(doc.get("data"), list), (),
            f'expected a JSON object with a "data" list of articles ({name})')
    found_version = doc.get("version")
    expect(found_version is None or str(found_version).lstrip("v").startswith(f"{version}."), (),
            f"version is {found_version!r}; only {name} is read here (task squad reads v1.1, squad2 v2.0)")
    rows, seen = [], set()
    for a, article in enumerate(doc["data"]):
        at = ("data", a)
        expect(isinstance(article, dict) and isinstance(article.get("title"), str)
                and isinstance(article.get("paragraphs"), list), at,
                'an article needs a "title" string and a "paragraphs" list')
        for p, para in enumerate(article["paragraphs"]):
            pat = (*at, "paragraphs", p)
            expect(isinstance(para, dict) and isinstance(para.get("context"), str)
                    and isinstance(para.get("qas"), list), pat,
                    'a paragraph needs a "context" string and a "qas" list')
            context = para["context"]
            for q, qa in enumerate(para["qas"]):
                qat = (*pat, "qas", q)
                expect(isinstance(qa, dict) and isinstance(qa.get("id"), str) and isinstance(qa.get("question"), str)
                        and isinstance(qa.get("answers"), list), qat,
                        'a question needs "id" and "question" strings and an "answers" list')
                impossible = qa.get("is_impossible", False)
                expect(version == 2 or not impossible, qat, "unanswerable question: this is SQuAD v2.0 data")
                expect(isinstance(impossible, bool), qat, '"is_impossible" must be true or false')
                expect(qa["id"] not in seen, qat, f"duplicate question id {qa['id']!r}")
                seen.add(qa["id"])
                texts, starts = _answers(qa, "answers", context, qat)
                if impossible:
                    expect(not texts, qat, f"question {qa['id']!r} is_impossible but has answers")
                    if "plausible_answers" in qa:
                        _answers(qa, "plausible_answers", context, qat)
                else:
                    expect(len(texts) > 0, qat, f"question {qa['id']!r} has no answers"
                            + (" and is not is_impossible" if version == 2 else ""))
                rows.append({"id": qa["id"], "title": article["title"], "context": context,
                             "question": qa["question"], "answers": {"text": texts, "answer_start": starts}})
    expect(len(rows) > 0, ("data",), "no questions")
    return rows


def read_squad(path: str | os.PathLike, version: int = 1) -> list[dict]:
    """Parse and check one SQuAD v1.1 (`version` 2: v2.0) JSON file."""
    return read_checked_json(path, lambda doc: _rows(doc, version))


def load_squad(data_dir: str | os.PathLike | None = None, train_file: str | os.PathLike | None = None,
               dev_file: str | os.PathLike | None = None, version: int = 1) -> DatasetDict:
    """SQuAD v1.1 (`version` 2: v2.0) as a DatasetDict with "validation" and, when a train file
    exists, "train"."""
    subdir, names, hub_names = SOURCES[version]
    files = resolve_files(subdir, names, data_dir, {"train": train_file, "validation": dev_file},
                          required=("validation",))
    if files is None:
        hub = load_from_hub(hub_names, None, f"pass a data directory with {names['validation']} or set $ALBERT_DATA")
        return DatasetDict({split: hub[split].cast(FEATURES) if set(hub[split].column_names) == set(FEATURES)
                            else hub[split] for split in ("train", "validation") if split in hub})
    return DatasetDict({split: Dataset.from_list(read_squad(path, version), features=FEATURES)
                        for split, path in files.items()})


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
