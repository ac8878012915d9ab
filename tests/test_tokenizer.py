"""albert.tokenizer against transformers' AlbertTokenizer, on SentencePiece models trained here.

Every parity test compares with `AlbertTokenizer.from_pretrained(dir)` on the directory our
`save()` wrote (transformers then reads our tokenizer.json); the wiki test also compares with
transformers reading the spiece.model alone (that needs protobuf), so the vocabulary we hand over
is checked against transformers' own extraction.
"""
from __future__ import annotations

import gzip
import itertools
import json
import os
import pickle
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sentencepiece as spm

from albert.errors import AlbertError
from albert.tokenizer import (CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID, Tokenizer, normalize,
                              train_tokenizer)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ALBERT_DATA", REPO.parent / "shared" / "data"))
HAVE_DATA = (DATA / "conll2003" / "valid.txt").is_file() and (DATA / "glue" / "SST-2" / "dev.tsv").is_file()
WIKI = DATA / "wiki"
HAVE_WIKI = (WIKI / "wiki-000.txt.gz").is_file() and (WIKI / "wiki-valid.txt.gz").is_file()

# Strings where ALBERT's preprocessing matters: quotes, accents, digit-commas, case, odd spaces,
# special tokens written in the text, characters outside the vocabulary.
TRICKY = [
    "1,000", "1,000,000 people paid $5,000.", "12, 13, 14,", "``quoted''", "He said ``no'' twice", "'''",
    "Café", "naïve résumé", "CAFÉ Ångström", "e\u0301", "Straße", "ΟΔΟΣ", "İstanbul", "ﬁne ½ ①", "Ｆｕｌｌ",
    "tab\tnew\nline\r\nend", "non\xa0breaking", "a\x0bb", "a\x85b", "zero\u200bwidth", "a▁b ▁▁c", "",
    "   ", "x [MASK] y", "x[MASK]y", "[mask] <pad> <PAD> <unk>", "[CLS] a [SEP] b [SEP]", "☃☃ snow☃man 😀",
    "中文 한국어 हिन्दी", "------ ----------- dashes", "U.S. Dollar's 3-2 win", "e-mail: x@y.com",
]

SMALL_TEXT = [f"Line {i}: the Café sold {i % 7} ``cups'' of tea" for i in range(300)]


def conll_sentences(path: Path) -> list[list[str]]:
    sentences, words = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if words:
                sentences.append(words)
            words = []
        elif not line.startswith("-DOCSTART-"):
            words.append(line.split(" ")[0])
    if words:
        sentences.append(words)
    return sentences


def tsv_rows(path: Path, header: bool = True, encoding: str = "utf-8") -> list[list[str]]:
    lines = path.read_text(encoding=encoding).splitlines()
    return [line.split("\t") for line in lines[1 if header else 0:] if line]


def glue_singles(split: str) -> list[str]:
    glue = DATA / "glue"
    return ([r[0] for r in tsv_rows(glue / "SST-2" / f"{split}.tsv")]
            + [r[3] for r in tsv_rows(glue / "CoLA" / f"{split}.tsv", header=False)])


def glue_pairs(split: str) -> list[tuple[str, str]]:
    glue = DATA / "glue"
    return ([(r[3], r[4]) for r in tsv_rows(glue / "MRPC" / f"{split}.tsv", encoding="utf-8-sig")]
            + [(r[1], r[2]) for r in tsv_rows(glue / "RTE" / f"{split}.tsv")]
            + [(r[7], r[8]) for r in tsv_rows(glue / "STS-B" / f"{split}.tsv")])


def wiki_lines(name: str) -> list[str]:
    """The non-empty lines of a wiki shard: titles, headings and paragraphs alike."""
    with gzip.open(WIKI / name, "rt", encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


def is_digit_comma(piece: str) -> bool:
    return len(piece) >= 2 and piece[-1] == "," and piece[-2].isdigit()


def hf_albert(path: Path, **kwargs):
    """transformers' AlbertTokenizer for the directory `path`, as from_pretrained() gives it."""
    transformers = pytest.importorskip("transformers")
    return transformers.AlbertTokenizer.from_pretrained(str(path), **kwargs)


def hf_from_spiece_only(path: Path, tmp: Path):
    """transformers' AlbertTokenizer built from spiece.model and tokenizer_config.json, without our tokenizer.json."""
    pytest.importorskip("google.protobuf", reason="transformers needs protobuf to read a spiece.model")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("spiece.model", "tokenizer_config.json"):
        shutil.copy(path / name, tmp / name)
    return hf_albert(tmp)


def hf_call(hf, text, pair=None, max_length=None) -> dict[str, list[int]]:
    enc = hf(text, pair, truncation=max_length is not None, max_length=max_length, return_token_type_ids=True)
    return {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask")}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    if not HAVE_DATA:
        pytest.skip(f"CoNLL-2003 / GLUE data not found under {DATA} (set ALBERT_DATA)")
    texts = [" ".join(s) for s in conll_sentences(DATA / "conll2003" / "train.txt")[:3000]]
    texts += glue_singles("train")[:3000]
    texts += [s for pair in glue_pairs("train")[::4] for s in pair]
    out = tmp_path_factory.mktemp("spm")
    train_tokenizer(texts, out, vocab_size=4000, seed=0)
    return out


@pytest.fixture(scope="session")
def ours(model_dir) -> Tokenizer:
    return Tokenizer.load(model_dir)


@pytest.fixture(scope="session")
def hf(model_dir):
    return hf_albert(model_dir)


@pytest.fixture(scope="session")
def wiki_dir(tmp_path_factory) -> Path:
    """A vocabulary trained by train_tokenizer on the first 20,000 lines of a wiki training shard."""
    if not HAVE_WIKI:
        pytest.skip(f"wiki shards not found under {WIKI} (set ALBERT_DATA)")
    with gzip.open(WIKI / "wiki-000.txt.gz", "rt", encoding="utf-8") as f:
        paragraphs = list(itertools.islice((line for line in f if line.strip()), 20_000))
    out = tmp_path_factory.mktemp("wiki-spm")
    train_tokenizer(paragraphs, out, vocab_size=8000, seed=0)
    return out


def assert_same_ids_on_wiki_valid(ours: Tokenizer, hfs: dict) -> dict[str, int]:
    """Our encode() of every non-empty line of wiki-valid against each transformers tokenizer."""
    lines = wiki_lines("wiki-valid.txt.gz")
    got = [ours.encode(line) for line in lines]
    assert ours.encode_batch(lines) == got
    counts = {"lines": len(lines), "tokens": sum(map(len, got))}
    for name, hf in hfs.items():
        expected = hf(lines, add_special_tokens=False)["input_ids"]
        mismatched = [line for line, g, e in zip(lines, got, expected) if g != e]
        counts[f"mismatches vs {name}"] = len(mismatched)
        assert not mismatched, (name, len(mismatched), mismatched[:3])
    counts["lines using a digit-comma piece"] = sum(
        any(is_digit_comma(p) for p in ours.convert_ids_to_tokens(ids)) for ids in got)
    return counts


# ----- ids


def test_trained_model_has_albert_layout(ours, hf):
    assert ours.vocab_size == 4000 == len(hf)
    assert (ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id) == (0, 1, 2, 3, 4)
    specials = ours.convert_ids_to_tokens([PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID])
    assert specials == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert (hf.pad_token_id, hf.unk_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id) == (0, 1, 2, 3, 4)
    pieces = hf.convert_ids_to_tokens(list(range(len(hf))))
    assert ours.convert_ids_to_tokens(range(ours.vocab_size)) == pieces
    assert all(ours.piece_to_id(p) == i for i, p in enumerate(pieces))
    assert ours.piece_to_id("no such piece") == UNK_ID
    with pytest.raises(AlbertError, match="outside the vocabulary"):
        ours.id_to_piece(4000)


def test_wiki_valid_ids_match_transformers(wiki_dir, tmp_path):
    """A vocabulary trained here on wiki text, every non-empty line of wiki-valid: the same ids as
    transformers reading our saved directory, and as transformers reading the spiece.model alone."""
    ours = Tokenizer.load(wiki_dir)
    pieces = ours.convert_ids_to_tokens(range(ours.vocab_size))
    assert sum(map(is_digit_comma, pieces)) >= 3  # trained vocabularies do have "▁2008,"-like pieces
    counts = assert_same_ids_on_wiki_valid(ours, {
        "from_pretrained(saved dir)": hf_albert(wiki_dir),
        "from_pretrained(spiece.model only)": hf_from_spiece_only(wiki_dir, tmp_path / "spiece-only")})
    print(counts)
    assert counts["lines"] == 13239 and counts["tokens"] > 500_000
    assert counts["lines using a digit-comma piece"] > 100  # so the rule below is exercised on real text


def test_conll_valid_ids_match(ours, hf):
    texts = [" ".join(words) for words in conll_sentences(DATA / "conll2003" / "valid.txt")]
    assert len(texts) == 3250
    expected = hf(texts, add_special_tokens=False)["input_ids"]
    mismatched = [t for t, e in zip(texts, expected) if ours.encode(t) != e]
    assert not mismatched, mismatched[:5]
    assert all(ours.tokenize(t) == hf.tokenize(t) for t in texts[:300])


def test_glue_single_sentences_match(ours, hf):
    texts = glue_singles("dev")
    assert len(texts) > 1900
    for t in texts:
        assert ours(t) == hf_call(hf, t), t


def test_glue_pairs_match_with_truncation(ours, hf):
    pairs = glue_pairs("dev")
    assert len(pairs) > 2000
    for a, b in pairs:
        assert ours(a, b) == hf_call(hf, a, b), (a, b)
    for max_length in (8, 33, 64):
        for a, b in pairs[::3]:
            assert ours(a, b, max_length=max_length) == hf_call(hf, a, b, max_length), (a, b, max_length)
            assert ours(a, max_length=max_length) == hf_call(hf, a, None, max_length), (a, max_length)


def test_truncation_longest_first_all_length_combinations(ours, hf):
    rng = random.Random(0)
    words = "the cat sat on a mat , and 1,000 dogs barked".split()
    for _ in range(1500):
        a = " ".join(rng.choices(words, k=rng.randint(0, 14)))
        b = " ".join(rng.choices(words, k=rng.randint(1, 14)))
        max_length = rng.randint(3, 30)
        assert ours(a, b, max_length=max_length) == hf_call(hf, a, b, max_length), (a, b, max_length)
        assert ours(a, max_length=max_length) == hf_call(hf, a, None, max_length), (a, max_length)
    got = ours("x y", "z", max_length=None)
    assert got["token_type_ids"] == [0] * (len(ours.encode("x y")) + 2) + [1] * (len(ours.encode("z")) + 1)
    with pytest.raises(AlbertError, match="max_length=2"):
        ours("a", "b", max_length=2)
    with pytest.raises(AlbertError, match="max_length=1"):
        ours("a", max_length=1)


def test_truncation_never_leaks_into_encode(ours):
    """tokenizers keeps truncation as state; a truncating call must not shorten later encodes."""
    text = "the cat sat on a mat and 1,000 dogs barked " * 3
    full = ours.encode(text)
    assert len(ours(text, max_length=5)["input_ids"]) == 5
    assert ours.encode(text) == full and ours.encode_batch([text]) == [full]
    assert ours.encode_words(text.split())[0] == full
    assert len(ours(text)["input_ids"]) == len(full) + 2
    assert len(ours(text, max_length=7)["input_ids"]) == 7


def test_build_inputs_by_hand(ours):
    assert ours.build_inputs([10, 11, 12]) == ([CLS_ID, 10, 11, 12, SEP_ID], [0, 0, 0, 0, 0])
    ids, types = ours.build_inputs([10, 11], [20, 21, 22])
    assert ids == [CLS_ID, 10, 11, SEP_ID, 20, 21, 22, SEP_ID] and types == [0, 0, 0, 0, 1, 1, 1, 1]
    assert ours.build_inputs([], []) == ([CLS_ID, SEP_ID, SEP_ID], [0, 0, 1])


@pytest.mark.parametrize("settings", [{}, {"keep_accents": True}, {"do_lower_case": False},
                                      {"keep_accents": True, "do_lower_case": False}])
def test_tricky_text_matches(model_dir, settings):
    ours = Tokenizer.load(model_dir, **settings)
    hf = hf_albert(model_dir, **settings)
    for text in TRICKY:
        ids = hf(text, add_special_tokens=False)["input_ids"]
        assert ours.encode(text) == ids, text
        assert ours.tokenize(text) == hf.tokenize(text), text
        assert ours(text, "Café 1,000") == hf_call(hf, text, "Café 1,000"), text
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip), text


# Fragments whose grapheme clusters make transformers' table lookup differ from SentencePiece's.
FRAGMENTS = ["a", "b", "é", "E", " ", "\xa0", "\u0301", "\u0308", "\uff9e", "\uff9f", "\uff76", "\u0e33", "\u200d",
             "\u200c", "\r\n", "\r", "\x0b", "\x85", "\ufb01", "\uff21", "\xbd", "\u2122", "\u01c4", "\u0130", "\u03a3",
             "\u2581", "\U0001f44d", "\U0001f3fd", "\ud55c", "\u1100\u1161", "[MASK]", "``", "''", "1,0", ".", "\u00a8"]


@pytest.mark.parametrize("settings", [{}, {"keep_accents": True}, {"do_lower_case": False}])
def test_random_unicode_matches(model_dir, settings):
    ours = Tokenizer.load(model_dir, **settings)
    hf = hf_albert(model_dir, **settings)
    rng = random.Random(len(settings))
    for _ in range(700):
        text = "".join(rng.choices(FRAGMENTS, k=rng.randint(1, 12)))
        assert ours.encode(text) == hf(text, add_special_tokens=False)["input_ids"], repr(text)
        assert ours.tokenize(text) == hf.tokenize(text), repr(text)


def test_normalize_by_hand():
    assert normalize("``Hi''  Café ΟΔΟΣ") == '"hi"  cafe οδοσ'  # no final sigma: lowered letter by letter
    assert normalize("Café", keep_accents=True) == "café"
    assert normalize("Café", do_lower_case=False) == "Cafe"
    assert normalize("ﬁ") == "fi"  # NFKD also folds compatibility characters


def test_quotes_accents_and_special_tokens(ours):
    assert ours.encode("``quoted''") == ours.encode('"quoted"')
    assert ours.encode("Café") == ours.encode("cafe")
    assert ours.encode("CAFÉ") == ours.encode("cafe")
    assert ours.encode("a [MASK] b").count(MASK_ID) == 1
    assert ours.encode("x[SEP]y<pad>").count(SEP_ID) == 1 and ours.encode("x<pad>")[-1] == PAD_ID
    assert MASK_ID not in ours.encode("[mask]")  # special tokens are matched before lower-casing


def test_encode_words_matches_is_split_into_words(ours, hf):
    sentences = conll_sentences(DATA / "conll2003" / "valid.txt")
    sentences += [["Café", "``", "1,000", "''", "", " ", "two words", "[MASK]", "☃"], ["only"]]
    enc = hf(sentences, is_split_into_words=True, add_special_tokens=False)
    for i, words in enumerate(sentences):
        ids, word_index = ours.encode_words(words)
        assert ids == enc["input_ids"][i], words
        assert word_index == enc.word_ids(i), words
    assert ours.encode_words([]) == ([], [])


def test_word_start_mask(ours, hf):
    mask = ours.word_start_mask()
    assert mask.dtype == np.bool_ and mask.shape == (ours.vocab_size,)
    pieces = hf.convert_ids_to_tokens(list(range(len(hf))))
    special = set(hf.all_special_ids)
    # google-research/albert's rule: "▁" pieces, lone punctuation, and pieces with characters
    # other than ASCII letters and punctuation (digits, accents, apostrophes) start words.
    punctuation = set('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
    letters = set("abcdefghijklmnopqrstuvwxyz") | punctuation
    expected = np.array([p.startswith(("▁", "<")) or i in special or p in punctuation
                         or not all(c in letters for c in p.lower()) for i, p in enumerate(pieces)])
    assert (mask == expected).all()
    assert mask[: MASK_ID + 1].all() and 0 < mask.sum() < ours.vocab_size
    by_piece = dict(zip(pieces, mask))
    assert by_piece.get(",", True) and by_piece.get(".", True)  # masked on their own
    assert not mask[[i for i, p in enumerate(pieces) if p.isalpha() and p.isascii() and p.islower()]].any()


def test_word_start_rule_on_hand_picked_pieces():
    from albert.tokenizer import starts_word

    assert all(starts_word(p) for p in ("▁the", ",", ".", ")", "99", "'s", "é", "▁("))
    assert not any(starts_word(p) for p in ("s", "ing", '."', "):"))


# ----- the digit-comma rule


def test_digit_comma_pieces_are_used_as_the_vocabulary_scores_them(wiki_dir, tmp_path):
    """No digit-comma rule: "▁2008," is one token when the vocabulary has it, as in transformers
    reading the spiece.model and in SentencePiece itself."""
    ours = Tokenizer.load(wiki_dir)
    sp = spm.SentencePieceProcessor(model_file=str(wiki_dir / "spiece.model"))
    number = next(p for p in ours.convert_ids_to_tokens(range(ours.vocab_size)) if is_digit_comma(p) and p[0] == "▁")
    text = f"in {number[1:]} the"
    assert ours.tokenize(text) == ["▁in", number, "▁the"] == sp.encode(text, out_type=str)
    assert ours.encode(text) == hf_from_spiece_only(wiki_dir, tmp_path)(text, add_special_tokens=False)["input_ids"]


def test_a_published_tokenizer_json_keeps_its_digit_comma_penalty(tmp_path):
    """A directory like the published checkpoints' (spiece.model plus the tokenizer.json that
    transformers' converter wrote, with 100 taken from every "<digit>," piece) is read as
    transformers reads it, and save() carries those scores on."""
    rng = random.Random(0)
    lines = [f"about {rng.randint(1, 999)},{rng.randint(0, 999):03d} or {rng.randint(1, 99)}, said {rng.randint(1, 9)},"
             for _ in range(2000)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "spiece"), vocab_size=200, model_type="unigram",
        split_by_number=False, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2)
    plain = Tokenizer.load(tmp_path)
    assert any(map(is_digit_comma, plain.convert_ids_to_tokens(range(plain.vocab_size))))
    assert any(map(is_digit_comma, plain.tokenize("about 12, said 5,000")))
    pytest.importorskip("google.protobuf", reason="transformers' converter reads spiece.model with protobuf")
    from transformers.convert_slow_tokenizer import AlbertConverter

    original = SimpleNamespace(vocab_file=str(tmp_path / "spiece.model"), keep_accents=False, do_lower_case=True,
                               convert_tokens_to_ids={"[CLS]": CLS_ID, "[SEP]": SEP_ID}.__getitem__)
    AlbertConverter(original).converted().save(str(tmp_path / "tokenizer.json"))
    published = Tokenizer.load(tmp_path)
    assert published.fingerprint() != plain.fingerprint()
    published.save(tmp_path / "again")
    for directory in (tmp_path, tmp_path / "again"):
        ours, hf = Tokenizer.load(directory), hf_albert(directory)
        for text in lines[:300] + ["1,000", "12, 13,", "5,"]:
            assert ours.encode(text) == hf(text, add_special_tokens=False)["input_ids"], text
        assert not any(map(is_digit_comma, ours.tokenize("about 12, said 5,000")))


# ----- files


def test_save_load_round_trip(model_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    for settings in ({"keep_accents": True}, {"do_lower_case": False}):
        tok = Tokenizer.load(model_dir, **settings)
        out = tmp_path / next(iter(settings))
        tok.save(out)
        assert (out / "spiece.model").read_bytes() == (model_dir / "spiece.model").read_bytes()
        assert sorted(p.name for p in out.iterdir()) == ["spiece.model", "tokenizer.json", "tokenizer_config.json"]
        assert json.loads((out / "tokenizer_config.json").read_text()) == {
            "tokenizer_class": "AlbertTokenizer", **{"do_lower_case": True, "keep_accents": False, **settings}}
        again = Tokenizer.load(out)
        assert (again.do_lower_case, again.keep_accents) == (tok.do_lower_case, tok.keep_accents)
        assert again.fingerprint() == tok.fingerprint()
        hf = hf_albert(out)  # picks the settings up from tokenizer_config.json
        auto = transformers.AutoTokenizer.from_pretrained(str(out))
        assert type(auto).__name__ == "AlbertTokenizer"
        plain = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))  # the pipeline as saved
        for text in TRICKY:
            expected = hf(text, add_special_tokens=False)["input_ids"]
            assert again.encode(text) == tok.encode(text) == expected, text
            assert auto(text, add_special_tokens=False)["input_ids"] == expected, text
            assert plain.encode(text, add_special_tokens=False).ids == expected, text
    explicit = Tokenizer.load(model_dir / "spiece.model", do_lower_case=False)  # a file, and an explicit setting
    assert (explicit.do_lower_case, explicit.keep_accents) == (False, False)
    assert explicit.normalize("Abc") == "Abc" and Tokenizer.load(model_dir).normalize("Abc") == "abc"


def test_pickle_round_trip(ours, tmp_path):
    again = pickle.loads(pickle.dumps(ours))
    assert (again.do_lower_case, again.keep_accents, again.vocab_size) == (True, False, ours.vocab_size)
    assert again.fingerprint() == ours.fingerprint()
    assert all(again.encode(t) == ours.encode(t) for t in TRICKY)
    ours.save(tmp_path)  # a tokenizer.json with other scores travels with the pickle
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    data["model"]["vocab"] = [[p, s if i < 5 else -float(i)] for i, (p, s) in enumerate(data["model"]["vocab"])]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    other = Tokenizer.load(tmp_path)
    assert pickle.loads(pickle.dumps(other)).encode("the cafe") == other.encode("the cafe") != ours.encode("the cafe")


def test_fingerprint_follows_the_vocabulary_and_settings(model_dir, tmp_path):
    from albert.tasks.base import tokenizer_fingerprint

    base = Tokenizer.load(model_dir)
    other_vocab = train_tokenizer(SMALL_TEXT, tmp_path / "other", vocab_size=60)
    prints = {tokenizer_fingerprint(t) for t in (base, other_vocab, Tokenizer.load(model_dir, do_lower_case=False),
                                                 Tokenizer.load(model_dir, keep_accents=True))}
    assert len(prints) == 4
    assert tokenizer_fingerprint(Tokenizer.load(model_dir)) == tokenizer_fingerprint(base) == base.fingerprint()


def test_corrupt_or_missing_files_name_the_path(tmp_path):
    bad = tmp_path / "spiece.model"
    bad.write_bytes(b"\x00 this is not a sentencepiece model")
    with pytest.raises(AlbertError, match=str(bad)):
        Tokenizer.load(tmp_path)
    with pytest.raises(AlbertError, match="nowhere"):
        Tokenizer.load(tmp_path / "nowhere" / "spiece.model")
    good = tmp_path / "good"
    train_tokenizer(SMALL_TEXT, good, vocab_size=60)
    (good / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AlbertError, match="tokenizer_config.json"):
        Tokenizer.load(good)
    (good / "tokenizer_config.json").unlink()
    pipeline = json.loads((good / "tokenizer.json").read_text())
    for broken, problem in (("{not json", "not a Unigram tokenizer.json"),
                            (json.dumps({**pipeline, "model": {"type": "BPE"}}), "BPE"),
                            (json.dumps({**pipeline, "model": {**pipeline["model"], "vocab": pipeline["model"]["vocab"][:-1]}}),
                             "vocabulary differs")):
        (good / "tokenizer.json").write_text(broken, encoding="utf-8")
        with pytest.raises(AlbertError, match=f"tokenizer.json: .*{problem}"):
            Tokenizer.load(good)


def test_non_albert_vocabulary_is_refused(tmp_path):
    lines = ["the quick brown fox jumps over the lazy dog"] * 50
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(tmp_path / "spiece"),
                                   vocab_size=30, minloglevel=2)  # default layout: <unk>=0, <s>=1, </s>=2
    with pytest.raises(AlbertError, match="not an ALBERT vocabulary"):
        Tokenizer.load(tmp_path)


# ----- training


def test_train_refuses_a_vocabulary_the_text_cannot_fill(tmp_path):
    lines = ["the quick brown fox jumps over the lazy dog"] * 20
    with pytest.raises(AlbertError, match="smaller --vocab-size"):
        train_tokenizer(lines, tmp_path, vocab_size=5000)
    with pytest.raises(AlbertError, match="larger --vocab-size"):
        train_tokenizer(lines, tmp_path, vocab_size=20)
    assert not (tmp_path / "spiece.model").exists()


def test_train_refuses_empty_input(tmp_path):
    with pytest.raises(AlbertError, match="empty"):
        train_tokenizer([], tmp_path, vocab_size=100)
    with pytest.raises(AlbertError, match="empty"):
        train_tokenizer(["", "   ", "\t"], tmp_path, vocab_size=100)


def test_train_small_model_from_a_generator(tmp_path):
    tok = train_tokenizer(iter(SMALL_TEXT), tmp_path, vocab_size=60, seed=1, num_threads=1)
    assert tok.vocab_size == 60
    assert tok.convert_ids_to_tokens(range(5)) == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert (tmp_path / "spiece.model").is_file() and (tmp_path / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text()) == {
        "tokenizer_class": "AlbertTokenizer", "do_lower_case": True, "keep_accents": False}
    # trained on normalized text: no upper-case letters, no accents, no `` quotes in the vocabulary
    pieces = "".join(tok.convert_ids_to_tokens(range(5, tok.vocab_size)))
    assert not set(pieces) & set("LCé`")
    assert UNK_ID not in tok.encode("line 3: the café sold ``cups''")
    assert tok.decode(tok.encode("the cafe sold tea")) == "the cafe sold tea"
    assert Tokenizer.load(tmp_path).encode("Café") == tok.encode("Café")


# ----- acceptance: the vocabulary a default pretraining run trains


@pytest.mark.slow
def test_pretrain_vocabulary_matches_transformers_on_all_of_wiki_valid(tmp_path):
    """pretrain.py's tokenizer path with its defaults (30,000 pieces from 300,000 wiki paragraphs):
    the same ids as transformers on every non-empty line of wiki-valid. About 10 minutes on 2 cores."""
    if not HAVE_WIKI:
        pytest.skip(f"wiki shards not found under {WIKI} (set ALBERT_DATA)")
    from albert.data.corpus import resolve_corpus
    from albert.pretrain import PretrainArgs, get_tokenizer

    args = PretrainArgs(corpus="wiki", output_dir=str(tmp_path), vocab_size=30000)
    assert args.tokenizer_sample == 300_000
    get_tokenizer(args, resolve_corpus("wiki", DATA), tmp_path)
    ours = Tokenizer.load(tmp_path / "tokenizer")
    ours.save(tmp_path / "final")  # what pretrain.py's export writes beside the weights
    counts = assert_same_ids_on_wiki_valid(ours, {
        "from_pretrained(final/)": hf_albert(tmp_path / "final"),
        "from_pretrained(spiece.model only)": hf_from_spiece_only(tmp_path / "final", tmp_path / "spiece-only")})
    print(json.dumps({"vocab_size": ours.vocab_size,
                      "digit_comma_pieces": sum(map(is_digit_comma, ours.convert_ids_to_tokens(range(ours.vocab_size)))),
                      **counts}))
    assert counts["lines"] == 13239


CHILD_TRAINS_A_LARGE_VOCABULARY = """
import random, signal, sys
# As in a terminal: a background job of a non-interactive shell (CI's, nohup's) starts with SIGINT
# ignored, and then Python installs no KeyboardInterrupt handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
from albert.tokenizer import train_tokenizer
rng = random.Random(0)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12))) for _ in range(50000)]
lines = [" ".join(rng.choice(words) for _ in range(14)) for _ in range(300000)]
print("training", flush=True)
train_tokenizer(iter(lines), sys.argv[1], vocab_size=8000)
print("done", flush=True)
"""


def test_ctrl_c_stops_vocabulary_training_at_once(tmp_path):
    """SentencePiece trains in one long C++ call; a Ctrl-C must not wait for it to return."""
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", CHILD_TRAINS_A_LARGE_VOCABULARY, str(tmp_path / "vocab")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "training"
        time.sleep(3)  # inside the C++ call by now
        assert child.poll() is None, "the training ended before the signal: the test measures nothing"
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        child.wait(timeout=60)
        waited = time.monotonic() - sent
    finally:
        child.kill()
    out, err = child.communicate()
    assert "done" not in out and "KeyboardInterrupt" in err
    assert waited < 3, f"Ctrl-C took {waited:.1f} s to stop the training"
