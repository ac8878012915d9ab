"""RACE reader: the official per-article files (tests/fixtures/RACE, written in that layout) and
file:line errors for bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from albert.data.race import from_hub_format, load_race, read_race
from albert.errors import AlbertError
from assertions import one_line_error

RACE = Path(__file__).resolve().parents[1] / "fixtures" / "RACE"


def test_reads_middle_and_high_articles():
    d = load_race(RACE)
    assert set(d) == {"train", "validation"} and len(d["train"]) == 3
    dev = d["validation"]
    assert dev["id"] == ["middle1.txt-0", "middle2.txt-0", "middle2.txt-1", "high1.txt-0"]
    assert dev["level"] == ["middle", "middle", "middle", "high"] and dev["label"] == [2, 0, 1, 3]
    assert dev[0]["question"] == "Lily's new pet is _ ." and dev[0]["options"] == ["a dog", "a bird", "a cat", "a fish"]
    test_as_dev = load_race(RACE, dev_dir=RACE / "train")  # e.g. RACE/test in place of dev/
    assert test_as_dev["validation"]["id"] == d["train"]["id"]


def test_files_in_numeric_order(tmp_path):
    for n in (10, 2, 1):
        doc = {"answers": ["A"], "options": [["a", "b", "c", "d"]], "questions": ["q"], "article": f"art {n}",
               "id": f"high{n}.txt"}
        (tmp_path / "high").mkdir(exist_ok=True)
        (tmp_path / "high" / f"{n}.txt").write_text(json.dumps(doc))
    assert [r["id"] for r in read_race(tmp_path)] == ["high1.txt-0", "high2.txt-0", "high10.txt-0"]


def _broken(tmp_path: Path, edit) -> Path:
    """A copy of the fixture with dev/middle/2.txt edited (as indented JSON, for line numbers)."""
    root = tmp_path / "RACE"
    shutil.copytree(RACE, root)
    path = root / "dev" / "middle" / "2.txt"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=1))
    return path


@pytest.mark.parametrize("edit, problem, needle", [
    (lambda d: d["options"][1].pop(), "question 1 has 3 options; RACE has exactly 4", '"by bus"'),
    (lambda d: d["options"][0].append("on Saturday"), "question 0 has 5 options", '"on Monday"'),
    (lambda d: d["answers"].__setitem__(1, "E"), "answer 'E' of question 1 is not one of A, B, C, D", None),
    (lambda d: d.pop("questions"), 'a RACE article needs a "questions" list', None),
    (lambda d: d["answers"].pop(), "2 questions, 2 option lists and 1 answers", None),
])
def test_bad_articles_name_file_and_line(tmp_path, edit, problem, needle):
    path = _broken(tmp_path, edit)
    with pytest.raises(AlbertError) as err:
        load_race(path.parents[2])
    msg = one_line_error(err, f"{path}:", problem)
    if needle is not None:  # the line where the offending option list starts
        line = int(msg[len(str(path)) + 1:].split(":")[0])
        assert needle in path.read_text().splitlines()[line], msg


def test_bad_json_and_missing_directories(tmp_path):
    (tmp_path / "dev" / "high").mkdir(parents=True)
    (tmp_path / "dev" / "high" / "1.txt").write_text('{"article": "x",\n "questions": [}')
    with pytest.raises(AlbertError) as err:
        read_race(tmp_path / "dev")
    one_line_error(err, f"{tmp_path / 'dev' / 'high' / '1.txt'}:2:", "not valid JSON")
    with pytest.raises(AlbertError, match="no middle/ or high/ directory"):
        read_race(tmp_path)
    with pytest.raises(AlbertError, match=r"train: data directory not found"):
        load_race(tmp_path)


def test_hub_layout_is_converted():
    row = {"example_id": "high19432.txt", "article": "a", "answer": "C", "question": "q", "options": ["1", "2", "3", "4"]}
    hub = DatasetDict({"train": Dataset.from_list([row, {**row, "answer": "A"}, {**row, "example_id": "middle3.txt"}])})
    d = from_hub_format(hub)
    assert d["train"]["id"] == ["high19432.txt-0", "high19432.txt-1", "middle3.txt-0"]
    assert d["train"]["level"] == ["high", "high", "middle"] and d["train"]["label"] == [2, 0, 2]
