"""N-gram whole-word masking on real Wikipedia text: budget, whole words, 1/n lengths, 80/10/10,
determinism per (seed, epoch, index), and a batch masked at once equal to its rows one by one."""
from __future__ import annotations

import math

import numpy as np
import pytest
from wiki_data import SPECIALS, needs_wiki

from albert.data.pretraining import IGNORE_INDEX, NgramMasker
from albert.tokenizer import MASK_ID

pytestmark = needs_wiki


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


def reference_mask(masker: NgramMasker, input_ids, rng: np.random.Generator):
    """The masking spec written as a plain loop over one row's words (the implementation before
    the batch version), drawing from `rng` in the documented order."""
    ids = np.asarray(input_ids, dtype=np.int64)
    starts, ends, runs = masker.words(ids)
    n_words = len(starts)
    cap = np.minimum(np.searchsorted(runs, runs, side="right") - np.arange(n_words), masker.max_ngram)
    budget = masker.budget(len(ids))
    order, draws = rng.permutation(n_words), rng.random(n_words)
    p = 1.0 / np.arange(1, masker.max_ngram + 1)
    covered = np.zeros(n_words, dtype=bool)
    spans, n_masked = [], 0
    for w in order:
        if n_masked >= budget:
            break
        cdf = np.cumsum(p[:cap[w]]) / p[:cap[w]].sum()
        n = int(np.searchsorted(cdf, draws[w], side="right")) + 1
        while n > 0 and n_masked + ends[w + n - 1] - starts[w] > budget:
            n -= 1
        if n == 0 or covered[w:w + n].any():
            continue
        covered[w:w + n] = True
        spans.append((int(starts[w]), int(ends[w + n - 1]), n))
        n_masked += int(ends[w + n - 1] - starts[w])
    positions = np.array(sorted(t for a, b, _ in spans for t in range(a, b)), dtype=np.int64)
    labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
    labels[positions] = ids[positions]
    out = ids.copy()
    action = rng.random(len(positions))
    out[positions[action < 0.8]] = MASK_ID
    swap = positions[action >= 0.9]
    out[swap] = masker.replacement_ids[rng.integers(len(masker.replacement_ids), size=len(swap))]
    return out, labels, spans


@pytest.mark.parametrize("settings", [{}, {"max_predictions": 5}, {"max_ngram": 1},
                                      {"mask_prob": 0.4, "max_ngram": 4, "max_predictions": 40}])
def test_batch_masking_equals_the_row_by_row_spec(masker, rows, settings):
    # A whole batch masked at once (rows in any order, any epoch) gives each row exactly the
    # mask the one-row spec draws from (seed, epoch, index): rows never influence each other.
    m = NgramMasker(masker.word_start, seed=3, **settings)
    order = np.random.default_rng(0).permutation(len(rows["input_ids"]))[:300]
    for epoch in (0, 5):
        batch = m.mask_rows([rows["input_ids"][i] for i in order], epoch, order.tolist())
        for k, i in enumerate(order):
            ids, labels, spans = reference_mask(m, rows["input_ids"][i], m.rng(epoch, int(i)))
            got = batch.row(k)
            assert np.array_equal(got.input_ids, ids) and np.array_equal(got.labels, labels)
            assert got.spans == spans


def test_batch_masking_edge_rows(masker):
    # Rows with no maskable word, a one-word row, and an empty batch.
    rows = [[2, 3, 3], [2, 100, 3, 3], [2, 3, 200, 201, 3]]
    batch = masker.mask_rows(rows, 0, [0, 1, 2])
    assert batch.row(0).spans == [] and (batch.row(0).labels == IGNORE_INDEX).all()
    assert batch.row(1).spans == [(1, 2, 1)] and batch.row(1).labels.tolist() == [IGNORE_INDEX, 100, IGNORE_INDEX, IGNORE_INDEX]
    empty = masker.mask_rows([], 0, [])
    assert len(empty.positions) == 0 and empty.offsets.tolist() == [0]
