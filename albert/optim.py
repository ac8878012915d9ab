"""Optimizers and learning-rate schedules: AdamW, LAMB, parameter groups, warmup + decay.

ALBERT was pretrained with LAMB (You et al. 2019) and fine-tuned with AdamW, both with
weight decay 0.01 that skips biases and LayerNorm weights, and a linear warmup followed by
linear (or polynomial) decay.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from .errors import AlbertError

OPTIMIZERS = ("adamw", "lamb")
SCHEDULES = ("linear", "polynomial", "constant", "wsd")


def param_groups(model: nn.Module, weight_decay: float, lr: float,
                 layer_lr_decay: float | None = None) -> list[dict]:
    """Split trainable parameters into optimizer groups.

    Parameters with ndim < 2 (biases, LayerNorm weights) get no weight decay and, for LAMB,
    no trust ratio (`trust_ratio=False`, google-research/albert's exclude_from_layer_adaptation).
    With `layer_lr_decay`, each group's lr is `lr * decay ** (max_depth - depth)` using
    `model.layer_depths()`, so the embeddings move least and the heads most.
    """
    depths: dict[str, int] | None = None
    if layer_lr_decay is not None:
        if not 0.0 < layer_lr_decay <= 1.0:
            raise AlbertError(f"layer_lr_decay must be in (0, 1], got {layer_lr_decay}")
        if not hasattr(model, "layer_depths"):
            raise AlbertError(f"layer_lr_decay needs a model with layer_depths(); {type(model).__name__} has none")
        depths = model.layer_depths()
    max_depth = max(depths.values()) if depths else 0

    groups: dict[tuple[bool, int], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2
        depth = max_depth
        if depths is not None:
            if name not in depths:
                raise AlbertError(f"layer_depths() gives no depth for parameter {name!r}")
            depth = depths[name]
        key = (decay, depth)
        if key not in groups:
            scale = layer_lr_decay ** (max_depth - depth) if layer_lr_decay is not None else 1.0
            groups[key] = {
                "params": [],
                "lr": lr * scale,
                "weight_decay": weight_decay if decay else 0.0,
                "trust_ratio": decay,
                "name": f"{'decay' if decay else 'no_decay'}/depth{depth}",
            }
        groups[key]["params"].append(p)
    if not groups:
        raise AlbertError(f"{type(model).__name__} has no trainable parameters")
    return [groups[k] for k in sorted(groups, key=lambda k: (k[1], not k[0]))]


class Lamb(torch.optim.Optimizer):
    """LAMB as in google-research/albert's lamb_optimizer.py.

    Per parameter: m, v are Adam moments *without* bias correction (the reference has none;
    `bias_correction=True` turns it on), update = m / (sqrt(v) + eps) + weight_decay * w, and
    the step is lr * r * update with trust ratio r = ||w|| / ||update|| (1 when either norm is
    0). Groups with `trust_ratio=False` skip the ratio (the reference skips it exactly where it
    skips weight decay: biases and LayerNorm).

    Multi-tensor throughout: torch._foreach ops over a group's tensors, and the per-tensor trust
    ratios applied in one multiply over the updates laid end to end, so a step launches the same
    few kernels however many tensors there are. Nothing is read back to the host: the step
    counts live on the parameters' device, and under fp16 the GradScaler hands over its scale
    and overflow flag (`_step_supports_amp_scaling`) instead of reading the flag back to decide
    whether to call step() at all; a step with an overflow then changes nothing.
    """

    _step_supports_amp_scaling = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01, trust_ratio: bool = True,
                 bias_correction: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise AlbertError(f"invalid LAMB settings: lr={lr} betas={betas} eps={eps} weight_decay={weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        trust_ratio=trust_ratio, bias_correction=bias_correction)
        super().__init__(params, defaults)
        self._sizes: dict[tuple, torch.Tensor] = {}  # numels of a tensor list, on its device

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Set by GradScaler.step for this call: the scale the gradients still carry (None when
        # unscale_ already divided it out), and 1.0 where they overflowed.
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("Lamb does not support sparse gradients")
            states = [self._state(p) for p in params]
            m = [s["exp_avg"] for s in states]
            v = [s["exp_avg_sq"] for s in states]
            steps = [s["step"] for s in states]
            beta1, beta2 = group["betas"]
            grads = [p.grad for p in params]
            keep = None
            if grad_scale is not None or found_inf is not None:
                grads, keep = self._amp_grads(grads, grad_scale, found_inf)
                # With an overflow (keep = 0) the moments keep their values: beta becomes 1 and
                # the (zeroed) gradient adds nothing.
                beta1, beta2 = beta1 + (1 - beta1) * (1 - keep), beta2 + (1 - beta2) * (1 - keep)
            # (A list of the flag, not the flag itself: torch's foreach add of one tensor reads it back.)
            torch._foreach_add_(steps, 1.0 if keep is None else [keep] * len(steps))

            torch._foreach_mul_(m, beta1)
            torch._foreach_add_(m, grads, alpha=1 - group["betas"][0])
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - group["betas"][1])

            if group["bias_correction"]:
                # All parameters of a group step together, so one count serves them all; in float64
                # as Python would, then rounded once.
                t = steps[0].double()
                b1, b2 = group["betas"]
                m_hat = torch._foreach_div(m, (1 - b1 ** t).to(m[0].dtype))
                denom = torch._foreach_div(torch._foreach_sqrt(v), (1 - b2 ** t).sqrt().to(v[0].dtype))
            else:
                m_hat = m
                denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(m_hat, denom)
            if group["weight_decay"] != 0:
                torch._foreach_add_(update, params, alpha=group["weight_decay"])

            if group["trust_ratio"]:
                w_norm = torch.stack(torch._foreach_norm(params))
                u_norm = torch.stack(torch._foreach_norm(update))
                ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                scale = ratio * -group["lr"]
                # where, not a multiply: a skipped step's ratio may be inf, and inf * 0 is NaN
                update = self._scaled(update, scale if keep is None else torch.where(keep > 0, scale, 0.0))
            else:
                torch._foreach_mul_(update, -group["lr"] if keep is None else keep * -group["lr"])
            torch._foreach_add_(params, update)
        return loss

    def _state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        elif state["step"].device != p.device:  # a state saved by a version that kept it on the CPU
            state["step"] = state["step"].to(p.device, torch.float32)
        return state

    def _scaled(self, tensors: list[torch.Tensor], scale: torch.Tensor) -> list[torch.Tensor]:
        """tensors[i] * scale[i] for every i, as one multiply over the tensors laid end to end
        (a foreach multiply by a list of scalar tensors falls back to one kernel per tensor)."""
        numels = [t.numel() for t in tensors]
        key = (scale.device, tuple(numels))
        if key not in self._sizes:
            # Once per list of sizes; from pinned memory, so the copy does not wait for the device.
            sizes = torch.tensor(numels)
            self._sizes[key] = (sizes.pin_memory() if scale.device.type == "cuda" else sizes).to(
                scale.device, non_blocking=True)
        flat = torch.cat([t.reshape(-1) for t in tensors])
        flat.mul_(scale.repeat_interleave(self._sizes[key], output_size=flat.numel()))
        return [part.view_as(t) for part, t in zip(flat.split(numels), tensors)]

    @staticmethod
    def _amp_grads(grads: list[torch.Tensor], grad_scale: torch.Tensor | None, found_inf: torch.Tensor | None
                   ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The gradients divided by `grad_scale` and set to zero where the scaler found an
        overflow, and keep = 1 - found_inf; all on the device, nothing read back."""
        device = grads[0].device
        keep = torch.ones((), device=device) if found_inf is None else 1 - found_inf.to(device, torch.float32)
        flat = torch.cat([g.reshape(-1) for g in grads])
        if grad_scale is not None:
            flat.mul_(grad_scale.to(device, torch.float32).reciprocal())
        flat = torch.where(keep > 0, flat, torch.zeros((), device=device, dtype=flat.dtype))
        return [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in grads]), grads)], keep


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.01,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                   layer_lr_decay: float | None = None, fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW (torch, fused where torch has the kernels) or LAMB over `param_groups(model, ...)`."""
    groups = param_groups(model, weight_decay, lr, layer_lr_decay)
    if name == "adamw":
        if fused is None:
            # torch has fused AdamW kernels for CUDA and (since 2.4) CPU: one kernel over all tensors.
            fused = all((p.is_cuda or p.device.type == "cpu") and p.is_floating_point()
                        for g in groups for p in g["params"])
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                 fused=True if fused else None, foreach=None if fused else True)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    raise AlbertError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


class WarmupDecay:
    """lr multiplier: linear warmup from 0, then linear / polynomial decay or constant, or "wsd"
    (warmup-stable-decay: the peak held, then a linear decay over the last `decay_fraction` of the
    steps; Hu et al. 2024, Hägele et al. 2024).

    Matches transformers' get_{linear,polynomial_decay,constant}_schedule_with_warmup, with the
    decay ending at `end_lr_ratio` times the peak lr. A class (not a closure) so that the
    scheduler's state_dict records its settings.

    `ends`: (step, total) pairs where a time budget moved the schedule's end (train/budget.py):
    from `step` on, the decay goes on from where it stands to reach its end at `total` (a "wsd"
    schedule still holding its peak starts its decay at the new end's last `decay_fraction`). The
    lr is continuous at every move and a step's lr depends only on the moves before it, so a run
    repeated with the same pairs from its start follows the same lrs.
    """

    def __init__(self, warmup_steps: int, total_steps: int, kind: str = "linear", power: float = 1.0,
                 end_lr_ratio: float = 0.0, ends: Sequence[Sequence[int]] = (), decay_fraction: float = 0.2):
        if kind not in SCHEDULES:
            raise AlbertError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        if warmup_steps < 0 or total_steps < 0:
            raise AlbertError(f"warmup_steps ({warmup_steps}) and total_steps ({total_steps}) must be >= 0")
        if not 0.0 <= end_lr_ratio <= 1.0:
            raise AlbertError(f"end_lr_ratio must be in [0, 1], got {end_lr_ratio}")
        if not 0.0 < decay_fraction <= 1.0:
            raise AlbertError(f"decay_fraction must be in (0, 1], got {decay_fraction}")
        self.warmup_steps, self.total_steps, self.kind = int(warmup_steps), int(total_steps), kind
        self.power, self.end_lr_ratio = float(power), float(end_lr_ratio)
        self.decay_fraction = float(decay_fraction)
        self.first_total, self.ends = self.total_steps, []
        for step, total in ends:
            self.move_end(step, total)

    def move_end(self, step: int, total: int) -> None:
        """From `step` on, end the decay at `total` steps (> step) instead."""
        if self.ends and step < self.ends[-1][0] or total <= step:
            raise AlbertError(f"cannot move the schedule's end to {total} at step {step} (moves so far: {self.ends})")
        self.ends.append((int(step), int(total)))
        self.total_steps = int(total)

    def recorded_ends(self) -> list[list[int]]:
        """Every end so far as config.json's schedule_ends records them: [[0, first], [step, total], ...]."""
        return [[0, self.first_total], *([step, total] for step, total in self.ends)]

    def _decay_start(self, total: int) -> int:
        """The step the decay of a `total`-step schedule starts at: the warmup's end, or for wsd
        the start of its last `decay_fraction`."""
        if self.kind != "wsd":
            return self.warmup_steps
        return max(self.warmup_steps, total - math.ceil(self.decay_fraction * total))

    def _decayed(self, step: int) -> float:
        """The share of the decay done at `step` (past the warmup; 0 before the decay starts)."""
        start, done, end = self._decay_start(self.first_total), 0.0, self.first_total
        for at, total in self.ends:
            if step <= at:
                break
            if at > start:
                done = min(1.0, done + (1.0 - done) * (at - start) / max(1, end - start))
                start = at
            elif done == 0.0:  # moved before the decay began: it begins where the new end puts it
                start = self._decay_start(total)
            end = total
        return max(0.0, done + (1.0 - done) * (step - start) / max(1, end - start))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / max(1, self.warmup_steps)
        if self.kind == "constant":
            return 1.0
        end = self.end_lr_ratio
        if step >= self.total_steps:
            return end
        remaining = 1.0 - self._decayed(step)
        power = self.power if self.kind == "polynomial" else 1.0
        return (1.0 - end) * remaining ** power + end


def make_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, kind: str = "linear",
                  power: float = 1.0, end_lr_ratio: float = 0.0, ends: Sequence[Sequence[int]] = (),
                  decay_fraction: float = 0.2) -> LambdaLR:
    """A LambdaLR scaling every group's own lr (so layer-wise decay ratios are kept); every group
    shares one WarmupDecay (`scheduler.lr_lambdas[0]`), whose end a time budget may move."""
    return LambdaLR(optimizer, WarmupDecay(warmup_steps, total_steps, kind, power, end_lr_ratio, ends, decay_fraction))
