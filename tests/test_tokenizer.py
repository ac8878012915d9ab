"""albert.tokenizer against transformers' AlbertTokenizer, on a SentencePiece model trained here.

transformers reads spiece.model through the protobuf package; without it the parity tests skip.
"""
from __future__ import annotations

import json
import os
import pickle
import random
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


def have_protobuf() -> bool:
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        return False
    return True


NO_PROTOBUF = "transformers needs protobuf to read spiece.model (pip install protobuf; it is in setup.cfg's dev extras)"


def hf_albert(path: Path, **kwargs):
    """transformers' AlbertTokenizer for the model in `path`, as from_pretrained() gives it.

    Without protobuf, from_pretrained() cannot read spiece.model; the tokenizer is then built from
    the same pieces, scores, control symbols and normalization table that from_pretrained() would
    extract (checked identical on fuzzed text when protobuf is there).
    """
    transformers = pytest.importorskip("transformers")
    if have_protobuf():
        return transformers.AlbertTokenizer.from_pretrained(str(path), **kwargs)
    from tokenizers import AddedToken

    from albert.tokenizer import _proto_field

    proto = (path / "spiece.model").read_bytes()
    sp = spm.SentencePieceProcessor(model_proto=proto)
    config = path / "tokenizer_config.json"
    settings = json.loads(config.read_text()) if config.is_file() else {}
    settings = {k: v for k, v in settings.items() if k in ("do_lower_case", "keep_accents")} | kwargs
    n = sp.get_piece_size()
    return transformers.AlbertTokenizer(
        vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(n)], unk_id=sp.unk_id(),
        additional_special_tokens=[AddedToken(sp.id_to_piece(i), normalized=False, special=True)
                                   for i in range(n) if sp.is_control(i)],
        _spm_precompiled_charsmap=_proto_field(_proto_field(proto, 3), 2), **settings)


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
    got = ours("x y", "z", max_length=None)
    assert got["token_type_ids"] == [0] * (len(ours.encode("x y")) + 2) + [1] * (len(ours.encode("z")) + 1)
    with pytest.raises(AlbertError, match="max_length"):
        ours("a", "b", max_length=2)


def test_build_inputs_by_hand(ours):
    ids, types = ours.build_inputs([10, 11, 12, 13, 14], [20, 21], max_length=7)
    assert ids == [CLS_ID, 10, 11, SEP_ID, 20, 21, SEP_ID] and types == [0, 0, 0, 0, 1, 1, 1]
    ids, types = ours.build_inputs([10, 11, 12, 13, 14], [20, 21, 22, 23], max_length=8)
    assert ids == [CLS_ID, 10, 11, 12, SEP_ID, 20, 21, SEP_ID]  # an odd budget goes to the longer side
    assert ours.build_inputs([10, 11, 12], max_length=4) == ([CLS_ID, 10, 11, SEP_ID], [0, 0, 0, 0])


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
    assert normalize("``Hi''  Café ΟΔΟΣ") == '"hi"  cafe οδοσ'
    assert normalize("Café", keep_accents=True) == "café"
    assert normalize("Café", do_lower_case=False) == "Cafe"
    assert normalize("ﬁ") == "fi"  # NFKD also folds compatibility characters


def test_quotes_accents_and_numbers_tokens(ours):
    assert ours.encode("``quoted''") == ours.encode('"quoted"')
    assert ours.encode("Café") == ours.encode("cafe")
    assert ours.encode("CAFÉ") == ours.encode("cafe")
    assert not any(p[-1:] == "," and p[-2:-1].isdigit() for p in ours.tokenize("1,000,000 and 12, 13"))
    assert ours.encode("a [MASK] b").count(MASK_ID) == 1


def test_encode_words_matches_is_split_into_words(ours, hf):
    sentences = conll_sentences(DATA / "conll2003" / "valid.txt")
    sentences += [["Café", "``", "1,000", "''", "", " ", "two words", "[MASK]", "☃"]]
    enc = hf(sentences, is_split_into_words=True, add_special_tokens=False)
    for i, words in enumerate(sentences):
        ids, word_index = ours.encode_words(words)
        assert ids == enc["input_ids"][i], words
        assert word_index == enc.word_ids(i), words


def test_word_start_mask(ours, hf):
    mask = ours.word_start_mask()
    assert mask.dtype == np.bool_ and mask.shape == (ours.vocab_size,)
    pieces = hf.convert_ids_to_tokens(list(range(len(hf))))
    special = set(hf.all_special_ids)
    expected = np.array([p.startswith("▁") or i in special for i, p in enumerate(pieces)])
    assert (mask == expected).all()
    assert mask[: MASK_ID + 1].all() and 0 < mask.sum() < ours.vocab_size


def test_digit_comma_pieces_are_penalized_like_the_converter(tmp_path):
    """Models with pieces such as "▁12," (older SentencePiece, like ALBERT's own) are split as
    transformers' converter does for the published tokenizer.json: score - 100."""
    rng = random.Random(0)
    lines = [f"about {rng.randint(1, 999)},{rng.randint(0, 999):03d} or {rng.randint(1, 99)}, said {rng.randint(1, 9)},"
             for _ in range(2000)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "spiece"), vocab_size=200, model_type="unigram",
        split_by_number=False, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2)
    ours = Tokenizer.load(tmp_path)
    assert any(p[-1:] == "," and p[-2:-1].isdigit() for p in ours.convert_ids_to_tokens(range(ours.vocab_size)))
    pytest.importorskip("transformers")
    if not have_protobuf():
        pytest.skip(NO_PROTOBUF)
    from transformers import AlbertTokenizer
    from transformers.convert_slow_tokenizer import AlbertConverter

    original = SimpleNamespace(vocab_file=str(tmp_path / "spiece.model"), keep_accents=False, do_lower_case=True,
                               convert_tokens_to_ids={"[CLS]": CLS_ID, "[SEP]": SEP_ID}.__getitem__)
    AlbertConverter(original).converted().save(str(tmp_path / "tokenizer.json"))
    hf = AlbertTokenizer.from_pretrained(str(tmp_path))
    for text in lines[:300] + ["1,000", "12, 13,", "5,"]:
        assert ours.encode(text) == hf(text, add_special_tokens=False)["input_ids"], text
    assert not any(p[-1:] == "," and p[-2:-1].isdigit() for p in ours.tokenize("about 12, said 5,000"))


# ----- files


def test_save_load_round_trip(ours, model_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    for settings in ({"keep_accents": True}, {"do_lower_case": False}):
        tok = Tokenizer.load(model_dir, **settings)
        out = tmp_path / next(iter(settings))
        tok.save(out)
        assert (out / "spiece.model").read_bytes() == (model_dir / "spiece.model").read_bytes()
        assert sorted(p.name for p in out.iterdir()) == ["spiece.model", "tokenizer_config.json"]
        again = Tokenizer.load(out)
        assert (again.do_lower_case, again.keep_accents) == (tok.do_lower_case, tok.keep_accents)
        hf = hf_albert(out)  # picks the settings up from tokenizer_config.json
        for text in TRICKY:
            expected = hf(text, add_special_tokens=False)["input_ids"]
            assert again.encode(text) == tok.encode(text) == expected, text
        if have_protobuf():
            auto = transformers.AutoTokenizer.from_pretrained(str(out))
            assert type(auto).__name__ == "AlbertTokenizer"
            assert all(auto(t, add_special_tokens=False)["input_ids"] == tok.encode(t) for t in TRICKY)
    plain = Tokenizer.load(model_dir / "spiece.model", do_lower_case=False)  # a file, and an explicit setting
    assert (plain.do_lower_case, plain.keep_accents) == (False, False)
    assert plain.normalize("Abc") == "Abc" and ours.normalize("Abc") == "abc"


def test_pickle_round_trip(ours):
    again = pickle.loads(pickle.dumps(ours))
    assert (again.do_lower_case, again.keep_accents, again.vocab_size) == (True, False, ours.vocab_size)
    assert all(again.encode(t) == ours.encode(t) for t in TRICKY)


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
    assert (tmp_path / "spiece.model").is_file()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text()) == {
        "tokenizer_class": "AlbertTokenizer", "do_lower_case": True, "keep_accents": False}
    # trained on normalized text: no upper-case letters, no accents, no `` quotes in the vocabulary
    pieces = "".join(tok.convert_ids_to_tokens(range(5, tok.vocab_size)))
    assert not set(pieces) & set("LCé`")
    assert UNK_ID not in tok.encode("line 3: the café sold ``cups''")
    assert tok.decode(tok.encode("the cafe sold tea")) == "the cafe sold tea"
    assert Tokenizer.load(tmp_path).encode("Café") == tok.encode("Café")
