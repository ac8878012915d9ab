"""Optimizers and schedules: parity with hand-written references and with transformers."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from albert.errors import AlbertError
from albert.optim import Lamb, WarmupDecay, make_optimizer, make_schedule, param_groups

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from count_syncs import HostSyncs  # noqa: E402


class Tiny(nn.Module):
    """Embedding -> LayerNorm -> Linear, with the depth map the ALBERT models expose."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 3)
        self.frozen = nn.Parameter(torch.ones(2, 2), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.emb(x)).mean(1))

    def layer_depths(self) -> dict[str, int]:
        return {"emb.weight": 0, "norm.weight": 1, "norm.bias": 1, "head.weight": 2, "head.bias": 2,
                "frozen": 2}


def _names(model: nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_param_groups_split_decay_by_ndim():
    model = Tiny()
    groups = param_groups(model, weight_decay=0.05, lr=1e-3)
    by_decay = {g["weight_decay"]: _names(model, g) for g in groups}
    assert by_decay == {0.05: {"emb.weight", "head.weight"}, 0.0: {"norm.weight", "norm.bias", "head.bias"}}
    for g in groups:
        assert g["lr"] == 1e-3
        assert g["trust_ratio"] is (g["weight_decay"] > 0)


def test_param_groups_layer_lr_decay():
    model = Tiny()
    groups = param_groups(model, weight_decay=0.01, lr=1.0, layer_lr_decay=0.5)
    lrs = {}
    for g in groups:
        for n in _names(model, g):
            lrs[n] = g["lr"]
    # lr * decay ** (max_depth - depth) with max_depth 2
    assert lrs == {"emb.weight": 0.25, "norm.weight": 0.5, "norm.bias": 0.5, "head.weight": 1.0, "head.bias": 1.0}
    with pytest.raises(AlbertError, match="layer_depths"):
        param_groups(nn.Linear(2, 2), 0.01, 1.0, layer_lr_decay=0.9)


def _fake_grads(model: nn.Module, step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def test_adamw_matches_reference_with_groups():
    torch.manual_seed(0)
    model = Tiny().double()
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(model, "adamw", lr=1e-2, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6)
    assert isinstance(opt, torch.optim.AdamW)
    m = {n: torch.zeros_like(p) for n, p in ref.items()}
    v = {n: torch.zeros_like(p) for n, p in ref.items()}
    for t in range(1, 6):
        _fake_grads(model, t)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        opt.step()
        for n, g in grads.items():
            wd = 0.1 if ref[n].ndim >= 2 else 0.0
            ref[n] = ref[n] * (1 - 1e-2 * wd)  # decoupled decay
            m[n] = 0.9 * m[n] + 0.1 * g
            v[n] = 0.98 * v[n] + 0.02 * g * g
            m_hat = m[n] / (1 - 0.9 ** t)
            v_hat = v[n] / (1 - 0.98 ** t)
            ref[n] = ref[n] - 1e-2 * m_hat / (v_hat.sqrt() + 1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), ref[n], rtol=0, atol=1e-10, msg=n)
    assert torch.equal(model.frozen, torch.ones(2, 2))


def _lamb_reference(params: dict[str, torch.Tensor], grads_per_step: list[dict[str, torch.Tensor]], lr: float,
                     wd: float, bias_correction: bool) -> dict[str, torch.Tensor]:
    """google-research/albert lamb_optimizer.py, one parameter at a time."""
    b1, b2, eps = 0.9, 0.999, 1e-6
    params = {n: p.clone() for n, p in params.items()}
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for n, g in grads.items():
            w = params[n]
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            mh, vh = m[n], v[n]
            if bias_correction:
                mh, vh = mh / (1 - b1 ** t), vh / (1 - b2 ** t)
            update = mh / (vh.sqrt() + eps)
            adapt = w.ndim >= 2  # excluded from decay => excluded from layer adaptation
            if adapt:
                update = update + wd * w
            ratio = 1.0
            if adapt:
                w_norm, u_norm = w.norm().item(), update.norm().item()
                ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
            params[n] = w - ratio * lr * update
    return params


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
@pytest.mark.parametrize("bias_correction", [False, True])
def test_lamb_matches_reference(bias_correction, dtype, atol):
    # In float64 the multi-tensor step and the one-tensor-at-a-time reference agree to rounding.
    torch.manual_seed(1)
    model = Tiny().to(dtype)
    with torch.no_grad():
        model.head.weight.zero_()  # ||w|| = 0: trust ratio falls back to 1
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    groups = param_groups(model, weight_decay=0.01, lr=0.02)
    opt = Lamb(groups, lr=0.02, bias_correction=bias_correction)
    seen = []
    for t in range(1, 7):
        _fake_grads(model, t)
        seen.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        opt.step()
    ref = _lamb_reference(start, seen, lr=0.02, wd=0.01, bias_correction=bias_correction)
    for n, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), ref[n], rtol=0, atol=atol, msg=n)
    # The state survives a state_dict round trip into a fresh optimizer.
    fresh = Lamb(param_groups(model, 0.01, 0.02), lr=0.02, bias_correction=bias_correction)
    fresh.load_state_dict(opt.state_dict())
    _fake_grads(model, 99)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fresh.step()
    assert not torch.equal(before["emb.weight"], model.emb.weight)


def _lamb_run(scale: float | None, found_inf: float | None, poison: bool = False):
    torch.manual_seed(1)
    model = Tiny()
    opt = Lamb(param_groups(model, weight_decay=0.01, lr=0.02), lr=0.02, bias_correction=True)
    for t in range(1, 4):
        _fake_grads(model, t)
        if t == 3:
            if scale is not None:
                for p in model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(scale)
                opt.grad_scale = torch.tensor(scale)
            if poison:
                model.head.weight.grad[0, 0] = float("inf")
            if found_inf is not None:
                opt.found_inf = torch.tensor(found_inf)
        opt.step()
        for name in ("grad_scale", "found_inf"):
            if hasattr(opt, name):
                delattr(opt, name)
    return model, opt


def test_lamb_takes_the_scale_and_overflow_flag_from_the_grad_scaler():
    plain, _ = _lamb_run(None, None)
    # Gradients still scaled by a power of two: divided out exactly.
    scaled, _ = _lamb_run(1024.0, 0.0)
    for a, b in zip(plain.parameters(), scaled.parameters()):
        assert torch.equal(a, b)
    # An overflow at step 3: the step changes neither the parameters nor the moments nor the
    # step count, so the run equals one that stopped after step 2.
    skipped, opt_skipped = _lamb_run(1024.0, 1.0, poison=True)
    torch.manual_seed(1)
    ref = Tiny()
    ref_opt = Lamb(param_groups(ref, weight_decay=0.01, lr=0.02), lr=0.02, bias_correction=True)
    for t in (1, 2):
        _fake_grads(ref, t)
        ref_opt.step()
    for a, b in zip(ref.parameters(), skipped.parameters()):
        assert torch.equal(a, b)
    for pa, pb in zip(ref.parameters(), skipped.parameters()):
        if pa.requires_grad:
            sa, sb = ref_opt.state[pa], opt_skipped.state[pb]
            assert all(torch.equal(sa[k], sb[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_lamb_under_a_grad_scaler_reads_nothing_back():
    # fp16 training: GradScaler.step calls Lamb.step with its overflow flag instead of reading
    # the flag back (one host sync per step for optimizers that cannot take it).
    def train(scaler_enabled: bool, blow_up: bool = False):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
        opt = make_optimizer(model, "lamb", lr=0.02)
        scaler = torch.amp.GradScaler("cpu", init_scale=256.0, enabled=scaler_enabled)
        x, y = torch.randn(32, 8), torch.randn(32, 1)
        syncs = []
        for step in range(4):
            loss = nn.functional.mse_loss(model(x), y) * (float("inf") if blow_up and step == 2 else 1.0)
            scaler.scale(loss).backward()
            with HostSyncs() as counter:
                scaler.unscale_(opt)
                scaler.step(opt)
                scaler.update()
            syncs.append(len(counter.events))
            opt.zero_grad(set_to_none=True)
        return model, scaler, syncs

    plain, _, _ = train(False)
    scaled, scaler, syncs = train(True)
    assert syncs == [0, 0, 0, 0]
    for a, b in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    _, scaler, syncs = train(True, blow_up=True)
    assert syncs == [0, 0, 0, 0] and scaler.get_scale() == 128.0  # the overflow halved the scale


def test_lamb_fits_a_regression():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.3
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = make_optimizer(model, "lamb", lr=0.02, weight_decay=0.0)
    assert isinstance(opt, Lamb)
    first = None
    for _ in range(150):
        loss = nn.functional.mse_loss(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first


def test_make_optimizer_rejects_unknown_name():
    with pytest.raises(AlbertError, match="optimizer must be one of"):
        make_optimizer(Tiny(), "sgd", lr=1e-3)


def _lrs(scheduler, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("kind,warmup,total,power,end", [
    ("linear", 10, 50, 1.0, 0.0),
    ("linear", 0, 30, 1.0, 0.0),
    ("polynomial", 7, 40, 2.0, 0.1),
    ("polynomial", 5, 25, 0.5, 0.0),
    ("constant", 8, 30, 1.0, 0.0),
])
def test_schedules_match_transformers(kind, warmup, total, power, end):
    transformers = pytest.importorskip("transformers")
    lr = 2e-3

    def opt():
        return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)

    ours = make_schedule(opt(), warmup, total, kind, power=power, end_lr_ratio=end)
    if kind == "linear":
        theirs = transformers.get_linear_schedule_with_warmup(opt(), warmup, total)
    elif kind == "polynomial":
        theirs = transformers.get_polynomial_decay_schedule_with_warmup(opt(), warmup, total, lr_end=lr * end,
                                                                         power=power)
    else:
        theirs = transformers.get_constant_schedule_with_warmup(opt(), warmup)
    a, b = _lrs(ours, total + 5), _lrs(theirs, total + 5)
    assert all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b)), (a, b)


def test_schedule_keeps_layer_ratios():
    model = Tiny()
    opt = make_optimizer(model, "adamw", lr=1.0, layer_lr_decay=0.5)
    sched = make_schedule(opt, 2, 10)
    opt.step()
    sched.step()
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == [0.125, 0.25, 0.5]  # step 1 of 2 warmup: half of 0.25, 0.5, 1.0


@pytest.mark.parametrize("kind,power", [("linear", 1.0), ("polynomial", 2.0)])
def test_a_moved_end_keeps_the_lr_continuous_and_ends_the_decay_there(kind, power):
    """A time budget moves the schedule's end mid-run (train/budget.py Pace): the lr at the move is
    the one it had, the decay then reaches its end exactly at the new total, and a schedule given
    the same moves from its start (train.py repeating the run) gives the same lrs, bit for bit."""
    warmup, first = 10, 100
    moves = [(5, 120), (40, 90), (70, 95)]  # one inside the warmup, one shorter, one longer
    live = WarmupDecay(warmup, first, kind, power)
    lrs = []
    for step in range(0, 96):
        for at, total in moves:
            if at == step - 1:
                live.move_end(at, total)  # the trainer moves it after step `at`'s scheduler step
        lrs.append(live(step))
    replay = WarmupDecay(warmup, first, kind, power, ends=moves)
    assert [replay(s) for s in range(96)] == lrs
    assert lrs[:warmup] == [s / warmup for s in range(warmup)]  # a move does not touch the warmup
    assert lrs[95] == 0.0 and lrs[94] > 0
    for at, _ in moves[1:]:  # continuous: the step after a move follows on from the step before it
        before = WarmupDecay(warmup, first, kind, power, ends=[m for m in moves if m[0] < at])
        assert lrs[at + 1] < before(at) and before(at + 1) - lrs[at + 1] == pytest.approx(0, abs=0.02)
    # No moves: bit for bit the schedule before moves existed (runs recorded earlier repeat exactly).
    plain = WarmupDecay(warmup, 95, kind, power)
    assert [plain(s) for s in range(warmup, 100)] == [
        (1.0 - (s - warmup) / (95 - warmup)) ** power if s < 95 else 0.0 for s in range(warmup, 100)]
    with pytest.raises(AlbertError, match="cannot move the schedule's end"):
        WarmupDecay(warmup, first, kind, power, ends=[(30, 30)])


def test_wsd_holds_the_peak_then_decays_over_its_last_fraction():
    """Warmup-stable-decay: warmup, the peak held, then a linear decay over the last
    `decay_fraction` of the steps, computed by hand."""
    s = WarmupDecay(10, 100, "wsd", decay_fraction=0.25)
    assert [s(i) for i in (0, 5)] == [0.0, 0.5]
    assert all(s(i) == 1.0 for i in range(10, 76))  # the decay starts at step 75
    assert [s(i) for i in (80, 90, 99, 100, 120)] == pytest.approx([0.8, 0.4, 0.04, 0.0, 0.0])
    # A decay longer than the steps after the warmup starts at the warmup's end (linear, then).
    assert [WarmupDecay(10, 20, "wsd", decay_fraction=0.9)(i) for i in (10, 15)] == [
        WarmupDecay(10, 20, "linear")(i) for i in (10, 15)]
    with pytest.raises(AlbertError, match="decay_fraction"):
        WarmupDecay(10, 100, "wsd", decay_fraction=0.0)


def test_wsd_moved_before_its_decay_decays_over_the_new_ends_last_fraction():
    """A time budget moving the end while the peak is held: nothing changes until the decay of the
    new end starts; moved during the decay: it goes on from the lr it had, continuously."""
    early = WarmupDecay(10, 100, "wsd", decay_fraction=0.2, ends=[(50, 200)])
    assert all(early(i) == 1.0 for i in range(10, 161)) and early(180) == pytest.approx(0.5) and early(200) == 0.0
    late = WarmupDecay(10, 100, "wsd", decay_fraction=0.2, ends=[(90, 200)])
    assert [late(i) for i in (85, 90)] == pytest.approx([0.75, 0.5])  # the first end's decay, up to the move
    assert late(145) == pytest.approx(0.25) and late(199) == pytest.approx(0.5 / 110) and late(200) == 0.0
    live = WarmupDecay(10, 100, "wsd", decay_fraction=0.2)
    lrs = []
    for step in range(201):
        if step == 51:
            live.move_end(50, 200)
        lrs.append(live(step))
    assert lrs == [early(i) for i in range(201)]
