"""Properties of the n-gram masker on random token sequences (hypothesis); the checks on real
Wikipedia text are in test_masking.py."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from albert.data.pretraining import IGNORE_INDEX, NgramMasker
from albert.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID

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


