"""Random state: a restored state continues every stream exactly; on a GPU only this process's
device generator is saved and restored, so a resume sees however many GPUs are visible."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from albert.train.rng import preserved_rng, rng_state, seed_everything, set_rng_state


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_a_restored_state_continues_every_stream():
    seed_everything(3)
    draws()
    saved = rng_state(torch.device("cpu"))
    first = [draws() for _ in range(3)]
    seed_everything(99)
    set_rng_state(saved, torch.device("cpu"))
    assert [draws() for _ in range(3)] == first
    assert saved["cuda"] is None


def test_preserved_rng_puts_the_streams_back():
    seed_everything(4)
    expected = draws()
    seed_everything(4)
    with preserved_rng(torch.device("cpu")):
        draws()
        torch.randn(100)
    assert draws() == expected


class FakeCuda:
    """torch.cuda's generator functions for a machine with `count` GPUs, recording what is set."""

    def __init__(self, monkeypatch, count: int):
        self.count, self.set = count, []
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.put)

        def every_gpu(*args, **kwargs):
            raise AssertionError("the state of every visible GPU must not be saved or restored")
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_gpu)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", every_gpu)

    @staticmethod
    def state(index: int) -> torch.Tensor:
        return torch.full((8,), index, dtype=torch.uint8)

    def get(self, device):
        assert device.index < self.count
        return self.state(device.index)

    def put(self, state, device):
        assert device.index < self.count, f"cuda:{device.index} is not visible"
        self.set.append((int(state[0]), device.index))


def test_only_this_process_gpu_is_saved(monkeypatch):
    FakeCuda(monkeypatch, count=4)
    saved = rng_state(torch.device("cuda", 2))
    assert torch.equal(saved["cuda"], FakeCuda.state(2))


@pytest.mark.parametrize("saved, visible, device, restored", [
    (FakeCuda.state(0), 1, 0, [(0, 0)]),            # saved by one GPU, resumed on one
    (FakeCuda.state(3), 1, 0, [(3, 0)]),            # rank 3 of 8 GPUs, resumed alone on a 1-GPU machine
    (FakeCuda.state(0), 8, 5, [(0, 5)]),            # saved on a 1-GPU machine, resumed as rank 5 of 8
    (None, 2, 1, []),                                # saved by a CPU run: nothing to restore
    ([FakeCuda.state(i) for i in range(4)], 2, 1, [(1, 1)]),  # an older checkpoint: every GPU's state
    ([FakeCuda.state(0)], 4, 3, []),                 # ... from fewer GPUs than this device's index
    ([], 1, 0, []),                                  # ... written on a CPU
])
def test_restore_on_any_number_of_gpus(monkeypatch, saved, visible, device, restored):
    fake = FakeCuda(monkeypatch, count=visible)
    state = {**rng_state(torch.device("cpu")), "cuda": saved}
    set_rng_state(state, torch.device("cuda", device))
    assert fake.set == restored


def test_a_cpu_run_leaves_cuda_alone(monkeypatch):
    fake = FakeCuda(monkeypatch, count=2)
    state = {**rng_state(torch.device("cpu")), "cuda": FakeCuda.state(1)}
    set_rng_state(state, torch.device("cpu"))
    with preserved_rng(torch.device("cpu")):
        pass
    assert fake.set == []
