"""Pretraining batches: mask, pad to a bucket length, and list the masked positions.

A batch has shapes that depend on the data only through its bucket length:
  input_ids, token_type_ids   (B, L): L = `bucket_length` of the longest row (multiples of 8)
  attention_mask              (B, L), only when some row is padded: a batch without padding
                              runs without a mask, and SDPA may take its flash kernel
  mlm_positions, mlm_labels   (B, P): P = the masker's max_predictions; each row's masked
                              positions in ascending order, then position 0 with label -100
  sentence_order_label        (B,)
So the model gathers B x P rows for the MLM head without reading anything back from the
device, and a compiled model sees a handful of shapes.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ...errors import AlbertError
from ...tokenizer import PAD_ID
from ..batching import attention_mask, bucket_length, pad_rows
from .masking import IGNORE_INDEX, NgramMasker


def pretraining_collate(rows: Sequence[Mapping[str, Any]], masker: NgramMasker, *, epoch: int,
                        indices: Sequence[int], multiple_of: int = 8, buckets: bool = True,
                        max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Mask `rows` (row i seeded by masker.seed, `epoch` and `indices[i]`, its dataset index) and
    pad them into the batch described in the module docstring.

    The padded length is the longest row rounded up to `multiple_of`, then (with `buckets`) to
    its bucket length, and never past `max_length`."""
    if len(rows) != len(indices):
        raise AlbertError(f"pretraining_collate: {len(rows)} rows but {len(indices)} indices")
    masked = masker.mask_rows([r["input_ids"] for r in rows], epoch, indices)
    lengths = np.diff(masked.offsets)
    longest = int(lengths.max(initial=1))
    length = bucket_length(longest, multiple_of) if buckets else -(-longest // multiple_of) * multiple_of
    if max_length is not None:
        length = max(longest, min(length, max_length))

    input_ids = np.full((len(rows), length), PAD_ID, dtype=np.int64)
    input_ids[np.arange(length) < lengths[:, None]] = masked.input_ids
    token_type_ids, _ = pad_rows([r["token_type_ids"] for r in rows], length, 0)

    # Row r's k-th masked position goes to slot k of row r.
    row = np.searchsorted(masked.offsets, masked.positions, side="right") - 1
    slot = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    positions = np.zeros((len(rows), masker.max_predictions), dtype=np.int64)
    labels = np.full((len(rows), masker.max_predictions), IGNORE_INDEX, dtype=np.int64)
    positions[row, slot] = masked.positions - masked.offsets[row]
    labels[row, slot] = masked.labels

    batch = {"input_ids": torch.from_numpy(input_ids), "token_type_ids": torch.from_numpy(token_type_ids),
             "mlm_positions": torch.from_numpy(positions), "mlm_labels": torch.from_numpy(labels),
             "sentence_order_label": torch.tensor([int(r["sentence_order_label"]) for r in rows], dtype=torch.long)}
    if (lengths < length).any():
        batch["attention_mask"] = attention_mask(lengths, length)
    return batch


class IndexedExamples(torch.utils.data.Dataset):
    """A pretraining dataset fetched a batch of rows at a time (`__getitems__`, which the
    DataLoader calls) instead of row by row. The rows' indices, which seed their masks, reach
    the collate as its `indices` argument."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[int(index)]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        batch = self.dataset[[int(i) for i in indices]]
        return [{k: v[j] for k, v in batch.items()} for j in range(len(indices))]
