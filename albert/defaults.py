"""The default-resolution rules of the recipes, in one place: what `pretrain.py` and `finetune.py`
use for an option the user left out, by model size, optimizer, batch size and starting point.

Each rule returns the value and a short reason, which the run logs ("lr 0.01: LAMB, a model of
hidden size 128, global batch 64"). The tables hold measured points ("anchors"); between two
anchors a value is interpolated log-linearly, beyond the last one it stays constant. Better
measurements are dropped into the tables; the rules stay.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("albert")

# ---------------------------------------------------------------------------------------------
# Pretraining

# Peak learning rate by (optimizer, model size) and global batch: {global batch: lr}. Model size:
# hidden sizes up to SMALL_MODEL_HIDDEN (micro, tiny, small) or larger (base and up). LAMB scales
# each layer's step by the update's norm, which gradient noise inflates at small batches, so small
# batches want larger rates. Where each anchor comes from: docs/defaults.md.
PRETRAIN_LR: dict[tuple[str, str], dict[int, float]] = {
    ("lamb", "small"): {64: 1e-2},
    ("lamb", "large"): {4096: 1.76e-3},
    ("adamw", "small"): {64: 1e-3},
    ("adamw", "large"): {256: 1e-4},
}
# Warmup, a fraction of the steps: ALBERT's 3125 of 125000.
PRETRAIN_WARMUP = 0.025
SMALL_MODEL_HIDDEN = 256

# ---------------------------------------------------------------------------------------------
# Pretraining recipes by device: what `pretrain.py --corpus wiki` runs with no other option.


@dataclass(frozen=True)
class Device:
    """What the recipe is chosen by: the device type ("cpu" or "cuda"), the CPU cores, and the
    GPU's memory in GiB (None on a CPU). `detect_device` reads it; tests give a stand-in."""

    type: str
    cpu_cores: int
    gpu_memory_gib: float | None = None
    name: str = ""


def detect_device(device: str = "auto") -> Device:
    """The device a run with `--device device` trains on, described for the recipe table."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not wants_cuda:
        return Device("cpu", cores)
    index = int(device.split(":")[1]) if ":" in device else 0
    props = torch.cuda.get_device_properties(index)
    return Device("cuda", cores, round(props.total_memory / 2**30, 1), props.name)


@dataclass(frozen=True)
class Recipe:
    """A pretraining recipe: option values (PretrainArgs field names), why it applies, and whether
    its quality was measured. `values["lr"]` belongs to `values["optimizer"]` at the recipe's
    global batch (`batch_size`, one process, no accumulation)."""

    name: str
    values: dict[str, Any]
    why: str
    measured: bool


# The CPU recipe (docs/pretraining.md): the one measured to leave the unigram plateau within an
# hour on 2 cores. The warmup is a fraction since the budget fixes the steps; a budget, not a
# step count, so that a faster CPU trains more steps in the hour. Warmup-stable-decay, since the
# model leaves the plateau late in the hour: a linear decay would already have lowered the lr there.
CPU_RECIPE = dict(preset="tiny", vocab_size=8000, batch_size=16, mask_prob=0.4, warmup=0.025, optimizer="adamw",
                  lr=1e-3, schedule="wsd", eval_every=1000, max_seq_length=128, time_budget="1h")
# GPU recipes by memory (GiB), not yet measured: Cramming's and MosaicBERT's choices for short
# budgets (no dropout, a high mask rate, AdamW at a large rate with warmup, sequence length 128),
# the base shape with the largest batch the memory holds. The CPU recipe's schedule: under a time
# budget the end moves, and while the peak is held a move does not lower the lr.
GPU_BASE = dict(preset="base", vocab_size=30000, mask_prob=0.4, warmup=0.06, optimizer="adamw", lr=5e-4,
                schedule="wsd", eval_every=1000, max_seq_length=128, time_budget="1h")
GPU_RECIPES: list[tuple[float, dict[str, Any]]] = [  # (at least this many GiB, recipe), largest first
    (60, {**GPU_BASE, "batch_size": 512}),
    (30, {**GPU_BASE, "batch_size": 256}),
    (12, {**GPU_BASE, "batch_size": 128}),
    (0, {**GPU_BASE, "preset": "small", "batch_size": 128, "lr": 1e-3}),
]


def pretrain_recipe(device: Device) -> Recipe:
    """The pretraining recipe for `device` (CPU: measured; CUDA: by GPU memory, unmeasured)."""
    if device.type != "cuda":
        return Recipe("CPU recipe", dict(CPU_RECIPE), f"a CPU with {device.cpu_cores} cores", measured=True)
    memory = device.gpu_memory_gib or 0.0
    floor, values = next((g, v) for g, v in GPU_RECIPES if memory >= g)
    name = f"GPU recipe for >= {floor:g} GiB" if floor else "GPU recipe for small GPUs"
    gpu = f"{device.name}, " if device.name else ""
    return Recipe(name, dict(values), f"a CUDA GPU ({gpu}{memory:g} GiB)", measured=False)


def recipes_table() -> str:
    """The recipe per device, as `pretrain.py --help` shows it."""
    keys = ("preset", "vocab_size", "batch_size", "mask_prob", "optimizer", "lr", "warmup", "schedule",
            "max_seq_length", "eval_every", "time_budget")
    rows = [("device", *keys), ("CPU (measured)", *(str(CPU_RECIPE[k]) for k in keys))]
    rows += [(f"GPU >= {g:g} GiB" if g else "GPU smaller", *(str(v[k]) for k in keys)) for g, v in GPU_RECIPES]
    widths = [max(len(r[i]) for r in rows) for i in range(len(keys) + 1)]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# ---------------------------------------------------------------------------------------------
# Fine-tuning

# Peak learning rate of a random initialisation (--preset), by hidden size: {hidden size: lr};
# the paper's rates barely move a random model in a short run (docs/defaults.md).
RANDOM_INIT_LR: dict[int, float] = {128: 1e-3, 768: 1e-4}
# Peak learning rate of a pretrained checkpoint smaller than the published ones, by hidden size;
# from PAPER_HIDDEN up the task's table (the ALBERT paper's, for base and larger) applies.
SMALL_PRETRAINED_LR: dict[int, float] = {128: 1e-3}
PAPER_HIDDEN = 768
# Steps of a fine-tuning run from a pretrained model smaller than the published ones (the task's
# table, in epochs, is for base and up): the setting measured with the CPU recipe's model.
SMALL_PRETRAINED_STEPS = 1000


def _interpolate(anchors: dict[int, float], x: float) -> float:
    """Log-linear interpolation between anchors (x -> value); constant beyond the ends."""
    xs = sorted(anchors)
    if x <= xs[0]:
        return anchors[xs[0]]
    if x >= xs[-1]:
        return anchors[xs[-1]]
    i = bisect.bisect_right(xs, x)
    x0, x1 = xs[i - 1], xs[i]
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return float(math.exp((1 - t) * math.log(anchors[x0]) + t * math.log(anchors[x1])))


def size_class(hidden_size: int) -> str:
    return "small" if hidden_size <= SMALL_MODEL_HIDDEN else "large"


# The pretraining optimizer by global batch: LAMB, ALBERT's, from LAMB_FROM_BATCH (the paper trains
# at 4096), AdamW below, where LAMB left models that fine-tune worse (docs/defaults.md). The
# threshold is a judgment between the batch measured (64) and the paper's.
LAMB_FROM_BATCH = 1024


def pretrain_optimizer(global_batch: int) -> tuple[str, str]:
    """The default pretraining optimizer for this global batch, and why."""
    if global_batch >= LAMB_FROM_BATCH:
        return "lamb", f"global batch {global_batch} >= {LAMB_FROM_BATCH}"
    return "adamw", f"global batch {global_batch} < {LAMB_FROM_BATCH}, where LAMB is ALBERT's"


def pretrain_lr(optimizer: str, hidden_size: int, global_batch: int) -> tuple[float, str]:
    """The default peak learning rate of a pretraining run, and why."""
    lr = _interpolate(PRETRAIN_LR[(optimizer, size_class(hidden_size))], global_batch)
    return _round(lr), f"{optimizer}, hidden size {hidden_size}, global batch {global_batch}"


def finetune_lr(task_lr: float, *, pretrained: bool, hidden_size: int) -> tuple[float, str]:
    """The default peak learning rate of a fine-tuning run: the task's (the paper's table) for a
    pretrained model of a published size; by size for a smaller pretrained model; by size, and much
    larger, for a random initialisation (which the paper's rates barely move in a short run)."""
    if not pretrained:
        return _round(_interpolate(RANDOM_INIT_LR, hidden_size)), f"random initialisation of hidden size {hidden_size}"
    if hidden_size >= PAPER_HIDDEN:
        return task_lr, "the task's (the ALBERT paper's table)"
    return _round(_interpolate(SMALL_PRETRAINED_LR, hidden_size)), f"a pretrained model of hidden size {hidden_size}"


def finetune_steps(*, pretrained: bool, hidden_size: int) -> tuple[int | None, str]:
    """The default length of a fine-tuning run: SMALL_PRETRAINED_STEPS for a pretrained model
    smaller than the published ones (where it was measured), else None (the task's table)."""
    if pretrained and hidden_size < PAPER_HIDDEN:
        return SMALL_PRETRAINED_STEPS, f"a pretrained model of hidden size {hidden_size}"
    return None, "the task's"


# The tuner's default learning-rate range: the ALBERT paper's for a published-size pretrained
# model; elsewhere (a random initialisation, a small pretrained model) from a tenth to three times
# finetune_lr's default, which on the tiny preset spans SST-2's one-class failures on both sides.
PAPER_TUNE_LR = (5e-6, 1e-4)
TUNE_LR_SPAN = (0.1, 3.0)


def tune_lr_range(task_lr: float, *, pretrained: bool, hidden_size: int) -> tuple[float, float, str]:
    """The learning-rate range a sweep searches when no --space is given: (low, high, why)."""
    if pretrained and hidden_size >= PAPER_HIDDEN:
        return *PAPER_TUNE_LR, f"the ALBERT paper's range for a pretrained model of hidden size {hidden_size}"
    centre, why = finetune_lr(task_lr, pretrained=pretrained, hidden_size=hidden_size)
    return _round(centre * TUNE_LR_SPAN[0]), _round(centre * TUNE_LR_SPAN[1]), f"around {centre:g}: {why}"


def warmup_fraction(defaults: dict[str, Any]) -> float:
    """A task's default warmup as a fraction of the run. The paper's table gives warmup steps for
    its number of steps (SST-2: 1256 of 20935); read as the same fraction, it fits any --max-steps
    or --epochs (1256 absolute steps would outlast a 300-step run)."""
    warmup = defaults["warmup"]
    if warmup < 1:
        return float(warmup)
    steps = defaults.get("max_steps")
    if not steps:
        raise ValueError(f"a warmup of {warmup} steps needs the table's max_steps to become a fraction")
    return round(warmup / steps, 3)


def max_seq_length(task_default: int, positions: int | None) -> tuple[int, str | None]:
    """The default max_seq_length: the task's, cut to the model's positions (`positions`, None for
    a random initialisation, which gets as many positions as the task wants). Returns the value and
    a note when it was cut. An explicit --max-seq-length above the positions stays an error."""
    if positions is None or task_default <= positions:
        return task_default, None
    return positions, (f"max_seq_length {positions}: the task's default {task_default} cut to the model's "
                       f"max_position_embeddings (pass --max-seq-length to choose)")


def _round(x: float) -> float:
    """Three significant digits: a default that reads well in logs and config.json."""
    return float(f"{x:.3g}")
