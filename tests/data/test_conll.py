"""CoNLL-2003 reader: the real files' counts, and an AlbertError with file:line for every malformed input."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from hypothesis import given
from hypothesis import strategies as st

from albert.data.conll import from_hub_format, label_list, load_conll, read_conll
from albert.errors import AlbertError
from assertions import one_line_error
from strategies import GARBAGE, HYPOTHESIS
from synthetic_text import TAGS

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
CONLL = DATA / "conll2003"
needs_data = pytest.mark.skipif(not (CONLL / "train.txt").is_file(), reason=f"CoNLL-2003 not found under {DATA}")

TAGS9 = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]


@pytest.fixture(scope="module")
def conll() -> DatasetDict:
    return load_conll(CONLL)


@needs_data
def test_real_files_match_provenance_counts(conll):
    # PROVENANCE.md: sentences excluding -DOCSTART-, tokens, and entity starts per type.
    assert {s: len(d) for s, d in conll.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    assert sum(len(t) for t in conll["train"]["tokens"]) == 203621
    assert sum(len(t) for t in conll["validation"]["tokens"]) == 51362
    assert sum(len(t) for t in conll["test"]["tokens"]) == 46435
    starts = Counter(t[2:] for seq in conll["train"]["tags"] for t in seq if t.startswith("B-"))
    assert starts == {"PER": 6600, "ORG": 6321, "LOC": 7140, "MISC": 3438}
    starts = Counter(t[2:] for seq in conll["validation"]["tags"] for t in seq if t.startswith("B-"))
    assert starts == {"PER": 1842, "ORG": 1341, "LOC": 1837, "MISC": 922}
    assert label_list(conll["train"]) == TAGS9
    assert conll["train"][0] == {"id": "0", "tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British",
                                                        "lamb", "."],
                                 "tags": ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]}
    assert all("-DOCSTART-" not in toks for toks in conll["train"]["tokens"][:2000])


@needs_data
def test_albert_data_env_is_the_default(monkeypatch):
    monkeypatch.setenv("ALBERT_DATA", str(DATA))
    d = load_conll(dev_file=CONLL / "valid.txt", train_file=CONLL / "valid.txt")
    assert len(d["train"]) == len(d["validation"]) == 3250  # explicit files win over the directory
    assert len(d["test"]) == 3453  # the rest comes from $ALBERT_DATA/conll2003


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


GOOD = "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\nin IN B-PP O\nNew NNP B-NP B-LOC\nYork NNP I-NP I-LOC\n\n" \
       "Hi UH B-INTJ O\n\n-DOCSTART- -X- -X- O\n\nMary NNP B-NP B-PER\n"


def test_parses_sentences_and_drops_docstart(tmp_path):
    sentences = read_conll(_write(tmp_path / "a.txt", GOOD))
    assert [s.tokens for s in sentences] == [["John", "lives", "in", "New", "York"], ["Hi"], ["Mary"]]
    assert [s.tags for s in sentences] == [["B-PER", "O", "O", "B-LOC", "I-LOC"], ["O"], ["B-PER"]]
    assert sentences[0].lines == [3, 4, 5, 6, 7]
    # Two columns (token, tag) are enough; CRLF line endings are accepted.
    two = read_conll(_write(tmp_path / "b.txt", "A B-ORG\r\nb I-ORG\r\n\r\nc O\r\n"))
    assert [s.tags for s in two] == [["B-ORG", "I-ORG"], ["O"]]


@pytest.mark.parametrize("text, line, problem", [
    ("John NNP B-NP B-PER\nlives\n", 2, "at least 2 columns"),
    ("John NNP B-NP B-PER\nlives VBZ O\n", 2, "found 3 columns, but line 1 has 4"),
    ("\nJohn NNP B-NP PER\n", 2, "unknown NER tag 'PER'"),
    ("John NNP B-NP B-PER\n\nX NN I-NP E-PER\n", 3, "unknown NER tag 'E-PER'"),
    ("John NNP B-NP B-\n", 1, "unknown NER tag 'B-'"),
    (b"John NNP B-NP B-PER\nM\xfcller NNP I-NP I-PER\n", 2, "not valid UTF-8"),
])
def test_malformed_lines_name_file_and_line(tmp_path, text, line, problem):
    path = _write(tmp_path / "bad.txt", text)
    with pytest.raises(AlbertError) as err:
        read_conll(path)
    assert f"{path}:{line}:" in str(err.value)
    assert problem in str(err.value)


def test_chunk_and_pos_columns(tmp_path):
    path = _write(tmp_path / "a.txt", GOOD)
    chunks = [["B-NP", "B-VP", "B-PP", "B-NP", "I-NP"], ["B-INTJ"], ["B-NP"]]
    assert [s.tags for s in read_conll(path, "chunk")] == chunks
    assert [s.tags for s in read_conll(path, "pos")] == [["NNP", "VBZ", "IN", "NNP", "NNP"], ["UH"], ["NNP"]]
    assert label_list([["NNP", "VBZ"], ["DT"]]) == ["DT", "NNP", "VBZ"]  # no "O" where no tag is O
    # A 2-column file has only the NER tags; chunk tags are IOB2 spans like NER's.
    two = _write(tmp_path / "two.txt", "John B-PER\n")
    with pytest.raises(AlbertError) as err:
        read_conll(two, "pos")
    assert f"{two}:1:" in str(err.value)
    assert "expected 4 columns (token POS chunk NER) for the POS tags" in str(err.value)
    bad = _write(tmp_path / "bad.txt", "John NNP NP B-PER\n")
    with pytest.raises(AlbertError, match=r"bad\.txt:1: unknown chunk tag 'NP'"):
        read_conll(bad, "chunk")
    with pytest.raises(AlbertError, match="unknown CoNLL tag column 'lemma'"):
        read_conll(path, "lemma")


@needs_data
def test_real_chunk_and_pos_columns_match_a_plain_reading():
    def plain(name: str, col: int) -> list[list[str]]:
        sentences, current = [], []
        for line in (CONLL / name).read_text().splitlines() + [""]:
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if current:
                    sentences.append(current)
                current = []
            else:
                current.append(cols[col])
        return sentences

    for column, col in (("pos", 1), ("chunk", 2)):
        d = load_conll(CONLL, column=column, unseen_tags_scored=True)
        assert d["train"]["tags"] == plain("train.txt", col) and d["validation"]["tags"] == plain("valid.txt", col)
    pos = load_conll(CONLL, column="pos", unseen_tags_scored=True)
    assert len(label_list(pos["train"])) == 45 and pos["train"][0]["tags"][:3] == ["NNP", "VBZ", "JJ"]
    # The dev set's 2 words tagged I-PRT, a chunk tag the training file never uses: an error unless
    # the task scores unseen tags.
    with pytest.raises(AlbertError, match=r"valid\.txt:\d+: chunk tag 'I-PRT' never occurs in the training file"):
        load_conll(CONLL, column="chunk")


def test_dev_tag_unseen_in_train_names_the_dev_line(tmp_path):
    _write(tmp_path / "train.txt", GOOD)
    dev = _write(tmp_path / "valid.txt", "Paris NNP B-NP B-LOC\n\nIBM NNP B-NP B-ORG\n")
    with pytest.raises(AlbertError) as err:
        load_conll(tmp_path)
    assert f"{dev}:3:" in str(err.value) and "'B-ORG'" in str(err.value) and "train.txt" in str(err.value)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(AlbertError, match="data directory not found"):
        load_conll(tmp_path / "nowhere")
    _write(tmp_path / "train.txt", GOOD)
    with pytest.raises(AlbertError, match=r"valid\.txt: data file not found"):
        load_conll(tmp_path)
    with pytest.raises(AlbertError, match=r"dev\.txt: data file not found"):
        load_conll(tmp_path, dev_file=tmp_path / "dev.txt")
    empty = _write(tmp_path / "empty.txt", "-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(AlbertError, match="no sentences"):
        read_conll(empty)


def test_loaded_splits_and_optional_test(tmp_path):
    _write(tmp_path / "train.txt", GOOD)
    _write(tmp_path / "valid.txt", "Paris NNP B-NP B-LOC\n")
    d = load_conll(tmp_path)
    assert set(d) == {"train", "validation"}
    assert d["validation"][0] == {"id": "0", "tokens": ["Paris"], "tags": ["B-LOC"]}
    assert label_list(d["train"]) == ["O", "B-LOC", "B-PER", "I-LOC"]


def test_hub_layout_is_converted_to_tag_strings():
    names = ["O", "B-PER", "I-PER", "B-ORG"]
    features = Features({"id": Value("string"), "tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=names))})
    hub = DatasetDict(train=Dataset.from_list(
        [{"id": "7", "tokens": ["Ann", "Lee", "of", "IBM"], "ner_tags": [1, 2, 0, 3]}], features=features))
    out = from_hub_format(hub)
    assert out["train"][0] == {"id": "7", "tokens": ["Ann", "Lee", "of", "IBM"], "tags": ["B-PER", "I-PER", "O", "B-ORG"]}
    pos = Features({"id": Value("string"), "tokens": Sequence(Value("string")),
                    "pos_tags": Sequence(ClassLabel(names=["NNP", "IN"]))})
    hub = DatasetDict(train=Dataset.from_list([{"id": "1", "tokens": ["Ann", "of"], "pos_tags": [0, 1]}], features=pos))
    assert from_hub_format(hub, "pos")["train"][0]["tags"] == ["NNP", "IN"]


def test_where_data_comes_from_without_a_directory(tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setenv("ALBERT_DATA", str(tmp_path))  # set, but without conll2003/: an error, not the hub
    with pytest.raises(AlbertError, match=r"conll2003: data directory not found"):
        load_conll()
    monkeypatch.delenv("ALBERT_DATA")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(AlbertError, match="no local data and the hub is offline"):
        load_conll()


# ----- malformed, odd and random input

CONLL_BAD = {
    "missing NER column": ("EU NNP B-NP B-ORG\nrejects\n", 2, "expected at least 2 columns"),
    "column count changes": ("EU NNP B-NP B-ORG\nrejects VBZ O\n", 2, "found 3 columns, but line 1 has 4"),
    "unknown tag": ("EU NNP B-NP B_ORG\n", 1, "unknown NER tag 'B_ORG'"),
    "tag without type": ("EU NNP B-NP B-\n", 1, "unknown NER tag 'B-'"),
    "lower-case tag": ("EU NNP B-NP o\n", 1, "unknown NER tag 'o'"),
    "not UTF-8": ("EU NNP B-NP O\n\n\xff\xfe NNP B-NP O\n", 3, "not valid UTF-8"),
    "only DOCSTART and blanks": ("-DOCSTART- -X- -X- O\n\n\n\n", None, "no sentences found"),
    "empty file": ("", None, "no sentences found"),
}


@pytest.mark.parametrize("name", CONLL_BAD)
def test_malformed_conll_names_file_and_line(tmp_path, name):
    text, line, problem = CONLL_BAD[name]
    path = tmp_path / "train.txt"
    path.write_bytes(text.encode("latin-1") if name == "not UTF-8" else text.encode())
    with pytest.raises(AlbertError) as e:
        read_conll(path)
    one_line_error(e, f"{path}:{line}:" if line else f"{path}:", problem)


def test_odd_but_valid_conll_reads(tmp_path):
    """Mixed tabs and spaces, CRLF, a BOM, runs of blank lines (empty sentences) and DOCSTARTs."""
    text = ("\ufeff-DOCSTART- -X- -X- O\r\n\r\n\r\n"
            "EU\tNNP B-NP\tB-ORG\r\nrejects  VBZ \tB-VP O\r\n\n\n\n"
            "-DOCSTART- -X- -X- O\n\n"
            "Peter NNP B-NP B-PER\n \t \nBlackburn NNP B-NP B-LOC\n")
    path = tmp_path / "odd.txt"
    path.write_bytes(text.encode())
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"], ["Blackburn"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"], ["B-LOC"]]


def _conll_token():
    # A CoNLL column is any run of non-white-space characters (str.split), other than -DOCSTART-.
    chars = st.characters(blacklist_categories=("Cs",))
    return st.text(chars, min_size=1, max_size=8).filter(lambda t: t.split() == [t] and t != "-DOCSTART-")


@HYPOTHESIS
@given(sentences=st.lists(st.lists(st.tuples(_conll_token(), st.sampled_from(TAGS)), min_size=1, max_size=6),
                          min_size=1, max_size=5),
       extra_columns=st.integers(0, 2), seps=st.lists(st.sampled_from([" ", "\t", "  ", " \t"]), min_size=1),
       gaps=st.lists(st.sampled_from(["\n", "\n\n", "\n-DOCSTART- -X- O\n\n", "\n \t\n"]), min_size=1),
       data=st.data())
def test_conll_round_trip(tmp_path, sentences, extra_columns, seps, gaps, data):
    lines = []
    for k, sentence in enumerate(sentences):
        for token, tag in sentence:
            middle = [data.draw(_conll_token()) for _ in range(extra_columns)]
            cols = [token, *middle, tag]
            line = cols[0]
            for i, col in enumerate(cols[1:]):
                line += seps[i % len(seps)] + col
            lines.append(line + "\n")
        lines.append(gaps[k % len(gaps)])
    path = tmp_path / "rt.txt"
    path.write_bytes("".join(lines).encode())
    got = read_conll(path)
    assert [s.tokens for s in got] == [[t for t, _ in s] for s in sentences]
    assert [s.tags for s in got] == [[g for _, g in s] for s in sentences]


@HYPOTHESIS
@given(blob=GARBAGE)
def test_conll_garbage_is_an_albert_error_or_parses(tmp_path, blob):
    path = tmp_path / "garbage.txt"
    path.write_bytes(blob)
    try:
        sentences = read_conll(path)
    except AlbertError as e:
        assert str(e).startswith(f"{path}") and "\n" not in str(e), str(e)
    else:
        assert sentences and all(len(s.tokens) == len(s.tags) > 0 for s in sentences)
