"""Pretraining batches: bucketed padding, fixed-size masked positions, the collate contract
(rows, epoch=, indices=), and masks that do not depend on how rows are batched or loaded."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from wiki_data import needs_wiki

from albert.data.batching import bucket_length
from albert.data.pretraining import IGNORE_INDEX, IndexedExamples, pretraining_collate
from albert.errors import AlbertError
from albert.tokenizer import PAD_ID

pytestmark = needs_wiki


def test_collate_pads_to_a_bucket_and_lists_masked_positions(masker, dataset):
    lengths = np.array([len(x) for x in dataset["input_ids"]])
    indices = [*np.flatnonzero(lengths == 128)[[9, 2]], *np.flatnonzero(lengths < 100)[[7, 0, 3, 5, 1, 11]]]
    indices = [int(i) for i in np.random.default_rng(0).permutation(indices)]
    rows = IndexedExamples(dataset).__getitems__(indices)
    batch = pretraining_collate(rows, masker, epoch=2, indices=indices)
    lengths = [len(r["input_ids"]) for r in rows]
    L, P = bucket_length(max(lengths)), masker.max_predictions
    assert L % 8 == 0 and L >= max(lengths)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "mlm_positions", "mlm_labels",
                          "sentence_order_label"}
    assert batch["input_ids"].shape == batch["token_type_ids"].shape == batch["attention_mask"].shape == (8, L)
    assert batch["mlm_positions"].shape == batch["mlm_labels"].shape == (8, P)
    assert all(v.dtype == torch.long for v in batch.values())
    assert batch["attention_mask"].sum(1).tolist() == lengths
    pad = batch["attention_mask"] == 0
    assert (batch["input_ids"][pad] == PAD_ID).all() and (batch["token_type_ids"][pad] == 0).all()
    assert batch["sentence_order_label"].tolist() == [r["sentence_order_label"] for r in rows]
    for k, (i, row) in enumerate(zip(indices, rows)):  # exactly the masks of (seed, epoch=2, index=i)
        m = masker.mask(row["input_ids"], masker.rng(2, i))
        assert batch["input_ids"][k, :lengths[k]].tolist() == m.input_ids.tolist()
        assert batch["token_type_ids"][k, :lengths[k]].tolist() == list(row["token_type_ids"])
        chosen = np.flatnonzero(m.labels != IGNORE_INDEX)
        n = len(chosen)
        assert 1 <= n <= P
        assert batch["mlm_positions"][k, :n].tolist() == chosen.tolist()
        assert batch["mlm_labels"][k, :n].tolist() == m.labels[chosen].tolist()
        assert (batch["mlm_labels"][k, n:] == IGNORE_INDEX).all() and (batch["mlm_positions"][k, n:] == 0).all()


def test_batch_without_padding_has_no_attention_mask(masker, dataset):
    full = [i for i in range(len(dataset)) if len(dataset[i]["input_ids"]) == 128][:6]
    assert len(full) == 6
    batch = pretraining_collate(IndexedExamples(dataset).__getitems__(full), masker, epoch=0, indices=full)
    assert "attention_mask" not in batch and batch["input_ids"].shape == (6, 128)
    # Lengths 34-39: bucket 48; without buckets only rounded up to a multiple of 8 (40); and
    # never past max_length.
    short = [i for i in range(len(dataset)) if 33 < len(dataset[i]["input_ids"]) <= 39][:3]
    rows = IndexedExamples(dataset).__getitems__(short)
    longest = max(len(r["input_ids"]) for r in rows)
    assert len(short) == 3 and longest < 40
    assert pretraining_collate(rows, masker, epoch=0, indices=short)["input_ids"].shape[1] == 48
    assert pretraining_collate(rows, masker, epoch=0, indices=short, buckets=False)["input_ids"].shape[1] == 40
    capped = pretraining_collate(rows, masker, epoch=0, indices=short, max_length=longest)
    assert capped["input_ids"].shape[1] == longest


def test_collate_needs_one_index_per_row(masker, dataset):
    with pytest.raises(AlbertError, match="indices"):
        pretraining_collate([dataset[0], dataset[1]], masker, epoch=0, indices=[0])


def test_masks_do_not_depend_on_batching_or_workers(masker, dataset):
    # What the trainer does: a DataLoader over index lists, the collate told the epoch and the
    # indices. Batches of 8 with two worker processes hold exactly the masks of batches of 3
    # collated in this process.
    data = IndexedExamples(dataset)
    order = np.random.default_rng(1).permutation(len(dataset))[:24].tolist()
    plan = [order[i:i + 8] for i in range(0, 24, 8)]

    def collate(item, epoch):
        indices, rows = item
        return pretraining_collate(rows, masker, epoch=epoch, indices=indices)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitems__(self, indices):
            return indices, data.__getitems__(indices)

    loader = torch.utils.data.DataLoader(Rows(), batch_sampler=plan, num_workers=2,
                                         collate_fn=functools.partial(collate, epoch=4))
    by_index = {}
    for batch, indices in zip(loader, plan):
        for k, i in enumerate(indices):
            by_index[i] = {key: v[k] for key, v in batch.items() if key in ("mlm_positions", "mlm_labels")}
    for start in range(0, 24, 3):
        indices = order[start:start + 3]
        small = pretraining_collate(data.__getitems__(indices), masker, epoch=4, indices=indices)
        for k, i in enumerate(indices):
            assert torch.equal(small["mlm_positions"][k], by_index[i]["mlm_positions"])
            assert torch.equal(small["mlm_labels"][k], by_index[i]["mlm_labels"])
