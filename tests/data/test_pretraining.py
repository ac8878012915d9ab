"""Sentence-order pairs, the on-disk cache and n-gram masking, on real Wikipedia text."""
from __future__ import annotations

import functools
import gzip
import itertools
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from albert.data import pretraining
from albert.data.corpus import resolve_corpus
from albert.data.pretraining import (IGNORE_INDEX, IndexedExamples, NgramMasker, SopExampleBuilder,
                                     build_pretraining_dataset, pretraining_collate, tokenize_document)
from albert.errors import AlbertError
from albert.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, train_tokenizer

DATA = Path(os.environ.get("ALBERT_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
WIKI_VALID = DATA / "wiki" / "wiki-valid.txt.gz"
pytestmark = pytest.mark.skipif(not WIKI_VALID.is_file(), reason=f"no {WIKI_VALID} (set ALBERT_DATA)")

SEQ = 128
N_DOCS = 150
SPECIALS = [PAD_ID, 1, CLS_ID, SEP_ID, MASK_ID]


@pytest.fixture(scope="session")
def corpus():
    return resolve_corpus("wiki", DATA)


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory):
    texts = itertools.chain.from_iterable(corpus.paragraphs("valid"))
    return train_tokenizer(itertools.islice(texts, 2000), tmp_path_factory.mktemp("spm"), vocab_size=3000)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sop-cache")


@pytest.fixture(scope="session")
def dataset(corpus, tokenizer, cache_dir):
    return build_pretraining_dataset(corpus, tokenizer, "valid", SEQ, cache_dir, max_docs=N_DOCS, seed=0)


@pytest.fixture(scope="session")
def rows(dataset):
    return dataset[:]


@pytest.fixture(scope="session")
def token_docs(corpus, tokenizer):
    return [tokenize_document(tokenizer, d) for d in corpus.documents("valid", max_docs=60)]


def _find(haystack: list[int], needle: list[int]) -> int:
    """Index of `needle` as a contiguous run in `haystack`, or -1."""
    h, n = np.asarray(haystack, np.int32).tobytes(), np.asarray(needle, np.int32).tobytes()
    at = h.find(n)
    while at != -1 and at % 4:
        at = h.find(n, at + 1)
    return at // 4 if at != -1 else -1


# ----- examples

def test_example_layout(rows):
    assert len(rows["input_ids"]) > 1000
    for ids, types in zip(rows["input_ids"], rows["token_type_ids"]):
        assert len(ids) == len(types) <= SEQ
        assert ids[0] == CLS_ID and ids.count(CLS_ID) == 1
        seps = [i for i, t in enumerate(ids) if t == SEP_ID]
        assert len(seps) == 2 and seps[1] == len(ids) - 1
        assert 1 < seps[0] < seps[1] - 1  # both segments non-empty
        assert types == [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)
        assert MASK_ID not in ids and PAD_ID not in ids  # stored unmasked, unpadded
    assert set(rows["sentence_order_label"]) == {0, 1}


def test_sop_labels_are_balanced_and_mean_swapped(token_docs):
    builder = SopExampleBuilder(SEQ)
    labels = []
    for k, doc in enumerate(token_docs):
        rng = random.Random(k)
        flat = [t for s in doc for t in s]
        for row in builder.examples(doc, builder.target_length(rng), rng, others=()):
            ids = row["input_ids"]
            sep = ids.index(SEP_ID)
            a, b = ids[1:sep], ids[sep + 1:-1]
            pa, pb = _find(flat, a), _find(flat, b)
            assert pa >= 0 and pb >= 0  # segments are contiguous text of this document
            # Label 0: A comes before B in the document; label 1: they were swapped.
            assert (pa < pb) == (row["sentence_order_label"] == 0)
            labels.append(row["sentence_order_label"])
    n = len(labels)
    assert n > 400
    assert abs(np.mean(labels) - 0.5) < 4 * math.sqrt(0.25 / n)


def test_sop_label_balance_in_dataset(rows):
    # One-sentence chunks add label-1 pairs (B from another document, as in the reference),
    # so the label-1 share is a little over one half.
    share = np.mean(rows["sentence_order_label"])
    assert 0.48 < share < 0.65


def test_one_sentence_chunk_takes_b_from_another_document(token_docs):
    builder = SopExampleBuilder(SEQ)
    lone = [token_docs[0][0]]
    other = token_docs[1]
    assert builder.examples(lone, builder.max_num_tokens, random.Random(0), others=()) == []
    for seed in range(20):
        (row,) = builder.examples(lone, builder.max_num_tokens, random.Random(seed), others=[other])
        ids = row["input_ids"]
        sep = ids.index(SEP_ID)
        assert row["sentence_order_label"] == 1
        assert _find(lone[0], ids[1:sep]) >= 0
        assert _find([t for s in other for t in s], ids[sep + 1:-1]) >= 0


def test_truncation_by_hand():
    # Two 10-token sentences into 7 tokens: trim the longer one, B on ties:
    # (10,10) -> (10,9) -> (9,9) -> ... -> (4,4) -> (4,3).
    builder = SopExampleBuilder(10)
    doc = [list(range(100, 110)), list(range(200, 210))]
    for seed in range(30):
        (row,) = builder.examples(doc, 20, random.Random(seed))  # one chunk of both sentences
        ids = row["input_ids"]
        a, b = ids[1:5], ids[6:9]
        assert len(ids) == 10 and ids[5] == SEP_ID
        first, second = (doc[0], doc[1]) if row["sentence_order_label"] == 0 else (doc[1], doc[0])
        assert _find(first, a) >= 0 and _find(second, b) >= 0


def test_short_targets(token_docs, rows):
    builder = SopExampleBuilder(SEQ, short_seq_prob=0.1)
    rng = random.Random(0)
    targets = np.array([builder.target_length(rng) for _ in range(20000)])
    short = targets[targets < builder.max_num_tokens]
    assert abs(len(short) / len(targets) - 0.1) < 4 * math.sqrt(0.09 / len(targets))
    assert short.min() >= 2 and targets.max() == builder.max_num_tokens
    assert abs(short.mean() - (2 + builder.max_num_tokens) / 2) < 4 * 36 / math.sqrt(len(short))
    # A chunk closes once it reaches the target, so every example but a document's last one
    # holds at least `target` tokens, and none more than max_seq_length - 3.
    for k, doc in enumerate(token_docs):
        for target in (7, 40, builder.max_num_tokens):
            made = builder.examples(doc, target, random.Random(k), others=token_docs[:k])
            sizes = [len(r["input_ids"]) - 3 for r in made]
            assert all(s <= builder.max_num_tokens for s in sizes)
            assert all(s >= target for s in sizes[:-1])
    lengths = np.array([len(x) for x in rows["input_ids"]])
    assert (lengths == SEQ).mean() > 0.7 and (lengths < SEQ // 2).mean() > 0.02


def test_literal_special_tokens_in_text_are_dropped(tokenizer):
    doc = tokenize_document(tokenizer, ["The [MASK] token and [SEP] are text here.", "[CLS]"])
    assert len(doc) == 1 and not set(doc[0]) & {CLS_ID, SEP_ID, MASK_ID, PAD_ID}


# ----- cache

def test_cache_loads_instead_of_rebuilding(corpus, tokenizer, cache_dir, dataset, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although the cache was there")

    monkeypatch.setattr(pretraining, "_build", no_build)
    again = build_pretraining_dataset(corpus, tokenizer, "valid", SEQ, cache_dir, max_docs=N_DOCS, seed=0)
    assert again[:] == dataset[:]
    with pytest.raises(AssertionError, match="rebuilt"):  # other settings are another cache entry
        build_pretraining_dataset(corpus, tokenizer, "valid", SEQ, cache_dir, max_docs=N_DOCS, seed=1)
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no half-built leftovers


def test_sharded_build_matches_serial(corpus, tokenizer, tmp_path):
    # Two local wiki-format files; two processes must give the same examples as one.
    with gzip.open(WIKI_VALID, "rt", encoding="utf-8") as f:
        blocks = list(itertools.islice(f.read().split("\n\n"), 40))
    for k in range(2):
        (tmp_path / f"wiki-00{k}.txt").write_text("\n\n".join(blocks[k * 20:(k + 1) * 20]) + "\n")
    local = resolve_corpus(str(tmp_path / "wiki-00*.txt"))
    serial = build_pretraining_dataset(local, tokenizer, "train", 64, tmp_path / "c1", num_proc=1)
    sharded = build_pretraining_dataset(local, tokenizer, "train", 64, tmp_path / "c2", num_proc=2)
    assert len(serial) > 100 and serial[:] == sharded[:]


def test_max_docs_counts_over_the_whole_corpus_and_the_build_reports_its_progress(corpus, tokenizer, tmp_path,
                                                                                    monkeypatch, caplog):
    """--max-docs 5 on a corpus of two files: 5 documents in all, not 5 per file. The build's progress
    (a log line every few seconds off a terminal) counts what was read of the corpus, with an ETA."""
    from albert import progress

    with gzip.open(WIKI_VALID, "rt", encoding="utf-8") as f:
        blocks = list(itertools.islice(f.read().split("\n\n"), 40))
    for k in range(2):
        (tmp_path / f"wiki-00{k}.txt").write_text("\n\n".join(blocks[k * 20:(k + 1) * 20]) + "\n")
    local = resolve_corpus(str(tmp_path / "wiki-00*.txt"))
    first_five = [tokenize_document(tokenizer, d) for d in itertools.islice(local.documents("train"), 5)]
    five = build_pretraining_dataset(local, tokenizer, "train", 64, tmp_path / "c1", max_docs=5, progress=False)
    whole = build_pretraining_dataset(local, tokenizer, "train", 64, tmp_path / "c2", num_proc=2, progress=False)
    tokens = {t for doc in first_five for sentence in doc for t in sentence}
    assert 0 < len(five) < len(whole) / 4
    assert all(set(ids) - set(SPECIALS) <= tokens for ids in five["input_ids"])  # only from those 5 documents

    monkeypatch.setattr(progress, "EVERY_S", 0.05)
    monkeypatch.setattr(pretraining._ShardReport, "REPORT_EVERY_S", 0.0)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    with caplog.at_level("INFO", logger="albert"):
        again = build_pretraining_dataset(local, tokenizer, "train", 64, tmp_path / "c3", num_proc=2)
    assert again[:] == whole[:]
    size = sum((tmp_path / f"wiki-00{k}.txt").stat().st_size for k in range(2))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("building train examples:")]
    assert lines, caplog.text
    assert lines[-1].startswith(f"building train examples: {size / 1e3:.1f} kB of {size / 1e3:.1f} kB (100%)")
    documents = sum(1 for d in local.documents("train") if tokenize_document(tokenizer, d))
    assert f"{len(whole):,} examples from {documents} documents (took " in lines[-1]


def test_build_errors(tokenizer, tmp_path):
    (tmp_path / "wiki-000.txt").write_text("Only a title\nHistory.\n\nAnother title\n")
    empty = resolve_corpus(str(tmp_path / "wiki-000.txt"))
    with pytest.raises(AlbertError, match="is empty"):
        build_pretraining_dataset(empty, tokenizer, "valid", SEQ, tmp_path / "cache")
    (tmp_path / "ok.txt").write_text("One sentence here. And another one.")
    with pytest.raises(AlbertError, match="max_seq_length"):
        build_pretraining_dataset(resolve_corpus(str(tmp_path / "ok.txt")), tokenizer, "valid", 4, tmp_path / "c")


# ----- masking

@pytest.fixture(scope="module")
def masker(tokenizer):
    return NgramMasker.from_tokenizer(tokenizer, seed=7)


@pytest.fixture(scope="module")
def masked(masker, rows):
    ids = rows["input_ids"][:1500]
    return ids, [masker.mask(x, masker.rng(0, i)) for i, x in enumerate(ids)]


def test_masked_fraction(masker, masked):
    ids, out = masked
    n_masked = np.array([(m.labels != IGNORE_INDEX).sum() for m in out])
    budgets = np.array([masker.budget(len(x)) for x in ids])
    lengths = np.array([len(x) for x in ids])
    assert (n_masked <= budgets).all() and (n_masked >= 1).all()
    assert (n_masked == budgets).mean() > 0.95
    assert budgets.max() <= masker.max_predictions
    assert 0.14 < n_masked.sum() / lengths.sum() < 0.16
    capped = NgramMasker(masker.word_start, seed=7, max_predictions=5)
    few = np.array([(capped.mask(x, capped.rng(0, i)).labels != IGNORE_INDEX).sum() for i, x in enumerate(ids[:300])])
    assert few.max() == 5 and (few == 5).mean() > 0.9  # a word longer than what is left is skipped


def test_masked_spans_are_whole_words(masker, masked):
    ids, out = masked
    for x, m in zip(ids, out):
        x = np.asarray(x)
        special = np.isin(x, SPECIALS)
        # A word begins at a piece marked as a word start, or right after a special token (a
        # segment that truncation cut inside a word begins with the rest of that word).
        starts_word = masker.word_start[x] | special | np.r_[True, special[:-1]]
        taken = np.zeros(len(x), dtype=bool)
        for a, b, n in m.spans:
            assert 1 <= n <= 3 and a < b
            assert starts_word[a] and not special[a:b].any()  # begins at a word start, no special inside
            assert b == len(x) or starts_word[b]  # ends right before the next word
            assert starts_word[a:b].sum() == n  # n whole words
            assert not taken[a:b].any()  # spans never overlap
            taken[a:b] = True
        assert np.array_equal(taken, m.labels != IGNORE_INDEX)
        assert np.array_equal(m.labels[taken], x[taken])


def test_ngram_lengths_follow_one_over_n(masker, masked):
    # The first span of each example is drawn before any overlap or budget matters, so its
    # length follows p(n) ∝ 1/n over the lengths that fit before the next special token.
    ids, out = masked
    observed = np.zeros(3)
    expected = np.zeros(3)
    p = 1 / np.arange(1, 4)
    for x, m in zip(ids, out):
        observed[m.spans[0][2] - 1] += 1
        starts, _, runs = masker.words(np.asarray(x))
        room = np.array([min(3, int((runs[w:] == runs[w]).sum())) for w in range(len(starts))])
        for c in (1, 2, 3):
            expected[:c] += (room == c).sum() / len(room) * p[:c] / p[:c].sum()
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < 13.8, (observed, expected)  # 2 degrees of freedom, p = 0.001
    assert abs(expected[0] / len(out) - 6 / 11) < 0.05  # close to the unrestricted 1 : 1/2 : 1/3
    # Over all spans, overlaps and the budget favour short n-grams further, never long ones.
    every = np.bincount([n for m in out for _, _, n in m.spans], minlength=4)[1:]
    assert every[0] > every[1] > every[2] > 0


def test_replacement_80_10_10(masker, masked, tokenizer):
    ids, out = masked
    orig = np.concatenate([np.asarray(x)[m.labels != IGNORE_INDEX] for x, m in zip(ids, out)])
    new = np.concatenate([m.input_ids[m.labels != IGNORE_INDEX] for m in out])
    n = len(orig)
    is_mask, kept = new == MASK_ID, new == orig
    swapped = new[~is_mask & ~kept]
    for share, p in ((is_mask.mean(), 0.8), (kept.mean(), 0.1), (len(swapped) / n, 0.1)):
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert not np.isin(swapped, SPECIALS).any() and swapped.max() < tokenizer.vocab_size
    assert len(set(swapped.tolist())) > len(swapped) // 2  # spread over the vocabulary
    for x, m in zip(ids, out):  # nothing changes outside the masked positions
        outside = m.labels == IGNORE_INDEX
        assert np.array_equal(m.input_ids[outside], np.asarray(x)[outside])


def test_masks_are_deterministic_per_epoch(masker, rows, tokenizer):
    row = {k: v[3] for k, v in rows.items()}
    same = NgramMasker.from_tokenizer(tokenizer, seed=7)
    assert masker(row, 0, 3) == same(row, 0, 3)
    differ = lambda a, b: a["labels"] != b["labels"] or a["input_ids"] != b["input_ids"]  # noqa: E731
    sample = [{k: v[i] for k, v in rows.items()} for i in range(50)]
    assert sum(differ(masker(r, 0, i), masker(r, 1, i)) for i, r in enumerate(sample)) >= 48
    other_seed = NgramMasker.from_tokenizer(tokenizer, seed=8)
    assert sum(differ(masker(r, 0, i), other_seed(r, 0, i)) for i, r in enumerate(sample)) >= 48


def test_collate_pads_and_masks(masker, dataset):
    data = IndexedExamples(dataset)
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=False,
                                         collate_fn=functools.partial(pretraining_collate, masker=masker, epoch=2))
    batch = next(iter(loader))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "sentence_order_label"}
    lengths = [len(dataset[i]["input_ids"]) for i in range(8)]
    assert batch["input_ids"].shape == (8, max(lengths)) and batch["sentence_order_label"].shape == (8,)
    assert batch["attention_mask"].sum(1).tolist() == lengths
    pad = batch["attention_mask"] == 0
    assert (batch["input_ids"][pad] == PAD_ID).all() and (batch["labels"][pad] == IGNORE_INDEX).all()
    assert (batch["token_type_ids"][pad] == 0).all()
    assert batch["sentence_order_label"].tolist() == [dataset[i]["sentence_order_label"] for i in range(8)]
    for i in range(8):  # the batch holds exactly the masks of (seed, epoch=2, index=i)
        m = masker.mask(dataset[i]["input_ids"], masker.rng(2, i))
        assert batch["input_ids"][i, :lengths[i]].tolist() == m.input_ids.tolist()
        assert batch["labels"][i, :lengths[i]].tolist() == m.labels.tolist()
    with pytest.raises(AlbertError, match="index"):
        pretraining_collate([dataset[0]], masker, 0)
