"""SQuAD v1.1 reader: the real dev file's counts, the article split, and file:line errors."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from albert.data.squad import load_squad, read_squad, split_by_article
from albert.errors import AlbertError
from assertions import one_line_error

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
SQUAD = DATA / "squad"
needs_data = pytest.mark.skipif(not (SQUAD / "dev-v1.1.json").is_file(), reason=f"SQuAD dev not found under {DATA}")


@pytest.fixture(scope="module")
def dev():
    return load_squad(SQUAD)["validation"]


@needs_data
def test_real_dev_matches_provenance(dev):
    # squad/PROVENANCE.md: 48 articles, 2,067 paragraphs, 10,570 questions, 34,726 answers.
    assert len(dev) == 10570
    assert len(set(dev["title"])) == 48
    assert len(set(zip(dev["title"], dev["context"]))) == 2067
    answers = dev["answers"]
    assert sum(len(a["text"]) for a in answers) == 34726
    for context, a in zip(dev["context"][:500], answers[:500]):
        for text, start in zip(a["text"], a["answer_start"]):
            assert context[start:start + len(text)] == text
    assert dev[0]["id"] == "56be4db0acb8001400a502ec" and dev[0]["answers"]["text"][0] == "Denver Broncos"
    assert set(load_squad(SQUAD)) == {"validation"}  # no train-v1.1.json here


@needs_data
def test_split_by_article(dev):
    split = split_by_article(dev, 5)
    train_titles = list(dict.fromkeys(split["train"]["title"]))
    assert train_titles == list(dict.fromkeys(dev["title"]))[:5]
    assert not set(train_titles) & set(split["validation"]["title"])
    assert len(split["train"]) + len(split["validation"]) == len(dev)
    assert split_by_article(dev, 5)["train"]["id"] == split["train"]["id"]  # deterministic
    with pytest.raises(AlbertError, match="between 1 and 47"):
        split_by_article(dev, 48)


def _doc(answer_start: int = 9, text: str = "Broncos", **qa_extra) -> dict:
    qa = {"id": "q1", "question": "Who won?", "answers": [{"answer_start": answer_start, "text": text}], **qa_extra}
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Denver's Broncos won the game.", "qas": [qa]}]}]}


def _write(path: Path, doc: dict | str | bytes) -> Path:
    if isinstance(doc, dict):
        doc = json.dumps(doc, indent=2)
    if isinstance(doc, str):
        doc = doc.encode("utf-8")
    path.write_bytes(doc)
    return path


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_reads_a_small_file(tmp_path):
    rows = read_squad(_write(tmp_path / "dev.json", _doc()))
    assert rows == [{"id": "q1", "title": "T", "context": "Denver's Broncos won the game.", "question": "Who won?",
                     "answers": {"text": ["Broncos"], "answer_start": [9]}}]


def test_answer_not_matching_context_names_the_answer_line(tmp_path):
    path = _write(tmp_path / "dev.json", _doc(answer_start=10))
    with pytest.raises(AlbertError) as err:
        read_squad(path)
    # The error points at the answer object, i.e. the line of its opening brace.
    line = _line_of(path, '"answer_start": 10') - 1
    assert f"{path}:{line}:" in str(err.value)
    assert "does not match the context" in str(err.value) and "'roncos '" in str(err.value)


@pytest.mark.parametrize("doc, problem, needle", [
    ({"version": "1.1", "articles": []}, 'a "data" list', None),
    ({"version": "v2.0", "data": []}, "only SQuAD v1.1", None),
    (_doc(is_impossible=True), "SQuAD v2.0", '"id": "q1"'),
    ({"data": [{"title": "T", "paragraphs": [{"context": 3, "qas": []}]}]}, 'a "context" string', '"context": 3'),
    (_doc(text=""), "does not match", '"text": ""'),
])
def test_malformed_shapes_name_file_and_line(tmp_path, doc, problem, needle):
    path = _write(tmp_path / "dev.json", doc)
    with pytest.raises(AlbertError) as err:
        read_squad(path)
    assert problem in str(err.value)
    assert str(path) in str(err.value)
    if needle:  # the line of the object holding the bad field, at or above the field itself
        line = int(str(err.value).split(":")[1])
        assert 1 < line <= _line_of(path, needle)


def test_bad_json_and_bytes(tmp_path):
    path = _write(tmp_path / "a.json", '{"version": "1.1",\n "data": [\n  {"title": }\n]}')
    with pytest.raises(AlbertError, match=re.escape(f"{path}:3: not valid JSON")):
        read_squad(path)
    path = _write(tmp_path / "b.json", b'{"version": "1.1",\n "data": ["\xff"]}')
    with pytest.raises(AlbertError, match=re.escape(f"{path}:2: not valid UTF-8")):
        read_squad(path)
    with pytest.raises(AlbertError, match="data file not found"):
        load_squad(tmp_path)
    with pytest.raises(AlbertError, match="data directory not found"):
        load_squad(tmp_path / "none")


# ----- malformed input

def squad_doc(context: str = "The cat sat on the mat.", text: str = "the mat", start: int = 15) -> dict:
    return {"version": "1.1", "data": [{"title": "Cats", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Where did the cat sit?", "answers": [{"text": text, "answer_start": start}]}]}]}]}


SQUAD_BAD = {
    "answer outside the context": (json.dumps(squad_doc(start=400), indent=1), "does not match the context at answer_start 400"),
    "negative answer_start": (json.dumps(squad_doc(start=-3), indent=1), "answer_start -3"),
    "mismatched answer text": (json.dumps(squad_doc(text="the hat"), indent=1), "'the hat' of question 'q1' does not match"),
    "not JSON": ("version: 1.1\ndata: []\n", "not valid JSON"),
    "truncated JSON": (json.dumps(squad_doc(), indent=1)[:-40], "not valid JSON"),
    "not SQuAD": ('{"rows": []}', 'expected a JSON object with a "data" list'),
    "SQuAD 2.0": (json.dumps({"version": "v2.0", "data": []}), "only SQuAD v1.1"),
}


@pytest.mark.parametrize("name", SQUAD_BAD)
def test_malformed_squad_names_file_and_line(tmp_path, name):
    text, problem = SQUAD_BAD[name]
    path = tmp_path / "dev-v1.1.json"
    path.write_text(text)
    with pytest.raises(AlbertError) as e:
        read_squad(path)
    msg = one_line_error(e, f"{path}:", problem)
    if "answer" in name:  # the line where the offending answer object starts
        line = int(msg[len(str(path)) + 1:].split(":")[0])
        lines = text.splitlines()
        assert lines[line - 1].strip() == "{" and '"text"' in lines[line], (line, lines[line - 1:line + 1])


# ----- SQuAD v2.0 (issue 33): a small file in the official layout, tests/fixtures/squad2

SQUAD2 = Path(__file__).resolve().parents[1] / "fixtures" / "squad2"


def test_reads_squad2_with_unanswerable_questions():
    d = load_squad(SQUAD2, version=2)
    dev = d["validation"]
    assert len(d["train"]) == 2 and len(dev) == 14
    impossible = [qid for qid, a in zip(dev["id"], dev["answers"]) if not a["text"]]
    assert impossible == ["b04", "b05", "m03", "m04", "g03"]  # their plausible answers are not gold answers
    b02 = dev[dev["id"].index("b02")]["answers"]
    assert b02["text"] == ["the Coathanger", '"the Coathanger"', "Coathanger"]
    with pytest.raises(AlbertError, match="only SQuAD v1.1"):
        read_squad(SQUAD2 / "dev-v2.0.json")  # the v1.1 task refuses v2.0 data


def squad2_doc(**qa_extra) -> dict:
    qa = {"id": "q1", "question": "Where did the dog sit?", "answers": [], "is_impossible": True,
          "plausible_answers": [{"text": "the mat", "answer_start": 15}], **qa_extra}
    return {"version": "v2.0", "data": [{"title": "Cats", "paragraphs": [{"context": "The cat sat on the mat.",
                                                                          "qas": [qa]}]}]}


SQUAD2_BAD = {
    "plausible answer outside the context": (
        squad2_doc(plausible_answers=[{"text": "the mat", "answer_start": 90}]),
        "answer_start 90: the offset is outside the context (23 characters)", '"text": "the mat"'),
    "answer outside the context": (
        squad2_doc(is_impossible=False, answers=[{"text": "mat", "answer_start": 21}]),
        "answer_start 21: the offset is outside the context", '"text": "mat"'),
    "impossible with answers": (
        squad2_doc(answers=[{"text": "the mat", "answer_start": 15}]), "is_impossible but has answers", '"id": "q1"'),
    "answerable without answers": (squad2_doc(is_impossible=False), "has no answers and is not is_impossible",
                                   '"id": "q1"'),
    "is_impossible not a boolean": (squad2_doc(is_impossible="yes"), '"is_impossible" must be true or false',
                                    '"id": "q1"'),
}


@pytest.mark.parametrize("name", SQUAD2_BAD)
def test_malformed_squad2_names_file_and_line(tmp_path, name):
    doc, problem, needle = SQUAD2_BAD[name]
    path = tmp_path / "dev-v2.0.json"
    text = json.dumps(doc, indent=1)
    path.write_text(text)
    with pytest.raises(AlbertError) as e:
        read_squad(path, version=2)
    msg = one_line_error(e, f"{path}:", problem)
    line = int(msg[len(str(path)) + 1:].split(":")[0])
    assert needle in text.splitlines()[line], (line, text.splitlines()[line - 1:line + 1])
