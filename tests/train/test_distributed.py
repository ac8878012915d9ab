"""Where a process trains: device names, the order of GPU selection and process-group start,
the order of the model wrappers (DDP, then compile), and teardown freeing what holds the group
before it is destroyed. The real two-process run is in test_loop.py (test_two_processes_match_one)."""
from __future__ import annotations

import os
import weakref

import pytest
import torch

from albert.errors import AlbertError
from albert.train import Distributed, Trainer, TrainingOptions
from albert.train import distributed as distributed_mod
from albert.train import loop as loop_mod
from albert.train.distributed import resolve_device
from spawning import free_port


def test_from_env_and_the_single_process_default(monkeypatch):
    one = Distributed()
    assert (one.world_size, one.rank, one.enabled, one.is_main) == (1, 0, False, True)
    assert one.broadcast("x") == "x" and one.gather("x") == ["x"]
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d = Distributed.from_env()
    assert (d.world_size, d.rank, d.local_rank, d.enabled, d.is_main) == (4, 3, 1, True, False)


def test_device_names(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(AlbertError, match="--device 'gpu0' is not a device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", local_rank=3) == torch.device("cpu")
    with pytest.raises(AlbertError, match="--device 'cuda' but CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("cuda", local_rank=2) == torch.device("cuda", 2)
    assert resolve_device("cuda:0", local_rank=2) == torch.device("cuda", 0)


def test_the_gpu_is_selected_before_nccl_starts(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", str(device))))
    monkeypatch.setattr(distributed_mod.dist, "is_initialized", lambda: any(c[0] == "init" for c in calls))
    monkeypatch.setattr(distributed_mod.dist, "init_process_group",
                        lambda backend: calls.append(("init", backend)))
    d = Distributed(world_size=2, rank=1, local_rank=1)
    d.setup(torch.device("cuda", 1))
    d.setup(torch.device("cuda", 1))  # again (the recipe, then the trainer): no second group
    assert calls == [("set_device", "cuda:1"), ("init", "nccl"), ("set_device", "cuda:1")]


def test_ddp_wraps_the_model_and_compile_wraps_ddp(monkeypatch, tmp_path):
    class FakeDDP(torch.nn.Module):
        def __init__(self, module, device_ids, find_unused_parameters):
            super().__init__()
            self.module = module

    compiled = []
    monkeypatch.setattr(loop_mod, "DistributedDataParallel", FakeDDP)
    monkeypatch.setattr(torch, "compile", lambda m, mode=None: compiled.append(m) or ("compiled", m))
    monkeypatch.setattr(Distributed, "setup", lambda self, device: None)  # no process group for this check
    options = TrainingOptions(output_dir=str(tmp_path), lr=0.1, batch_size=2, max_steps=1, warmup=0,
                              weight_decay=0.0, device="cpu", compile=True)
    model = torch.nn.Linear(2, 2)
    trainer = Trainer(model, options, [0, 1, 2, 3], lambda rows, epoch, indices: {}, dist=Distributed(2, 0, 0))
    assert isinstance(trainer.ddp, FakeDDP) and trainer.ddp.module is model
    assert compiled == [trainer.ddp] and trainer.forward_model == ("compiled", trainer.ddp)


def _cycle_worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    d = Distributed.from_env()
    d.setup(torch.device("cpu"))
    holder = {"ddp": torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))}
    holder["self"] = holder  # a reference cycle: only the garbage collector frees the wrapper
    wrapper = weakref.ref(holder["ddp"])
    del holder
    alive_at_destroy = []
    destroy = distributed_mod.dist.destroy_process_group
    distributed_mod.dist.destroy_process_group = lambda: alive_at_destroy.append(wrapper() is not None) or destroy()
    d.teardown()
    assert alive_at_destroy == [False], "the DDP wrapper still held the process group when it was destroyed"
    assert not distributed_mod.dist.is_initialized()


def test_teardown_frees_what_holds_the_group_before_destroying_it():
    """A DDP wrapper in a reference cycle would keep the group alive past destroy_process_group,
    into interpreter shutdown, where gloo aborts the process (SIGABRT after a finished run)."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    torch.multiprocessing.spawn(_cycle_worker, args=(free_port(),), nprocs=2, join=True)
