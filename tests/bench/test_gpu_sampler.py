"""bench/gpu_sampler.py: the utilisation figures computed from the samples."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gpu_sampler import GpuSampler  # noqa: E402


def test_utilisation_over_the_span_the_gpu_was_in_use():
    sampler = GpuSampler(every=0.5)
    sampler.source = None  # no sampling thread work: the samples are set by hand
    sampler.start()
    # Start-up with the GPU idle, two busy samples around an idle one, then idle again.
    sampler.samples = [(0, 100), (0, 100), (50, 200), (0, 200), (100, 300), (0, 300)]
    figures = sampler.stop()
    assert figures["util_mean"] == pytest.approx(150 / 6) and figures["util_max"] == 100
    assert figures["busy_share"] == pytest.approx(2 / 6)
    assert figures["span_s"] == pytest.approx(1.5) and figures["util_mean_span"] == pytest.approx(50)
    assert figures["mem_max_mib"] == 300


def test_no_samples():
    sampler = GpuSampler()
    sampler.source = None
    sampler.start()
    assert sampler.stop() == {"source": None, "samples": 0}
