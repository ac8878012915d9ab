"""The feed: the collate contract (always rows, epoch=, indices=) and the plan it follows."""
from __future__ import annotations

from pathlib import Path

import torch

from albert.data.batching import pad_batch
from albert.data.batch_order import LengthGroupedSampler
from albert.train import Trainer, TrainingOptions
from albert.train.feed import epoch_feed

ROWS = [{"input_ids": list(range(1, 2 + i % 7)), "labels": i % 2} for i in range(20)]


class Recorder:
    """A collate that checks the contract and records what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, rows, *, epoch, indices):
        assert [ROWS[i] for i in indices] == rows
        self.calls.append((epoch, tuple(indices)))
        return pad_batch(rows)


def test_every_collate_call_gets_the_epoch_and_the_rows_indices():
    sampler = LengthGroupedSampler(len(ROWS), 3, grad_accum=2, seed=1)
    collate = Recorder()
    steps = list(epoch_feed(ROWS, collate, sampler, epoch=2, done_steps=1, seed=1, rank=0))
    plan = sampler.steps()  # the same epoch, after its first step
    assert [[mb.rows for mb in step] for step in steps] == [[len(mb) for mb in step] for step in plan]
    assert [idx for _, idx in collate.calls] == [tuple(mb) for step in plan for mb in step]
    assert {e for e, _ in collate.calls} == {2}
    first = steps[0][0]
    assert first.tokens == int(first.batch["attention_mask"].sum()) and first.tokens < first.batch["input_ids"].numel()


def test_the_trainer_passes_epochs_and_indices(tmp_path: Path):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask, labels):
            return type("Out", (), {"loss": ((self.w - labels.float().mean()) ** 2).sum()})()

    collate = Recorder()
    options = TrainingOptions(output_dir=str(tmp_path), lr=0.1, batch_size=5, epochs=2, warmup=0, weight_decay=0.0,
                              device="cpu", progress=False)
    Trainer(Model(), options, ROWS, collate).train()
    assert [e for e, _ in collate.calls] == [0] * 4 + [1] * 4
    assert sorted(i for e, idx in collate.calls if e == 1 for i in idx) == list(range(20))
