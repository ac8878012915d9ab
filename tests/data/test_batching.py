"""Padding: bucket lengths, the vectorised padder against a row-by-row one, and the host-side
"no padding, no mask" decision."""
from __future__ import annotations

import numpy as np
import torch

from albert.data.batching import bucket_length, pad_batch, pad_rows


def test_bucket_lengths():
    assert [bucket_length(n) for n in (1, 8, 9, 17, 25, 33, 49, 65, 97, 128, 129, 200, 384, 385, 512)] == \
        [8, 8, 16, 24, 32, 48, 64, 96, 128, 128, 192, 256, 384, 512, 512]
    assert sorted({bucket_length(n) for n in range(1, 513)}) == [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
    for n in range(1, 1025):
        b = bucket_length(n)
        assert b >= n and b % 8 == 0 and (b <= 8 or n > b * 2 // 3 - 8)  # never more than about a third padding
    assert bucket_length(5, multiple_of=1) == 6 and bucket_length(100, multiple_of=64) == 128


def test_pad_rows_matches_a_loop():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 50, size=int(n)).tolist() for n in rng.integers(0, 30, size=40)]
    grid, lengths = pad_rows(seqs, 32, -7)
    assert lengths.tolist() == [len(s) for s in seqs]
    for row, s in zip(grid, seqs):
        assert row.tolist() == s + [-7] * (32 - len(s))


def test_pad_batch():
    rows = [{"input_ids": [5, 6, 7], "labels": [1, 2, 3], "label": 1, "score": 0.5, "id": "a"},
            {"input_ids": [8], "labels": [4], "label": 0, "score": 1.5, "id": "b"}]
    b = pad_batch(rows, multiple_of=8)
    assert set(b) == {"input_ids", "labels", "label", "score", "attention_mask"}
    assert b["input_ids"].tolist() == [[5, 6, 7] + [0] * 5, [8] + [0] * 7]
    assert b["labels"][1].tolist() == [4] + [-100] * 7
    assert b["attention_mask"].tolist() == [[1] * 3 + [0] * 5, [1] + [0] * 7]
    assert b["score"].dtype == torch.float32 and b["label"].tolist() == [1, 0]
    # No padding: the mask is kept by default, left out on request (the model then runs unmasked).
    same = [{"input_ids": [1, 2], "attention_mask": [1, 1]}, {"input_ids": [3, 4], "attention_mask": [1, 1]}]
    assert "attention_mask" in pad_batch(same)
    assert set(pad_batch(same, mask_unpadded=False)) == {"input_ids"}
    assert "attention_mask" in pad_batch(same, multiple_of=8, mask_unpadded=False)  # rounding pads
    assert "attention_mask" in pad_batch(rows, mask_unpadded=False)
