"""The precision table: names, what "auto" means, the autocast each name gives, peak FLOP/s."""
from __future__ import annotations

import pytest
import torch

from albert.errors import AlbertError
from albert.train.precision import PRECISIONS, autocast, peak_flops, resolve_precision

CPU = torch.device("cpu")


def test_auto_is_fp32_on_a_cpu_and_names_pass_through():
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("auto", "cpu") == "fp32"
    for name in PRECISIONS:
        assert resolve_precision(name, CPU) == name


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_computes_in_the_named_dtype(name, dtype):
    a = torch.randn(4, 4)
    with autocast(name, CPU):
        assert (a @ a).dtype == dtype
    assert (a @ a).dtype == torch.float32


def test_unknown_precision_is_a_user_error():
    with pytest.raises(AlbertError, match="unknown precision 'auto'; choose one of fp32, bf16, fp16"):
        autocast("auto", CPU)  # resolve it first


def test_peak_flops(monkeypatch):
    assert peak_flops(CPU, "bf16") is None
    cuda = torch.device("cuda", 0)
    for name, bf16, fp32 in [("NVIDIA H100 80GB HBM3", 989e12, 67e12), ("NVIDIA H100 PCIe", 756e12, 51e12),
                             ("NVIDIA H200", 989e12, 67e12), ("Tesla T4", None, None)]:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device, _name=name: _name)
        assert (peak_flops(cuda, "bf16"), peak_flops(cuda, "fp32")) == (bf16, fp32), name
