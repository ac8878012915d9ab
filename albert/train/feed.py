"""From the sampler's plan to micro-batches: one DataLoader for the run, over each epoch's remaining steps.

The collate contract: the trainer always calls `collate_fn(rows, epoch=..., indices=...)`, with
the rows' dataset indices, so random choices (pretraining masks) can be drawn from
(seed, epoch, index) and stay the same however the run is split, resumed or parallelised.
Collates that need neither accept and ignore them.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

from ..data.batch_order import LengthGroupedSampler


class MicroBatch(NamedTuple):
    batch: dict[str, torch.Tensor]
    rows: int
    tokens: int  # real (not padding) tokens, for throughput


class _IndexedRows(torch.utils.data.Dataset):
    """Hands the collate the rows *and* the epoch and the rows' indices (DataLoader passes what the
    batch sampler yields, here (epoch, indices), to __getitems__)."""

    def __init__(self, data: Any):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, item: tuple[int, list[int]]) -> tuple[int, list[int], list[Any]]:
        epoch, indices = item
        getitems = getattr(self.data, "__getitems__", None)
        rows = getitems(indices) if getitems is not None else [self.data[i] for i in indices]
        return epoch, indices, rows


class _Collate:
    """The user's collate under the contract above, counting each micro-batch's rows and tokens."""

    def __init__(self, fn: Callable[..., dict[str, torch.Tensor]]):
        self.fn = fn

    def __call__(self, item: tuple[int, list[int], list[Any]]) -> MicroBatch:
        epoch, indices, rows = item
        batch = self.fn(rows, epoch=epoch, indices=list(indices))
        if "attention_mask" in batch:
            tokens = int(batch["attention_mask"].sum())
        elif "input_ids" in batch:
            tokens = batch["input_ids"].numel()
        else:
            tokens = 0
        return MicroBatch(batch, len(rows), tokens)


class _Plan:
    """The loader's batch sampler: the micro-batches of the current epoch's remaining steps, each as
    (epoch, indices). Iterated in the training process, also when workers load the batches."""

    def __init__(self) -> None:
        self.items: list[tuple[int, list[int]]] = []

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def default_workers(device: torch.device) -> int:
    """Loader workers when --num-workers is not given: on CUDA min(4, this process's share of the
    CPUs), so masking and padding run beside the GPU's step; on a CPU none (they would compete with
    the step for the same cores)."""
    if device.type != "cuda":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))))


def loader_start_method() -> str | None:
    """How the loader's workers start: "fork" where the platform forks safely (not macOS), else
    Python's default. The default is not what it seems in every process: one that was itself
    spawned, as a sweep's trial worker is, inherits "spawn", and Python 3.14 makes "forkserver"
    the default on Linux. A worker started either way imports torch and albert again before its
    first batch, for every trial, which made sweeps with loader workers several times slower.
    A forked worker touches no CUDA: it only collates on the CPU."""
    if sys.platform == "darwin" or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return "fork"


class Feed:
    """One DataLoader for the whole run: with workers they start once and persist across epochs
    (`epoch` points the loader's batch sampler at the epoch's plan instead of building a new
    loader), batches are pinned for non-blocking copies to a GPU (`pin_memory`), and `prefetch`
    batches per worker are loaded ahead. `close` stops the workers."""

    def __init__(self, data: Any, collate_fn: Callable[..., dict[str, torch.Tensor]], sampler: LengthGroupedSampler,
                 *, seed: int, rank: int, num_workers: int = 0, pin_memory: bool = False, prefetch: int = 4):
        self.sampler, self.plan = sampler, _Plan()
        # The loader draws its worker seed from this generator, not from the global RNG, which would
        # otherwise shift dropout masks whenever an epoch starts. (Workers get no randomness of
        # their own to use: every random choice of a collate is drawn from (seed, epoch, index).)
        loader_seed = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
        self.loader = torch.utils.data.DataLoader(
            _IndexedRows(data), batch_sampler=self.plan, collate_fn=_Collate(collate_fn), num_workers=num_workers,
            pin_memory=pin_memory, persistent_workers=num_workers > 0,
            prefetch_factor=prefetch if num_workers > 0 else None,
            multiprocessing_context=loader_start_method() if num_workers > 0 else None,
            generator=torch.Generator().manual_seed(loader_seed))

    def epoch(self, epoch: int, done_steps: int) -> Iterator[list[MicroBatch]]:
        """The rest of `epoch` after its first `done_steps` steps: one list of micro-batches per step."""
        self.sampler.set_epoch(epoch)
        self.sampler.skip(done_steps)
        plan = self.sampler.steps()
        self.plan.items = [(epoch, mb) for step in plan for mb in step]
        it = iter(self.loader)  # persistent workers drop what they loaded ahead for the last plan
        for step in plan:
            yield [next(it) for _ in step]

    def close(self) -> None:
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

