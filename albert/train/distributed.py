"""Where this process trains: its device, and its place in a torchrun launch.

The recipe (finetune/pretrain `run`) creates one `Distributed` and hands it to the trainer, which
sets it up for its device (pretraining sets it up earlier, for its barriers: setup is
idempotent); the recipe tears it down at the end.
"""
from __future__ import annotations

import gc
import os
from typing import Any

import torch
import torch.distributed as dist

from ..errors import AlbertError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" -> this process's GPU when CUDA is available, else the CPU; "cuda" -> cuda:local_rank."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise AlbertError(f"--device {name!r} is not a device ({e})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AlbertError(f"--device {name!r} but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


class Distributed:
    """One process of a torchrun launch (WORLD_SIZE > 1), or the only one (the default)."""

    def __init__(self, world_size: int = 1, rank: int = 0, local_rank: int = 0) -> None:
        self.world_size, self.rank, self.local_rank = world_size, rank, local_rank
        self.enabled = world_size > 1
        self._owns_group = False

    @classmethod
    def from_env(cls) -> Distributed:
        """From torchrun's WORLD_SIZE / RANK / LOCAL_RANK (a single process without them)."""
        env = os.environ
        return cls(int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        """Select this process's GPU, then (several processes) join the process group. Idempotent."""
        if device.type == "cuda":
            torch.cuda.set_device(device)  # before NCCL starts: it binds to the current device
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self._owns_group = True

    def teardown(self) -> None:
        """Leave the process group (the one `setup` joined). Safe on a failed run: no collective.

        Garbage is collected first: a trainer's DDP wrapper holds the group, and when the wrapper
        sits in a reference cycle (the first trainer of a process does: torch's lazy imports keep
        its constructor's frame), the group outlives `destroy_process_group` and is freed during
        interpreter shutdown, where gloo's threads abort the process (SIGABRT after a run that
        succeeded).
        """
        if self._owns_group and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()
            self._owns_group = False

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out
