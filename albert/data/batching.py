"""Batching: pad each batch only to its own longest sequence, and group similar lengths.

Padding to a fixed max length wastes most of the compute on short-sentence tasks
(CoNLL-2003 sentences average ~14 words), so every collate pads to the batch's longest row,
rounded up to a multiple of 8 where asked (tensor-core tiles), or to one of a few bucket
lengths (`bucket_length`) where a compiled model or CUDA graphs should see few shapes.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import torch

# Keys that hold one value per token and the value they are padded with.
DEFAULT_PAD = {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0, "labels": -100, "word_ids": -1}


def bucket_length(n: int, multiple_of: int = 8) -> int:
    """The smallest bucket length >= n: `multiple_of` times 1, 2, 3, 4, 6, 8, 12, 16, ... (powers
    of two and 1.5 times powers of two), so a batch pads at most a third of its length and lengths
    up to 512 take 12 shapes."""
    units = max(1, -(-n // multiple_of))
    power = 1 << (units - 1).bit_length()  # the smallest power of two >= units
    return multiple_of * (power * 3 // 4 if power >= 4 and units <= power * 3 // 4 else power)


def pad_rows(seqs: Sequence[Sequence[int]], length: int, value: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, length) int64 array of `seqs` padded with `value` on the right, and the lengths.
    One fill and one masked assignment, not a copy per row."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    out = np.full((len(seqs), length), value, dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
    out[np.arange(length) < lengths[:, None]] = flat
    return out, lengths


def pad_batch(rows: Sequence[Mapping[str, Any]], pad_values: Mapping[str, int] | None = None,
              multiple_of: int = 1, mask_unpadded: bool = True) -> dict[str, torch.Tensor]:
    """Stack rows into tensors. Keys in `pad_values` are per-token lists padded to the longest
    row (rounded up to `multiple_of`); every other key is one number per row.

    An `attention_mask` is made from the lengths of `input_ids` when rows do not carry one. With
    `mask_unpadded=False` it is left out when no row is padded: the model then runs without a
    mask (SDPA's flash kernel), a decision taken here, on the host, instead of by reading the
    mask back from the device.
    """
    pads = dict(DEFAULT_PAD if pad_values is None else pad_values)
    keys = list(rows[0].keys())
    seq_keys = [k for k in keys if k in pads and isinstance(rows[0][k], (list, tuple, np.ndarray))]
    longest = max(len(r[seq_keys[0]]) for r in rows) if seq_keys else 0
    if multiple_of > 1:
        longest = -(-longest // multiple_of) * multiple_of
    out: dict[str, torch.Tensor] = {}
    lengths = None
    for k in keys:
        if k in seq_keys:
            grid, row_lengths = pad_rows([r[k] for r in rows], longest, pads[k])
            out[k] = torch.from_numpy(grid)
            lengths = row_lengths if k == "input_ids" else lengths
        else:
            vals = [r[k] for r in rows]
            if isinstance(vals[0], float):
                out[k] = torch.tensor(vals, dtype=torch.float32)
            elif isinstance(vals[0], (int, bool, np.integer)):
                out[k] = torch.tensor(vals, dtype=torch.long)
            # Anything else (strings, ids for scoring) stays out of the model's batch.
    if lengths is not None:
        if "attention_mask" not in out:
            out["attention_mask"] = attention_mask(lengths, longest)
        if not mask_unpadded and (lengths == longest).all():
            del out["attention_mask"]
    return out


def attention_mask(lengths: np.ndarray, length: int) -> torch.Tensor:
    """(rows, length) 1/0 mask of the first `lengths[i]` positions of each row."""
    return torch.from_numpy((np.arange(length) < lengths[:, None]).astype(np.int64))
