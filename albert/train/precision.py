"""Numeric precision: the one table of names, what "auto" means, autocast, and peak FLOP/s for MFU."""
from __future__ import annotations

import contextlib

import torch

from ..errors import require

# Precision name -> autocast dtype (None: no autocast). "auto" resolves to one of these.
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = ("auto", *PRECISIONS)

# Dense peak FLOP/s per GPU: (bf16/fp16 tensor cores, fp32 without TF32). First match wins.
PEAK_FLOPS = (
    ("H100 PCIe", 756e12, 51e12),
    ("H100", 989e12, 67e12),
    ("H200", 989e12, 67e12),
    ("A100", 312e12, 19.5e12),
    ("V100", 125e12, 15.7e12),
)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"auto" -> bf16 on CUDA GPUs that support it, else fp32; anything else as given."""
    if precision == "auto":
        device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                              "cpu" if device == "auto" else device)
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to `precision`'s dtype on `device`'s type; nothing for fp32."""
    require(precision in PRECISIONS, f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak FLOP/s of one device at `precision`, or None when unknown (CPUs, other GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, half, full in PEAK_FLOPS:
        if key in name:
            return half if precision in ("bf16", "fp16") else full
    return None
