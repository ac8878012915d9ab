"""LengthGroupedSampler: coverage, determinism, length grouping, sharding, resumption."""
from __future__ import annotations

import numpy as np
import pytest

from albert.data.batch_order import LengthGroupedSampler
from albert.errors import AlbertError


def _lengths(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(1, 200, size=n).tolist()


def _flat(steps):
    return [i for step in steps for mb in step for i in mb]


def _micro_batches(sampler) -> list[list[int]]:
    return [mb for step in sampler.steps() for mb in step]


@pytest.mark.parametrize("lengths", [None, _lengths(103)])
def test_each_example_once_per_epoch(lengths):
    s = LengthGroupedSampler(103, 8, lengths=lengths, seed=3)
    batches = _micro_batches(s)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert [len(b) for b in batches].count(8) == 12 and len(batches) == 13 == s.num_steps


def test_order_depends_on_seed_and_epoch_only():
    lengths = _lengths(500)

    def order(seed, epoch):
        s = LengthGroupedSampler(500, 16, lengths=lengths, seed=seed)
        s.set_epoch(epoch)
        return _micro_batches(s)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


def test_plain_random_and_sequential():
    s = LengthGroupedSampler(20, 5, shuffle=False)
    assert _micro_batches(s) == [list(range(i, i + 5)) for i in range(0, 20, 5)]
    r = LengthGroupedSampler(20, 5, seed=0)
    assert _flat(r.steps()) != list(range(20))
    # Without lengths, a random batch is a contiguous slice of one permutation.
    assert _flat(r.steps()) == np.random.default_rng([0, 0]).permutation(20).tolist()


def test_length_grouping_reduces_padding_and_puts_longest_first():
    lengths = np.array(_lengths(2000, seed=5))

    def padding(batches):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)

    grouped = _micro_batches(LengthGroupedSampler(2000, 16, lengths=lengths, seed=0, mega_batch=20))
    plain = _micro_batches(LengthGroupedSampler(2000, 16, seed=0))
    assert padding(grouped) < 0.2 * padding(plain)
    assert lengths[grouped[0]].max() == lengths.max()
    for b in grouped:
        assert list(lengths[b]) == sorted(lengths[b], reverse=True)
    # Still shuffled: the batch order is not sorted by length.
    firsts = [lengths[b[0]] for b in grouped[1:]]
    assert firsts != sorted(firsts, reverse=True)


@pytest.mark.parametrize("lengths", [None, _lengths(96)])
def test_ranks_and_accumulation_split_the_same_global_batches(lengths):
    one = LengthGroupedSampler(96, 8, lengths=lengths, seed=7).steps()
    accum = LengthGroupedSampler(96, 2, grad_accum=4, lengths=lengths, seed=7).steps()
    ranks = [LengthGroupedSampler(96, 2, grad_accum=2, rank=r, world_size=2, lengths=lengths, seed=7).steps()
             for r in range(2)]
    assert len(one) == len(accum) == len(ranks[0]) == len(ranks[1]) == 12
    for k in range(12):
        assert [i for mb in accum[k] for i in mb] == one[k][0]
        assert all(len(mb) == 2 for mb in accum[k])
        assert ranks[0][k][0] + ranks[0][k][1] + ranks[1][k][0] + ranks[1][k][1] == one[k][0]


def test_uneven_data_gives_every_rank_the_same_number_of_steps():
    shards = [LengthGroupedSampler(21, 4, rank=r, world_size=4, seed=0).steps() for r in range(4)]
    assert {len(s) for s in shards} == {2}
    seen = [i for s in shards for i in _flat(s)]
    assert len(seen) == 24 and set(seen) == set(range(21))  # padded by repeating 3 examples
    last = [s[-1] for s in shards]
    assert {sum(len(mb) for mb in step) for step in last} == {2}  # 5 left, padded to 8
    dropped = [LengthGroupedSampler(21, 4, rank=r, world_size=4, drop_last=True).steps() for r in range(4)]
    assert {len(s) for s in dropped} == {1}


def test_resume_mid_epoch_continues_at_the_next_step():
    lengths = _lengths(64)
    full = LengthGroupedSampler(64, 4, lengths=lengths, seed=11)
    full.set_epoch(2)
    resumed = LengthGroupedSampler(64, 4, lengths=lengths, seed=11)  # a new process: epoch and step only
    resumed.set_epoch(2)
    resumed.skip(5)
    assert full.steps()[:5] + resumed.steps() == full.steps()
    resumed.set_epoch(3)  # the next epoch starts at its first step
    assert len(resumed.steps()) == resumed.num_steps == 16
    with pytest.raises(AlbertError, match="cannot skip 17 steps of an epoch of 16"):
        resumed.skip(17)


def test_smaller_micro_batches_keep_each_step_data():
    s = LengthGroupedSampler(40, 8, lengths=_lengths(40), seed=2)
    before = s.steps()
    s.set_micro_batch(3)
    after = s.steps()
    assert [[i for mb in st for i in mb] for st in after] == [st[0] for st in before]
    assert [len(mb) for mb in after[0]] == [3, 3, 2]


def test_bad_arguments():
    with pytest.raises(AlbertError, match="empty"):
        LengthGroupedSampler(0, 4)
    with pytest.raises(AlbertError, match="lengths"):
        LengthGroupedSampler(5, 4, lengths=[1, 2])
    with pytest.raises(AlbertError, match="rank"):
        LengthGroupedSampler(5, 4, rank=2, world_size=2)
