"""The random streams a resumed run must continue exactly: Python, numpy, torch's CPU generator,
and the CUDA generator of this process's GPU (only that one: a run resumed where more or fewer
GPUs are visible must still find its own)."""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The generators' states, as types torch.load(weights_only=True) accepts; "cuda" holds the
    generator of `device` when it is a GPU, else None."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device is not None and device.type == "cuda" else None,
    }


def _cuda_state(saved: Any, device: torch.device) -> torch.Tensor | None:
    """This device's generator from a saved "cuda" entry: a tensor, or (older checkpoints) a list
    with one state per visible GPU, of which this device's index is ours if it exists."""
    if isinstance(saved, (list, tuple)):
        index = device.index or 0
        return saved[index] if index < len(saved) else None
    return saved


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what `rng_state` saved; the CUDA generator only when training on a GPU."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda":
        cuda = _cuda_state(state.get("cuda"), device)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)


@contextlib.contextmanager
def preserved_rng(device: torch.device | None = None) -> Iterator[None]:
    """Run a block (evaluation) without disturbing training's random streams."""
    saved = rng_state(device)
    try:
        yield
    finally:
        set_rng_state(saved, device)
