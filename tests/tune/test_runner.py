"""Worker plans (issue 15): trial workers on GPUs share the host's cores (a thread cap each) and,
several to a GPU, its memory (a per-process fraction)."""
import os

import pytest

from albert.tune.runner import gpu_memory_fraction, plan_workers, thread_cap


def test_thread_cap_splits_the_cores_between_concurrent_trials():
    assert thread_cap(4, cpus=16) == 4
    assert thread_cap(3, cpus=16) == 5
    assert thread_cap(32, cpus=16) == 1  # never zero
    assert thread_cap(1, cpus=16) == 16


def test_gpu_memory_fraction_is_one_share_per_trial_on_the_gpu():
    assert gpu_memory_fraction(1) is None  # alone on its GPU: no cap
    assert gpu_memory_fraction(4) == pytest.approx(0.25)
    assert gpu_memory_fraction(3) == pytest.approx(1 / 3)


def test_gpu_workers_get_both_caps_in_their_plan():
    cpus = os.cpu_count() or 1
    specs = plan_workers("cuda", trials_per_gpu=4, gpus=["0", "1"])
    assert len(specs) == 8
    for s in specs:
        assert s.threads == max(1, cpus // 8)
        assert s.env["OMP_NUM_THREADS"] == s.env["MKL_NUM_THREADS"] == str(s.threads)
        assert s.memory_fraction == pytest.approx(0.25)
    alone = plan_workers("cuda", trials_per_gpu=1, gpus=["0"])
    assert alone[0].memory_fraction is None and alone[0].threads == cpus
    assert all(s.memory_fraction is None for s in plan_workers("cpu", workers=2))
