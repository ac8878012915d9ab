"""Batching: pad each batch only to its own longest sequence, and group similar lengths.

Padding to a fixed max length wastes most of the compute on short-sentence tasks
(CoNLL-2003 sentences average ~14 words), so every collate pads to the batch's longest row.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

# Keys that hold one value per token and the value they are padded with.
DEFAULT_PAD = {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0, "labels": -100, "word_ids": -1}


def pad_batch(rows: Sequence[Mapping[str, Any]], pad_values: Mapping[str, int] | None = None,
              multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """Stack rows into tensors. Keys in `pad_values` are per-token lists padded to the longest
    row (rounded up to `multiple_of`); every other key is one number per row.

    An `attention_mask` is made from the lengths of `input_ids` when rows do not carry one.
    """
    pads = dict(DEFAULT_PAD if pad_values is None else pad_values)
    keys = list(rows[0].keys())
    if "attention_mask" not in keys and "input_ids" in keys:
        rows = [{**r, "attention_mask": [1] * len(r["input_ids"])} for r in rows]
        keys.append("attention_mask")
    seq_keys = [k for k in keys if k in pads and isinstance(rows[0][k], (list, tuple))]
    longest = max(len(r[seq_keys[0]]) for r in rows) if seq_keys else 0
    if multiple_of > 1:
        longest = -(-longest // multiple_of) * multiple_of
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        if k in seq_keys:
            t = torch.full((len(rows), longest), pads[k], dtype=torch.long)
            for i, r in enumerate(rows):
                v = r[k]
                t[i, : len(v)] = torch.as_tensor(v, dtype=torch.long)
            out[k] = t
        else:
            vals = [r[k] for r in rows]
            if isinstance(vals[0], float):
                out[k] = torch.tensor(vals, dtype=torch.float32)
            elif isinstance(vals[0], (int, bool)):
                out[k] = torch.tensor(vals, dtype=torch.long)
            # Anything else (strings, ids for scoring) stays out of the model's batch.
    return out
