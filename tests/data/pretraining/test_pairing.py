"""Sentence-order pairs and their on-disk cache, on real Wikipedia text."""
from __future__ import annotations

import gzip
import itertools
import math
import random

import numpy as np
import pytest
from wiki_data import N_DOCS, SEQ, SPECIALS, WIKI_VALID, needs_wiki

from albert.data.corpus import resolve_corpus
from albert.data.pretraining import SopExampleBuilder, build_pretraining_dataset, pairing, tokenize_document
from albert.errors import AlbertError
from albert.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID

pytestmark = needs_wiki


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

    monkeypatch.setattr(pairing, "_build", no_build)
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
    monkeypatch.setattr(pairing._ShardReport, "REPORT_EVERY_S", 0.0)
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
