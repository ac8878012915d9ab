"""Reliability: malformed inputs to every reader.

Every failure must be an AlbertError whose message is one line naming the file (and line) and
the problem; inputs that are merely odd (mixed separators, BOMs, empty documents, huge lines)
must work. (Damaged checkpoints and a full disk: tests/train/test_checkpoints.py.)
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from albert.data.conll import load_conll, read_conll
from albert.data.corpus import resolve_corpus
from albert.data.glue import LAYOUTS, load_glue, read_tsv
from albert.data.pretraining import IGNORE_INDEX, NgramMasker, build_pretraining_dataset
from albert.data.squad import read_squad
from albert.errors import AlbertError
from albert.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID, train_tokenizer

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    """The AlbertError's message, checked to be one line containing every needle."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# --- synthetic data (no dependence on $ALBERT_DATA) ---------------------------------------------

SYLLABLES = ["ka", "lo", "mi", "ten", "ra", "su", "ven", "dor", "pa", "li", "gro", "bel", "nu", "sa", "tor"]
WORDS = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "s", "n")})[:400]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def conll_text(n_sentences: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for i in range(n_sentences):
        for j in range(rng.randint(3, 12)):
            tag = TAGS[(i + j) % len(TAGS)] if j == 0 else rng.choice(TAGS)
            word = rng.choice(WORDS)
            lines.append(f"{word.capitalize() if tag != 'O' else word} NN B-NP {tag}")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_ner_dir(path: Path, train: int = 120, dev: int = 30) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "train.txt").write_text(conll_text(train, 1))
    (path / "valid.txt").write_text(conll_text(dev, 2))
    return path


def prose(n_docs: int, seed: int, sentences: tuple[int, int] = (2, 6)) -> str:
    """Documents of capitalised sentences, a blank line between documents."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
                 for _ in range(rng.randint(*sentences))]
        docs.append(" ".join(sents))
    return "\n\n".join(docs) + "\n"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(prose(80, 0).splitlines(), tmp_path_factory.mktemp("spm"), vocab_size=200)


# --- CoNLL ----------------------------------------------------------------------------------------

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


def test_dev_tag_never_seen_in_train(tmp_path):
    (tmp_path / "train.txt").write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    (tmp_path / "valid.txt").write_text("Peter NNP B-NP B-PER\n\nEU NNP B-NP B-ORG\n\nBonn NNP B-NP B-LOC\n")
    with pytest.raises(AlbertError) as e:
        load_conll(tmp_path)
    one_line_error(e, f"{tmp_path / 'valid.txt'}:1:", "'B-PER' never occurs in the training file")


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


GARBAGE = st.lists(st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b" ", b"\t", b"\n", b"\r\n", b"\n\n", b"O", b"B-PER", b"I-", b"-DOCSTART-", b"\xef\xbb\xbf",
                     b"\xff", b"\xc3", b"\x00", b"\"", b"label", b"sentence", b"0", b"1", b"4.5", b"nan",
                     b"entailment", b"\t\t\t"]),
    st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass"))), max_size=40).map(b"".join)


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


# --- GLUE TSVs ------------------------------------------------------------------------------------

TSV_BAD = {
    "short row": ("sst2", "sentence\tlabel\na fine film\n", 2, "expected 2 tab-separated columns"),
    "long row": ("sst2", "sentence\tlabel\na fine\tfilm\t1\n", 2, "found 3"),
    "wrong header": ("sst2", "text\tlabel\na fine film\t1\n", 1, "header is ['text', 'label']"),
    "header missing": ("rte", "0\tA man.\tA person.\tentailment\n", 1, "header is"),
    "not UTF-8": ("sst2", "sentence\tlabel\ncaf\xe9 au lait\t1\n", 2, "not valid UTF-8 (byte 0xe9"),
    "label not a number": ("sst2", "sentence\tlabel\ngood\tpositive\n", 2, "label 'positive' is not an integer"),
    "label out of range": ("cola", "gj04\t7\t\tShe left.\n", 1, "label 7 is out of range"),
    "unknown label name": ("rte", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tneutral\n", 2, "label 'neutral'"),
    "score not finite": ("stsb", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
                                 "\tscore\n0\tg\tf\t2012\t1\ts\ts\tA.\tB.\tnan\n", 2, "outside [0.0, 5.0]"),
    "no data rows": ("sst2", "sentence\tlabel\n", None, "no data rows"),
}


@pytest.mark.parametrize("name", TSV_BAD)
def test_malformed_tsv_names_file_and_line(tmp_path, name):
    task, text, line, problem = TSV_BAD[name]
    path = tmp_path / "dev.tsv"
    path.write_bytes(text.encode("latin-1") if name == "not UTF-8" else text.encode())
    with pytest.raises(AlbertError) as e:
        read_tsv(path, task)
    one_line_error(e, f"{path}:{line}:" if line else f"{path}:", problem)


def test_bom_crlf_and_quotes_in_tsv_read(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("\ufeffsentence\tlabel\r\nit 's \"a film\t1\r\n' bad\t0\r\n".encode())
    rows, lines = read_tsv(path, "sst2")
    assert [(r["sentence1"], r["label"]) for r in rows] == [("it 's \"a film", 1), ("' bad", 0)]
    assert lines == [2, 3]


def test_dev_label_never_seen_in_train(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\nfine\t1\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nok\t1\nbad\t0\n")
    with pytest.raises(AlbertError) as e:
        load_glue("sst2", tmp_path)
    one_line_error(e, f"{tmp_path / 'dev.tsv'}:3:", "'negative' never occurs in the training file")


_TSV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=30)


@HYPOTHESIS
@given(rows=st.lists(st.tuples(_TSV_TEXT, _TSV_TEXT, st.sampled_from(["entailment", "not_entailment"])),
                     min_size=1, max_size=8), bom=st.booleans(), crlf=st.booleans())
def test_tsv_round_trip(tmp_path, rows, bom, crlf):
    end = "\r\n" if crlf else "\n"
    text = ("\ufeff" if bom else "") + "index\tsentence1\tsentence2\tlabel" + end
    text += "".join(f"{i}\t{a}\t{b}\t{label}{end}" for i, (a, b, label) in enumerate(rows))
    path = tmp_path / "dev.tsv"
    path.write_bytes(text.encode())
    got, lines = read_tsv(path, "rte")
    names = LAYOUTS["rte"].label_names
    assert [(r["id"], r["sentence1"], r["sentence2"], names[r["label"]]) for r in got] == \
           [(str(i), a, b, label) for i, (a, b, label) in enumerate(rows)]
    assert lines == list(range(2, len(rows) + 2))


@HYPOTHESIS
@given(blob=GARBAGE, task=st.sampled_from(sorted(LAYOUTS)))
def test_tsv_garbage_is_an_albert_error_or_parses(tmp_path, blob, task):
    path = tmp_path / "garbage.tsv"
    path.write_bytes(blob)
    try:
        rows, lines = read_tsv(path, task)
    except AlbertError as e:
        assert str(e).startswith(f"{path}") and "\n" not in str(e), str(e)
    else:
        assert len(rows) == len(lines) > 0


# --- SQuAD ----------------------------------------------------------------------------------------

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


# --- corpora --------------------------------------------------------------------------------------

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


# --- the n-gram masker ----------------------------------------------------------------------------

SPECIAL = {PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID}


@st.composite
def masking_case(draw):
    vocab = draw(st.integers(8, 60))
    word_start = draw(st.lists(st.booleans(), min_size=vocab, max_size=vocab))
    word_ids = st.integers(0, vocab - 1).filter(lambda i: i not in SPECIAL - {UNK_ID})
    a = draw(st.lists(word_ids, min_size=1, max_size=60))
    b = draw(st.lists(word_ids, min_size=1, max_size=60))
    ids = [CLS_ID, *a, SEP_ID, *b, SEP_ID]
    kwargs = dict(mask_prob=draw(st.sampled_from([0.15, 0.3, 0.5])), max_predictions=draw(st.integers(1, 30)),
                  max_ngram=draw(st.integers(1, 4)))
    return np.array(word_start), ids, kwargs, draw(st.integers(0, 2**31))


@settings(max_examples=150, deadline=None)
@given(case=masking_case())
def test_masker_budget_and_whole_word_spans(case):
    word_start, ids, kwargs, seed = case
    masker = NgramMasker(word_start, seed=seed, **kwargs)
    m = masker.mask(ids, masker.rng(0, 0))
    ids_arr = np.array(ids)
    special = np.isin(ids_arr, list(SPECIAL))
    starts, ends, _ = masker.words(ids_arr)
    start_set, word_of = set(starts.tolist()), {int(s): k for k, s in enumerate(starts)}
    boundaries = start_set | set(np.flatnonzero(special).tolist()) | {len(ids)}

    chosen = np.zeros(len(ids), dtype=bool)
    for a, b, n in m.spans:
        # whole words: a span starts at a word start and ends at the next word start, a special
        # token or the end; it holds n words and never a special token
        assert a in start_set and b in boundaries and a < b
        assert not special[a:b].any()
        assert sum(1 for p in range(a, b) if p in start_set) == n <= masker.max_ngram
        assert not chosen[a:b].any()  # spans never overlap
        chosen[a:b] = True
    budget = masker.budget(len(ids))
    assert chosen.sum() <= budget
    assert np.array_equal(m.labels != IGNORE_INDEX, chosen)
    assert np.array_equal(m.labels[chosen], ids_arr[chosen])
    assert np.array_equal(m.input_ids[~chosen], ids_arr[~chosen])  # nothing else changes
    replaced = m.input_ids[chosen]
    assert not np.isin(replaced[replaced != MASK_ID], list(SPECIAL)).any()  # random ids are never special
    # masked fraction: the budget is filled unless every word left out was too long for what was
    # left of it, or lay just before a chosen span (an n-gram from it would have overlapped)
    lengths = ends - starts
    if chosen.sum() < budget:
        for k, s in enumerate(starts):
            if not chosen[s]:
                nearby = [word_of[int(p)] for p in starts[k + 1:k + masker.max_ngram] if chosen[p]]
                assert chosen.sum() + lengths[k] > budget or nearby, (k, m.spans)
    if lengths.size and lengths.min() <= budget:
        assert chosen.sum() >= 1
