"""Corpus resolution, the document model, sentence splitting and robust reading."""
from __future__ import annotations

import gzip
import itertools
import logging
import os
import random
from pathlib import Path

import pytest

from albert.data import corpus as corpus_mod
from albert.data.corpus import HOLD_OUT_EVERY, MAX_LINE_CHARS, resolve_corpus
from albert.data.sentences import is_heading
from albert.data.pretraining import build_pretraining_dataset
from albert.errors import AlbertError
from albert.tokenizer import train_tokenizer
from assertions import one_line_error
from synthetic_text import WORDS, prose

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
WIKI_VALID = DATA / "wiki" / "wiki-valid.txt.gz"
WIKITEXT2_TEST = DATA / "wikitext-2-raw" / "wiki.test.raw"
needs_wiki = pytest.mark.skipif(not WIKI_VALID.is_file(), reason=f"no {WIKI_VALID} (set ALBERT_DATA)")


def _all(corpus) -> list[list[str]]:
    """Every document's paragraphs, held-out ones (index 0, 100, ...) first."""
    return [d for split in ("valid", "train") for d in corpus.paragraphs(split)]


def _write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def test_plain_documents_and_held_out(tmp_path):
    docs = [f"Document {i} begins here. It has two sentences.\nA second paragraph {i}." for i in range(250)]
    path = _write(tmp_path / "c.txt", "\n\n\n".join(docs) + "\n")
    corpus = resolve_corpus(str(path))
    valid = list(corpus.documents("valid"))
    train = list(corpus.documents("train"))
    # The held-out documents are those whose index is a multiple of 100.
    assert [d[0] for d in valid] == [f"Document {i} begins here." for i in range(0, 250, HOLD_OUT_EVERY)]
    assert len(train) == 250 - len(valid)
    assert train[0] == ["Document 1 begins here.", "It has two sentences.", "A second paragraph 1."]
    assert list(corpus.documents("train", max_docs=3)) == train[:3]
    assert list(itertools.islice(corpus.texts("train"), 2)) == [
        "Document 1 begins here. It has two sentences.", "A second paragraph 1."]
    assert "multiple of 100" in corpus.held_out


def test_directory_and_glob(tmp_path):
    for k in range(3):
        _write(tmp_path / f"part{k}.txt.gz" if k % 2 else tmp_path / f"part{k}.txt",
               "\n\n".join(f"File {k} doc {i}. More text." for i in range(5)))
    (tmp_path / "notes.md").write_text("Not a corpus file.")
    by_dir = resolve_corpus(str(tmp_path))
    by_glob = resolve_corpus(str(tmp_path / "part*"))
    assert _all(by_dir) == _all(by_glob)
    assert sorted(d[0] for d in _all(by_dir)) == sorted(f"File {k} doc {i}. More text." for k in range(3) for i in range(5))
    # One document per file-ordinal offset is held out, not the first of every file.
    assert len(list(by_dir.documents("valid"))) == 1


def test_wiki_format_drops_titles_and_headings(tmp_path):
    text = ("Zoe Tuck\nZoe Tuck is an American poet. She lives in Massachusetts.\nWorks.\n"
            "Tuck has been featured on poets.org and in several other places.\n\n"
            "Second Article\nEarly life.\nIt was a long time ago. Things happened.\n")
    path = _write(tmp_path / "wiki-000.txt.gz", text)
    docs = _all(resolve_corpus(str(path)))
    assert docs == [["Zoe Tuck is an American poet. She lives in Massachusetts.",
                     "Tuck has been featured on poets.org and in several other places."],
                    ["It was a long time ago. Things happened."]]
    kept = _all(resolve_corpus(str(path), drop_headings=False))
    assert kept[0][1] == "Works." and kept[1][0] == "Early life."
    plain = _all(resolve_corpus(str(path), fmt="plain"))
    assert plain[0][0] == "Zoe Tuck"


@needs_wiki
def test_wiki_from_data_root():
    corpus = resolve_corpus("wiki", DATA)
    assert str(WIKI_VALID) in corpus.held_out
    docs = list(corpus.documents("valid", max_docs=50))
    assert len(docs) == 50
    with gzip.open(WIKI_VALID, "rt", encoding="utf-8") as f:
        blocks = [b.split("\n") for b in itertools.islice(f.read().split("\n\n"), 50)]
    for doc, block in zip(docs, blocks):
        title, body = block[0], [line for line in block[1:] if not is_heading(line)]
        assert doc and doc[0] != title
        # Splitting into sentences loses no text.
        assert " ".join(doc).split() == " ".join(body).split()


@pytest.mark.skipif(not WIKITEXT2_TEST.is_file(), reason=f"no {WIKITEXT2_TEST}")
def test_wikitext_format():
    corpus = resolve_corpus(str(WIKITEXT2_TEST))  # CRLF line ends, " = Title = " articles
    docs = _all(corpus)
    assert len(docs) == 62  # the file's 62 top-level titles (PROVENANCE.md)
    assert docs[0][0].startswith("Robert Boulter is an English film, television and theatre actor.")
    paras = [p for d in docs for p in d]
    assert not any(p.startswith("= =") or "@-@" in p or "\r" in p for p in paras)
    assert "a guest-starring role" in paras[0]


# ----- bad input

def test_bad_bytes_are_replaced_and_counted(tmp_path, caplog):
    raw = "Caf\u00e9 is good. It opens early.".encode() + b" Bad \xff\xfe bytes here.\n\nNext doc."
    path = _write(tmp_path / "bad.txt.gz", raw)
    with caplog.at_level(logging.WARNING, logger="albert.data.corpus"):
        docs = list(resolve_corpus(str(path)).paragraphs("valid"))
    assert docs == [["Caf\u00e9 is good. It opens early. Bad \ufffd\ufffd bytes here."]]
    assert "replaced 2 bytes" in caplog.text and "bad.txt.gz" in caplog.text


def test_huge_line_is_cut_into_pieces(tmp_path):
    words = [f"w{i}" for i in range(6000)]  # ~35k characters, no newline, no sentence end
    path = _write(tmp_path / "huge.txt", " ".join(words))
    pieces = list(corpus_mod.lenient_lines(path))
    assert len(pieces) >= 3 and all(len(p) <= MAX_LINE_CHARS for p in pieces)
    assert " ".join(pieces).split() == words  # cut at spaces: no word lost or broken


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(AlbertError, match="nope.txt"):
        resolve_corpus(str(missing))
    with pytest.raises(AlbertError, match="no file matches"):
        resolve_corpus(str(tmp_path / "*.txt.gz"))


def test_empty_corpus(tmp_path):
    with pytest.raises(AlbertError, match="is empty"):
        resolve_corpus(str(tmp_path))  # a directory without text files
    _write(tmp_path / "blank.txt", "\n\n   \n\n")
    with pytest.raises(AlbertError, match="is empty"):
        list(resolve_corpus(str(tmp_path / "blank.txt")).documents("valid"))
    # Wiki documents with nothing but a title and headings are empty too.
    _write(tmp_path / "wiki-000.txt", "Title\nHistory.\n\nOther title\n")
    with pytest.raises(AlbertError, match="is empty"):
        list(resolve_corpus(str(tmp_path / "wiki-000.txt")).texts("train"))


def test_unknown_split_and_format(tmp_path):
    path = _write(tmp_path / "c.txt", "One sentence.")
    with pytest.raises(AlbertError, match="unknown split"):
        list(resolve_corpus(str(path)).documents("test"))
    with pytest.raises(AlbertError, match="format"):
        resolve_corpus(str(path), fmt="xml")


def test_wiki_without_local_files_or_hub(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    # No network here; offline mode makes the hub attempt fail at once instead of retrying.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    with pytest.raises(AlbertError) as err:
        resolve_corpus("wiki", tmp_path)
    msg = str(err.value)
    assert "wiki-0*.txt.gz" in msg and "ALBERT_DATA" in msg and "wikimedia/wikipedia" in msg
    monkeypatch.delenv("ALBERT_DATA", raising=False)
    with pytest.raises(AlbertError, match="ALBERT_DATA is not set"):
        resolve_corpus("wikitext-103")


def test_hub_sources_without_network(tmp_path, monkeypatch):
    # Stand-ins for the hub datasets (same columns), to check how their rows become documents.
    import datasets

    wikipedia = datasets.Dataset.from_dict({"text": [
        f"Article {i} starts with this sentence. It goes on here.\n\nHistory\n\nLater on, paragraph {i} said more things."
        for i in range(250)]})
    wikitext = {
        "train": datasets.Dataset.from_dict({"text": [
            " = Alpha = \n", "\n", " Alpha is a one @-@ off letter , first of all . It leads . \n", " = = Use = = \n",
            " It is used often . \n", " = Beta = \n", " Beta follows it . \n"]}),
        "validation": datasets.Dataset.from_dict({"text": [" = Gamma = \n", " Gamma is third . \n"]}),
    }
    asked = []

    def fake_hub(path, config, split):
        asked.append((path, config, split))
        return wikipedia if path == "wikimedia/wikipedia" else wikitext[split]

    monkeypatch.setattr(corpus_mod, "_hub", fake_hub)
    wiki = resolve_corpus("wiki", tmp_path)  # no local files under tmp_path
    assert asked == [("wikimedia/wikipedia", "20231101.en", "train")]
    valid = list(wiki.documents("valid"))
    assert [d[0] for d in valid] == [f"Article {i} starts with this sentence." for i in (0, 100, 200)]
    assert valid[0] == ["Article 0 starts with this sentence.", "It goes on here.", "Later on, paragraph 0 said more things."]
    shards = wiki.shards("train", 3)
    assert len(shards) == 3
    assert [d for s in shards for d in s.documents()] == list(wiki.paragraphs("train"))
    assert len(list(wiki.documents("train"))) == 247

    wt = resolve_corpus("wikitext-103", tmp_path)
    assert list(wt.paragraphs("train")) == [["Alpha is a one-off letter, first of all. It leads.", "It is used often."],
                                            ["Beta follows it."]]
    assert list(wt.documents("valid")) == [["Gamma is third."]]


# ----- odd, missing and empty corpora

@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(prose(80, 0).splitlines(), tmp_path_factory.mktemp("spm"), vocab_size=200)


def test_odd_corpora_build_examples(tmp_path, tokenizer):
    """Empty documents, one-sentence documents and a 100k-character line all work."""
    rng = random.Random(0)
    huge = " ".join(rng.choice(WORDS) + ("." if i % 9 == 8 else "") for i in range(20_000)).capitalize()
    text = ("\n\n\n   \n\t\n" + prose(20, 1) + "\n\n\n\n" + prose(15, 2, sentences=(1, 1))
            + "\n\n" + huge + "\n\n" + prose(5, 3))
    assert len(huge) > 100_000
    path = tmp_path / "odd.txt"
    path.write_text(text)
    corpus = resolve_corpus(str(path))
    docs = list(corpus.documents("train"))
    assert docs and all(docs) and max(len(" ".join(d)) for d in docs) > 100_000
    ds = build_pretraining_dataset(corpus, tokenizer, "train", 64, tmp_path / "cache", num_proc=1)
    assert len(ds) > 50 and max(len(x) for x in ds["input_ids"]) <= 64


def test_missing_and_empty_corpora(tmp_path, tokenizer):
    with pytest.raises(AlbertError) as e:
        resolve_corpus(str(tmp_path / "nope.txt"))
    one_line_error(e, str(tmp_path / "nope.txt"), "no such file or directory")
    (tmp_path / "blank.txt").write_text("\n\n  \n\t\n")
    with pytest.raises(AlbertError) as e:
        build_pretraining_dataset(resolve_corpus(str(tmp_path / "blank.txt")), tokenizer, "train", 64, tmp_path / "c")
    one_line_error(e, "blank.txt", "is empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AlbertError) as e:
        resolve_corpus(str(tmp_path / "empty"))
    one_line_error(e, "empty", "no *.txt or *.txt.gz file")
    (tmp_path / "broken.txt.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(AlbertError) as e:
        list(resolve_corpus(str(tmp_path / "broken.txt.gz")).documents("train"))
    one_line_error(e, "broken.txt.gz", "cannot read")


def test_the_cache_key_follows_the_content_not_the_modification_time(tmp_path):
    """A re-provisioned corpus (same bytes, new mtime) keeps its cached vocabulary and examples;
    changed bytes do not."""
    path = tmp_path / "corpus.txt"
    path.write_text("One sentence here. Another one there.\n\nA second document.\n")
    before = resolve_corpus(str(path)).fingerprint("train")
    os.utime(path, (1_000_000, 1_000_000))
    assert resolve_corpus(str(path)).fingerprint("train") == before
    path.write_text("One sentence here. Another one there.\n\nA secund document.\n")  # same size
    os.utime(path, (1_000_000, 1_000_000))
    assert resolve_corpus(str(path)).fingerprint("train") != before
