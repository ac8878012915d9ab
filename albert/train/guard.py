"""The non-finite guard and the step's running figures, kept on the device.

A GPU runs behind the host; every number the host reads back makes it wait for the GPU to
catch up. So a training step reads nothing: whether its loss and gradient norm are finite is
decided on the device, handed to the optimizer as a `found_inf` flag (the protocol GradScaler
uses: torch's fused AdamW and our LAMB skip the whole update, state included, when it is 1),
and the losses, gradient norms and counts of skipped steps are summed on the device. The host
reads them all at once (`read`), on logging steps and before the loop evaluates, saves or stops.
The training loop keeps the optimizer step; the guard only supplies the flag.

Contract:
- `check(loss, grad_norm)` after backward, unscale and clipping: the step's skip flag (a device
  tensor), with the step added to the sums. Nothing is read back.
- `with flagged(optimizer, skip) as apply: if apply: optimizer.step()`: the optimizer sees the
  flag and skips the update itself, or (an optimizer that cannot take a flag) one read back
  decides `apply`.
- A step is *bad* (skipped, and counted towards --max-bad-steps) when its loss is not finite,
  or, except under fp16, its gradient norm; under fp16 a gradient overflow is the GradScaler's
  business (the update is skipped, the scale lowered) and the step is not bad.
- `read()` returns the sums since the last `reset_window()` and the counts since the start.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple

import torch

# Slots of the accumulator, in float64 so that sums equal the host's sums of the float32 values.
LOSS_SUM, GOOD, NORM_SUM, NORMS, BAD_IN_A_ROW, SKIPPED, SINCE_BAD, LAST_BAD_LOSS, LAST_BAD_WAS_LOSS = range(9)
WINDOW = slice(LOSS_SUM, NORMS + 1)


class Reading(NamedTuple):
    loss: float | None  # mean over the window's good steps; None when all were skipped
    grad_norm: float | None  # mean of the window's finite gradient norms
    bad_in_a_row: int  # consecutive bad steps up to now
    skipped: int  # bad steps since the run began
    last_bad_ago: int  # steps since the last bad one (0: the last step was bad)
    last_bad_loss: float  # the loss of the last bad step
    last_bad_was_loss: bool  # whether its loss (else its gradient norm) was not finite
    metrics: dict[str, float]


@contextmanager
def flagged(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> Iterator[bool]:
    """Hand `skip` to the optimizer for the step taken inside (GradScaler's protocol: such an
    optimizer reads `found_inf` and `grad_scale` in step() and skips the whole update when the
    flag is 1); yields whether to call step(). An optimizer without the protocol: one read back."""
    if not getattr(optimizer, "_step_supports_amp_scaling", False):
        yield not bool(skip)
        return
    optimizer.grad_scale = None  # the gradients are unscaled already
    optimizer.found_inf = skip.to(torch.float32)  # exactly 0 or 1, as the fused kernels expect
    try:
        yield True
    finally:
        del optimizer.grad_scale, optimizer.found_inf


class StepGuard:
    def __init__(self, device: torch.device, *, fp16: bool, bad_in_a_row: int = 0, skipped: int = 0):
        self.device, self.fp16 = device, fp16
        self.acc = torch.zeros(9, dtype=torch.float64, device=device)
        self.acc[BAD_IN_A_ROW], self.acc[SKIPPED] = bad_in_a_row, skipped
        self.acc[SINCE_BAD] = 0 if bad_in_a_row else 2**31  # "long ago" when none is recorded
        self.acc[LAST_BAD_LOSS] = float("nan")
        self.metrics: dict[str, torch.Tensor | float] = {}

    def check(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> torch.Tensor:
        """This step's skip flag (a device bool: its loss or gradient norm is not finite); the
        step is added to the sums."""
        loss_bad = ~torch.isfinite(loss)
        norm_bad = ~torch.isfinite(grad_norm)
        skip = loss_bad | norm_bad  # the update is never applied with these gradients
        bad = loss_bad if self.fp16 else skip
        acc, good = self.acc, (~bad).to(torch.float64)
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        loss64, norm64 = loss.to(torch.float64), grad_norm.to(torch.float64)
        acc[LOSS_SUM] += torch.where(bad, zero, loss64)
        acc[GOOD] += good
        acc[NORM_SUM] += torch.where(skip, zero, norm64)
        acc[NORMS] += (~skip).to(torch.float64)
        acc[BAD_IN_A_ROW] = (acc[BAD_IN_A_ROW] + 1) * (1 - good)
        acc[SKIPPED] += 1 - good
        acc[SINCE_BAD] = (acc[SINCE_BAD] + 1) * good
        acc[LAST_BAD_LOSS] = torch.where(bad, loss64, acc[LAST_BAD_LOSS])
        acc[LAST_BAD_WAS_LOSS] = torch.where(bad, loss_bad.to(torch.float64), acc[LAST_BAD_WAS_LOSS])
        return skip

    def add_metrics(self, values: dict[str, torch.Tensor | float], weight: float) -> None:
        """A micro-batch's step metrics (floats or device tensors), weighted by its share of rows."""
        for k, v in values.items():
            v = v.detach().to(self.device, torch.float64) * weight if isinstance(v, torch.Tensor) else float(v) * weight
            self.metrics[k] = self.metrics[k] + v if k in self.metrics else v

    def read(self) -> Reading:
        """Everything in one read back from the device."""
        names = [k for k, v in self.metrics.items() if isinstance(v, torch.Tensor)]
        values = torch.cat([self.acc, *(self.metrics[k].reshape(1) for k in names)]).tolist()
        a = values[:9]
        metrics = {k: v for k, v in self.metrics.items() if not isinstance(v, torch.Tensor)}
        metrics.update(zip(names, values[9:]))
        return Reading(loss=a[LOSS_SUM] / a[GOOD] if a[GOOD] else None,
                       grad_norm=a[NORM_SUM] / a[NORMS] if a[NORMS] else None,
                       bad_in_a_row=int(a[BAD_IN_A_ROW]), skipped=int(a[SKIPPED]), last_bad_ago=int(a[SINCE_BAD]),
                       last_bad_loss=a[LAST_BAD_LOSS], last_bad_was_loss=bool(a[LAST_BAD_WAS_LOSS]),
                       metrics={k: metrics[k] for k in self.metrics})

    def reset_window(self) -> None:
        """Start a new window of sums (after a logged step); the counts go on."""
        self.acc[WINDOW] = 0
        self.metrics = {}
