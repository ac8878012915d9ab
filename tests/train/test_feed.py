"""The feed: the collate contract (always rows, epoch=, indices=) and the plan it follows."""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import torch

from albert.data.batching import pad_batch
from albert.data.batch_order import LengthGroupedSampler
from albert.train import Trainer, TrainingOptions
from albert.train.feed import Feed, default_workers, loader_start_method

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
    steps = list(Feed(ROWS, collate, sampler, seed=1, rank=0).epoch(2, done_steps=1))
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


def _pid_collate(rows, *, epoch, indices):
    return {"pid": torch.tensor([os.getpid()]), "epoch": torch.tensor([epoch]), "index": torch.tensor(indices)}


def test_workers_persist_across_epochs_and_each_epoch_gets_its_own_plan():
    sampler = LengthGroupedSampler(len(ROWS), 3, seed=1)
    feed = Feed(ROWS, _pid_collate, sampler, seed=1, rank=0, num_workers=2)
    try:
        pids, seen = set(), {}
        for epoch in range(3):
            steps = list(feed.epoch(epoch, done_steps=1 if epoch == 1 else 0))
            batches = [mb.batch for step in steps for mb in step]
            pids |= {int(b["pid"]) for b in batches}
            assert {int(b["epoch"]) for b in batches} == {epoch}
            seen[epoch] = [b["index"].tolist() for b in batches]
            sampler.set_epoch(epoch)
            sampler.skip(1 if epoch == 1 else 0)
            assert seen[epoch] == [mb for step in sampler.steps() for mb in step]
        abandoned = feed.epoch(3, 0)
        next(abandoned)  # an epoch left half-way (the run stopped, or halved its micro-batch)
        again = [mb.batch["index"].tolist() for step in feed.epoch(3, 0) for mb in step]
        sampler.set_epoch(3)
        assert again == [mb for step in sampler.steps() for mb in step]
        assert len(pids) == 2 and os.getpid() not in pids  # the same two workers throughout
    finally:
        feed.close()


def test_workers_by_default_on_cuda_only(monkeypatch):
    assert default_workers(torch.device("cpu")) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_workers(torch.device("cuda", 0)) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert default_workers(torch.device("cuda", 0)) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert default_workers(torch.device("cuda", 0)) == 1


def _marker_collate(rows, *, epoch, indices):
    import albert.train.feed as feed_module
    return {"marker": torch.tensor([getattr(feed_module, "_test_marker", 0)])}


def _feed_in_a_spawned_process(queue) -> None:
    import albert.train.feed as feed_module
    feed_module._test_marker = 7  # set at run time: a forked worker sees it, a spawned one imports afresh
    feed = Feed(ROWS, _marker_collate, LengthGroupedSampler(len(ROWS), 5, seed=1), seed=1, rank=0, num_workers=2)
    try:
        queue.put(sorted({int(mb.batch["marker"]) for step in feed.epoch(0, 0) for mb in step}))
    finally:
        feed.close()


@pytest.mark.skipif(loader_start_method() is None, reason="no safe fork on this platform")
def test_loader_workers_fork_also_in_a_spawned_process():
    # A sweep's trial worker is spawned, and so inherits "spawn" as its default start method: its
    # loader workers then imported torch and albert again for every trial (a micro sweep with 4
    # loader workers per trial, the CUDA default, took 60 s instead of 10).
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_feed_in_a_spawned_process, args=(queue,))
    proc.start()
    try:
        assert queue.get(timeout=120) == [7]
    finally:
        proc.join(30)
    assert proc.exitcode == 0
