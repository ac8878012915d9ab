"""From the sampler's plan to micro-batches: a DataLoader over one epoch's remaining steps.

The collate contract: the trainer always calls `collate_fn(rows, epoch=..., indices=...)`, with
the rows' dataset indices, so random choices (pretraining masks) can be drawn from
(seed, epoch, index) and stay the same however the run is split, resumed or parallelised.
Collates that need neither accept and ignore them.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

from ..data.batch_order import LengthGroupedSampler


class MicroBatch(NamedTuple):
    batch: dict[str, torch.Tensor]
    rows: int
    tokens: int  # real (not padding) tokens, for throughput


class _IndexedRows(torch.utils.data.Dataset):
    """Hands the collate the rows *and* their indices (DataLoader calls __getitems__)."""

    def __init__(self, data: Any):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, indices: list[int]) -> tuple[list[int], list[Any]]:
        getitems = getattr(self.data, "__getitems__", None)
        rows = getitems(indices) if getitems is not None else [self.data[i] for i in indices]
        return indices, rows


class _Collate:
    """The user's collate under the contract above, counting each micro-batch's rows and tokens."""

    def __init__(self, fn: Callable[..., dict[str, torch.Tensor]], epoch: int):
        self.fn, self.epoch = fn, epoch

    def __call__(self, item: tuple[list[int], list[Any]]) -> MicroBatch:
        indices, rows = item
        batch = self.fn(rows, epoch=self.epoch, indices=list(indices))
        if "attention_mask" in batch:
            tokens = int(batch["attention_mask"].sum())
        elif "input_ids" in batch:
            tokens = batch["input_ids"].numel()
        else:
            tokens = 0
        return MicroBatch(batch, len(rows), tokens)


def epoch_feed(data: Any, collate_fn: Callable[..., dict[str, torch.Tensor]], sampler: LengthGroupedSampler, *,
               epoch: int, done_steps: int, seed: int, rank: int, num_workers: int = 0,
               pin_memory: bool = False) -> Iterator[list[MicroBatch]]:
    """The rest of `epoch` after its first `done_steps` steps: one list of micro-batches per step."""
    sampler.set_epoch(epoch)
    sampler.skip(done_steps)
    plan = sampler.steps()
    # The loader draws its worker seed from this generator, not from the global RNG, which would
    # otherwise shift dropout masks whenever a loader is (re)created.
    loader_seed = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    loader = torch.utils.data.DataLoader(
        _IndexedRows(data), batch_sampler=[mb for step in plan for mb in step],
        collate_fn=_Collate(collate_fn, epoch), num_workers=num_workers, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(loader_seed))
    it = iter(loader)
    for step in plan:
        yield [next(it) for _ in step]
