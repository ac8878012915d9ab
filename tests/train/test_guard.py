"""The device-side non-finite guard: a bad step changes neither the weights nor the optimizer
state, the counts come back in one read, the trainer reads nothing on non-logging steps, and a
finite run is bit for bit the plain training loop."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from test_loop import TRAIN, Toy, collate, config, evaluate, read_log

from albert.data.batch_order import LengthGroupedSampler
from albert.errors import TrainingDiverged, TrainingWarning
from albert.optim import make_optimizer, make_schedule
from albert.train import Trainer
from albert.train.guard import StepGuard, flagged

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from count_syncs import counting_steps  # noqa: E402

BATCH = collate(TRAIN[:8], epoch=0, indices=range(8))


def _state(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v.clone() for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]


def _optimizer_step(optimizer, skip):
    with flagged(optimizer, skip) as apply:
        if apply:
            optimizer.step()


def _step(model, optimizer, guard, scaler=None, nan_loss=False, inf_grad=False):
    loss = model(**BATCH).loss * (float("nan") if nan_loss else 1.0)
    (scaler.scale(loss) if scaler else loss).backward()
    if inf_grad:
        model.head.bias.grad[0] = float("inf")
    if scaler:
        scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters()], 1.0)
    _optimizer_step(optimizer, guard.check(loss.detach().double(), norm))
    if scaler:
        scaler.update()
    optimizer.zero_grad(set_to_none=True)


def test_an_optimizer_without_the_flag_is_told_by_one_read():
    model = Toy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # no found_inf protocol
    for skip, expected in ((torch.tensor(True), False), (torch.tensor(False), True)):
        with flagged(optimizer, skip) as apply:
            assert apply is expected
    assert not hasattr(optimizer, "found_inf")


@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_a_bad_step_changes_neither_weights_nor_optimizer_state(name, fp16):
    model = Toy()
    optimizer = make_optimizer(model, name, 0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8) if fp16 else None
    guard = StepGuard(torch.device("cpu"), fp16=fp16)
    _step(model, optimizer, guard, scaler)
    weights, state = copy.deepcopy(model.state_dict()), _state(optimizer)
    _step(model, optimizer, guard, scaler, nan_loss=True)
    _step(model, optimizer, guard, scaler, inf_grad=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for a, b in zip(_state(optimizer), state, strict=True):
        assert torch.equal(a, b)
    r = guard.read()
    # Under fp16 an overflowing gradient is the scaler's: skipped, but not a bad step (nor is its
    # norm averaged); elsewhere both steps are bad.
    assert (r.skipped, r.bad_in_a_row) == ((1, 0) if fp16 else (2, 2))
    assert r.last_bad_ago == (1 if fp16 else 0) and r.last_bad_was_loss is fp16
    _step(model, optimizer, guard, scaler)  # and a good step still trains
    assert not torch.equal(model.head.weight, weights["head.weight"])
    r = guard.read()
    assert r.bad_in_a_row == 0 and r.last_bad_ago == (2 if fp16 else 1)


def test_reading_averages_the_window_and_resets():
    model = Toy()
    optimizer = make_optimizer(model, "adamw", 0.05)
    guard = StepGuard(torch.device("cpu"), fp16=False, bad_in_a_row=1, skipped=4)
    losses, norms = [], []
    for bad in (False, True, False):
        loss = model(**BATCH).loss * (float("nan") if bad else 1.0)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1.0)
        if not bad:
            losses.append(float(loss.detach())), norms.append(float(norm))
        guard.add_metrics({"acc": torch.tensor(0.5), "n": 2.0}, weight=0.5)
        _optimizer_step(optimizer, guard.check(loss.detach().double(), norm))
        optimizer.zero_grad()
    r = guard.read()
    assert r.loss == sum(losses) / 2 and r.grad_norm == sum(norms) / 2
    assert (r.skipped, r.bad_in_a_row, r.last_bad_ago) == (5, 0, 1)
    assert r.metrics == {"acc": 0.75, "n": 3.0}
    guard.reset_window()
    r = guard.read()
    assert r.loss is None and r.grad_norm is None and r.metrics == {} and r.skipped == 5


@pytest.mark.parametrize("precision,optimizer", [("fp32", "adamw"), ("fp32", "lamb"), ("fp16", "adamw"),
                                                 ("fp16", "lamb")])
def test_non_logging_steps_read_nothing_back(tmp_path, precision, optimizer):
    steps = []
    with counting_steps(steps):
        Trainer(Toy(), config(tmp_path, max_steps=9, log_every=4, eval_every=100, precision=precision,
                              optimizer=optimizer), TRAIN, collate,
                evaluate=evaluate, step_metrics=lambda out, batch: {"m": out.loss.detach()}).train()
    assert len(steps) == 9
    counts = [len(events) for events in steps]
    assert [counts[i] for i in (0, 1, 2, 4, 5, 6)] == [0] * 6, [e for e in steps if e]
    assert counts[3] == counts[7] == 1, (steps[3], steps[7])  # logging: the one read of guard.py (its metric included)
    assert counts[8] > 1  # the last step also evaluates and saves


def test_too_many_bad_steps_are_found_at_the_next_read(tmp_path):
    """--max-bad-steps 2, bad from step 2 on, logged every 4 steps: found at step 4, one step late."""
    model = Toy()
    model.nan_calls = set(range(2, 100))
    with pytest.raises(TrainingDiverged, match=r"^training diverged: 3 consecutive steps with a non-finite loss "
                                               r"\(last at step 4\)"):
        Trainer(model, config(tmp_path, max_steps=20, log_every=4, max_bad_steps=2), TRAIN, collate,
                evaluate=evaluate).train()
    assert not [r for r in read_log(tmp_path) if r["type"] == "train"]  # it stopped before logging step 4


def test_skipped_steps_between_reads_are_reported_together(tmp_path):
    model = Toy()
    model.nan_calls = {2, 3}
    with pytest.warns(TrainingWarning, match=r"^2 steps up to step 3: non-finite loss \(nan\); update skipped "
                                             r"\(now 0 bad steps in a row; --max-bad-steps 10\)$"):
        results = Trainer(model, config(tmp_path, max_steps=8, log_every=4, eval_every=100), TRAIN, collate,
                          evaluate=evaluate).train()
    assert results["skipped_steps"] == 2
    train = [r for r in read_log(tmp_path) if r["type"] == "train"]
    assert [r["step"] for r in train] == [4, 8] and not any(r.get("skipped") for r in train)


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_a_finite_run_is_the_plain_loop_bit_for_bit(tmp_path, name):
    """The trainer's logged losses and final weights equal a hand-written loop's exactly: the
    guard's flag and device-side sums change no bit of a finite run."""
    opts = config(tmp_path, max_steps=12, log_every=1, optimizer=name, batch_size=4, grad_accum=2, eval_every=100,
                  warmup=3)
    model = Toy()
    Trainer(model, opts, TRAIN, collate, lengths=[len(r["input_ids"]) for r in TRAIN], evaluate=evaluate).train()
    logged = [r["loss"] for r in read_log(tmp_path) if r["type"] == "train"]

    ref = Toy()
    optimizer = make_optimizer(ref, name, opts.lr, opts.weight_decay, opts.betas, opts.eps)
    schedule = make_schedule(optimizer, 3, 12)
    sampler = LengthGroupedSampler(len(TRAIN), 4, lengths=[len(r["input_ids"]) for r in TRAIN], grad_accum=2,
                                   seed=opts.seed)
    losses = []
    epoch = 0
    while len(losses) < 12:
        sampler.set_epoch(epoch)
        for step in sampler.steps()[:12 - len(losses)]:
            rows = sum(len(mb) for mb in step)
            total = torch.zeros(())
            for mb in step:
                out = ref(**collate([TRAIN[i] for i in mb], epoch=epoch, indices=mb))
                (out.loss * (len(mb) / rows)).backward()
                total += out.loss.detach() * (len(mb) / rows)
            losses.append(float(total))
            torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        epoch += 1
    assert logged == losses
    for (k, v), w in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


class OomOnce(Toy):
    """Runs out of memory on its second training forward: the first step's second micro-batch."""

    def forward(self, *args, **kwargs):
        if self.training and self.calls == 1:
            self.calls += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().forward(*args, **kwargs)


def test_a_step_retried_after_out_of_memory_counts_its_metrics_once(tmp_path):
    """The first micro-batch's metrics of a step that ran out of memory are not kept for its retry."""
    with pytest.warns(TrainingWarning, match="retrying with micro-batch 2"):
        Trainer(OomOnce(), config(tmp_path, max_steps=3, log_every=1, batch_size=4, grad_accum=2,
                                  auto_accumulate=True), TRAIN, collate, evaluate=evaluate,
                step_metrics=lambda out, batch: {"share": 1.0, "dev": torch.tensor(1.0)}).train()
    train = [r for r in read_log(tmp_path) if r["type"] == "train"]
    # the weights of a step's micro-batches sum to 1
    assert [(r["share"], r["dev"]) for r in train] == [(1.0, 1.0)] * 3
