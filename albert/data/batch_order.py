"""Batch order for training: random, length-grouped, sharded across ranks, resumable.

One optimizer step consumes one *global batch* of `batch_size * grad_accum * world_size`
examples. Each rank takes its contiguous share of it and splits that into `grad_accum`
micro-batches of `batch_size`. Because the global batch is chosen first, the examples in a
step do not depend on how it is split: 1 process x 8 rows, 2 processes x 4 rows and
1 process x 2 micro-batches x 4 rows all see the same data, which is what makes gradient
accumulation and data parallelism exact, and lets a run that hits OOM halve its micro-batch
without changing its data.

The order is a pure function of (seed, epoch), so a resumed run only needs the epoch and
the number of steps already done in it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import AlbertError


class LengthGroupedSampler:
    """The order of training examples: `steps()` gives this rank's steps of the current epoch,
    each a list of micro-batches (lists of indices), for the trainer's feed (train/feed.py).

    With `lengths`, examples are shuffled, cut into mega-batches of `mega_batch` global
    batches, sorted by length (longest first) inside each mega-batch and cut into global
    batches, so padding is small while the order stays random; the global batches are then
    shuffled and the one holding the longest example goes first, so an out-of-memory error
    shows up at the first step rather than hours in. Without `lengths`: plain random batches
    (or in order with `shuffle=False`).

    Every rank gets the same number of steps: with several ranks the last, partial global
    batch is padded by repeating examples from the start of the epoch, as DistributedSampler
    does; `drop_last=True` drops it instead.
    """

    def __init__(self, num_items: int, batch_size: int, *, lengths: Sequence[int] | None = None,
                 grad_accum: int = 1, rank: int = 0, world_size: int = 1, seed: int = 42,
                 shuffle: bool = True, mega_batch: int = 50, drop_last: bool = False):
        """`batch_size` rows per micro-batch, `grad_accum` micro-batches per step and rank."""
        if num_items <= 0:
            raise AlbertError("the training data is empty")
        if batch_size < 1 or grad_accum < 1 or mega_batch < 1:
            raise AlbertError(f"batch_size ({batch_size}), grad_accum ({grad_accum}) and mega_batch ({mega_batch}) "
                              "must be positive")
        if not 0 <= rank < world_size:
            raise AlbertError(f"rank {rank} is outside world_size {world_size}")
        if lengths is not None and len(lengths) != num_items:
            raise AlbertError(f"got {len(lengths)} lengths for {num_items} examples")
        self.num_items = num_items
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.step_rows = batch_size * grad_accum  # rows per step on each rank
        self.batch_size = batch_size  # rows per micro-batch
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle, self.mega_batch, self.drop_last = seed, shuffle, mega_batch, drop_last
        self.epoch = 0
        self.start_step = 0  # steps of the current epoch to skip (resume)

    @property
    def global_batch(self) -> int:
        return self.step_rows * self.world_size

    @property
    def grad_accum(self) -> int:
        """Micro-batches per full step."""
        return -(-self.step_rows // self.batch_size)

    def set_micro_batch(self, batch_size: int) -> None:
        """Cut each step into micro-batches of at most `batch_size` rows; the data of every
        step stays the same (used to retry a step that ran out of memory)."""
        if batch_size < 1:
            raise AlbertError(f"micro-batch size must be positive, got {batch_size}")
        self.batch_size = batch_size

    @property
    def num_steps(self) -> int:
        """Optimizer steps in one full epoch (the same on every rank)."""
        full, rest = divmod(self.num_items, self.global_batch)
        return full + (1 if rest and not self.drop_last else 0)

    # --- epoch and resume -------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order `steps()` gives, from its first step."""
        self.epoch, self.start_step = int(epoch), 0

    def skip(self, steps: int) -> None:
        """Make `steps()` start after the current epoch's first `steps` steps."""
        if not 0 <= steps <= self.num_steps:
            raise AlbertError(f"cannot skip {steps} steps of an epoch of {self.num_steps}")
        self.start_step = int(steps)

    # --- order ------------------------------------------------------------------------------
    def steps(self) -> list[list[list[int]]]:
        """This rank's remaining steps of the current epoch, each a list of micro-batches."""
        return self._epoch_steps(self.epoch)[self.start_step:]

    def step_sizes(self, epoch: int) -> list[int]:
        """Rows times longest row of each global step of `epoch`: what its padded batches hold, up
        to rounding, on every rank together (all ones without `lengths`: every step alike)."""
        if self.lengths is None:
            return [1] * self.num_steps
        return [len(batch) * int(self.lengths[batch].max()) for batch in self._global_batches(epoch)]

    def _epoch_steps(self, epoch: int) -> list[list[list[int]]]:
        steps = []
        w, r = self.world_size, self.rank
        for batch in self._global_batches(epoch):
            # Global batches hold a multiple of world_size examples, so shares are equal.
            mine = batch[r * len(batch) // w:(r + 1) * len(batch) // w]
            steps.append([mine[i:i + self.batch_size] for i in range(0, len(mine), self.batch_size)])
        return steps

    def _global_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        n, g = self.num_items, self.global_batch
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[: n - n % g]
        elif self.world_size > 1 and len(order) % self.world_size:
            # Pad so the last global batch splits evenly over ranks.
            pad = self.world_size - len(order) % self.world_size
            order = np.concatenate([order, np.resize(order, pad)])
        if self.lengths is not None:
            chunk = g * self.mega_batch
            parts = []
            for s in range(0, len(order), chunk):
                part = order[s:s + chunk]
                parts.append(part[np.argsort(-self.lengths[part], kind="stable")])
            order = np.concatenate(parts)
        batches = [order[s:s + g].tolist() for s in range(0, len(order), g)]
        if self.shuffle and self.lengths is not None and len(batches) > 1:
            perm = rng.permutation(len(batches))
            batches = [batches[i] for i in perm]
            longest = max(range(len(batches)), key=lambda i: self.lengths[batches[i][0]])
            batches.insert(0, batches.pop(longest))
        return batches
