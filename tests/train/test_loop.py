"""The training loop: learning, accumulation, exact resume, checkpoints, failures, logs, DDP."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from albert.data.batching import pad_batch
from albert.errors import AlbertError, TrainingDiverged, TrainingWarning
from albert.train import Distributed, Trainer, TrainingOptions
from spawning import free_port

VOCAB = 16


@dataclass
class Out:
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class Toy(nn.Module):
    """Mean-pooled embeddings -> classifier; the same forward contract as the ALBERT heads."""

    def __init__(self, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(VOCAB, 8)
        self.norm = nn.LayerNorm(8)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(8, 2)
        self.calls = 0
        self.nan_calls: set[int] = set()  # forward calls (1-based) whose loss is NaN
        self.oom_above: int | None = None  # raise CUDA OOM for batches bigger than this

    def forward(self, input_ids, attention_mask, labels):
        self.calls += 1
        if self.training and self.oom_above is not None and len(input_ids) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        h = self.norm(self.emb(input_ids))
        mask = attention_mask.unsqueeze(-1).float()
        logits = self.head(self.drop((h * mask).sum(1) / mask.sum(1)))
        loss = F.cross_entropy(logits, labels)
        if self.calls in self.nan_calls:
            loss = loss * float("nan")
        return Out(loss=loss, logits=logits)

    def layer_depths(self):
        return {"emb.weight": 0, "norm.weight": 1, "norm.bias": 1, "head.weight": 2, "head.bias": 2}


def make_rows(n: int, seed: int) -> list[dict]:
    """Label 1 when most tokens come from the upper half of the vocabulary."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        ids = rng.integers(0, VOCAB, size=int(rng.integers(3, 12))).tolist()
        rows.append({"input_ids": ids, "labels": int(np.mean(np.array(ids) >= VOCAB // 2) > 0.5)})
    return rows


TRAIN = make_rows(64, 0)
DEV = make_rows(64, 1)


def collate(rows, *, epoch, indices):
    return pad_batch(rows)


def evaluate(model: nn.Module) -> dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in pad_batch(DEV).items()}
    out = model(**batch)
    acc = (out.logits.argmax(-1) == batch["labels"]).float().mean().item()
    return {"loss": out.loss.item(), "accuracy": acc}


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def train_losses(out: Path) -> dict[int, float]:
    records = [r for r in read_log(out) if r["type"] == "train"]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"duplicate steps in the log: {steps}"
    return {r["step"]: r["loss"] for r in records}


def config(out: Path, **kw) -> TrainingOptions:
    base = dict(output_dir=str(out), lr=0.05, batch_size=8, epochs=2, warmup=2, log_every=1, device="cpu",
                seed=5, weight_decay=0.01, metric="loss", greater_is_better=False, progress=False)
    if "max_steps" in kw:
        base["epochs"] = None  # a run's length is one or the other
    base.update(kw)
    return TrainingOptions(**base)


def run(out: Path, model: nn.Module | None = None, resume: bool = False, lengths=True, **kw):
    model = model or Toy()
    evaluate_fn = kw.pop("evaluate_fn", evaluate)
    trainer = Trainer(model, config(out, **kw), TRAIN, collate,
                      lengths=[len(r["input_ids"]) for r in TRAIN] if lengths else None,
                      evaluate=evaluate_fn)
    return trainer.train(resume=resume), model


def test_loss_falls_and_log_records_everything(tmp_path):
    def step_metrics(out, batch):
        return {"train_acc": (out.logits.argmax(-1) == batch["labels"]).float().mean()}

    model = Toy()
    saved = []
    trainer = Trainer(model, config(tmp_path, epochs=6, log_every=4, lr=0.05, optimizer="lamb"), TRAIN, collate,
                      lengths=[len(r["input_ids"]) for r in TRAIN], evaluate=evaluate,
                      save_best=lambda m, d: saved.append(d) or torch.save(m.state_dict(), d / "w.pt"),
                      step_metrics=step_metrics)
    before = evaluate(model)
    results = trainer.train()
    after = evaluate(model)
    assert results["steps"] == 48 and results["epochs"] == 6
    assert after["loss"] < 0.6 * before["loss"] and after["accuracy"] >= 0.8
    assert results["final"] == pytest.approx(after)
    assert results["best"]["loss"] == min(r["loss"] for r in read_log(tmp_path) if r["type"] == "eval")
    assert (tmp_path / "best" / "w.pt").is_file() and saved and all(d.name.startswith(".best.tmp") for d in saved)
    assert results["train_samples_per_s"] > 0 and results["tokens_per_s"] > 0 and results["mfu"] is None
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 48

    log = read_log(tmp_path)
    train = [r for r in log if r["type"] == "train"]
    evals = [r for r in log if r["type"] == "eval"]
    assert [r["step"] for r in train] == list(range(4, 49, 4))
    assert [r["step"] for r in evals] == [8 * e for e in range(1, 7)]  # once per epoch
    for r in train:
        assert {"epoch", "loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "train_acc"} <= set(r)
        assert 0 <= r["train_acc"] <= 1
    assert train[-1]["loss"] < train[0]["loss"]
    for r in train:  # the lr a step used: linear decay after 2 warmup steps, over 48 steps
        assert r["lr"] == pytest.approx(0.05 * (48 - (r["step"] - 1)) / 46)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-40", "step-48"]


def test_grad_accumulation_equals_a_larger_batch(tmp_path):
    big, m1 = run(tmp_path / "big", batch_size=8, grad_accum=1)
    small, m2 = run(tmp_path / "small", batch_size=2, grad_accum=4)
    a, b = train_losses(tmp_path / "big"), train_losses(tmp_path / "small")
    assert a.keys() == b.keys() and len(a) == 16
    for k in a:
        assert abs(a[k] - b[k]) < 1e-6, (k, a[k], b[k])
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at,resumes_from,workers", [(7, 4, 0), (11, 8, 0), (7, 4, 2)])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, kill_at, resumes_from, workers):
    """Also with loader workers (kept across epochs) in the killed and resumed runs only."""
    kw = dict(save_every=4, epochs=2, eval_every=3)  # 8 steps an epoch, 16 in all; dropout on
    run(tmp_path / "full", model=Toy(dropout=0.3), **kw)
    kw["num_workers"] = workers

    def killer(out, batch):
        if killer.step == kill_at:
            raise Killed()
        killer.step += 1
        return {}
    killer.step = 1

    out = tmp_path / "killed"
    trainer = Trainer(Toy(dropout=0.3), config(out, **kw), TRAIN, collate,
                      lengths=[len(r["input_ids"]) for r in TRAIN], evaluate=evaluate, step_metrics=killer)
    with pytest.raises(Killed):
        trainer.train()
    assert max(train_losses(out)) == kill_at - 1

    resumed = Toy(dropout=0.3, seed=123)  # different weights: they must come from the checkpoint
    trainer = Trainer(resumed, config(out, **kw), TRAIN, collate, lengths=[len(r["input_ids"]) for r in TRAIN],
                      evaluate=evaluate)
    results = trainer.train(resume=True)
    assert results["steps"] == 16
    full, again = train_losses(tmp_path / "full"), train_losses(out)
    assert sorted(again) == list(range(1, 17))
    for k in full:
        assert abs(full[k] - again[k]) < 1e-6, (k, full[k], again[k])
    evals_full = [r for r in read_log(tmp_path / "full") if r["type"] == "eval"]
    evals_again = [r for r in read_log(out) if r["type"] == "eval"]
    assert [r["step"] for r in evals_again] == [r["step"] for r in evals_full]
    assert [r["loss"] for r in evals_again] == pytest.approx([r["loss"] for r in evals_full], abs=1e-6)
    assert results["best_step"] == json.loads((tmp_path / "full" / "results.json").read_text())["best_step"]


def test_corrupt_newest_checkpoint_falls_back(tmp_path):
    run(tmp_path / "full", max_steps=6, save_every=2)
    out = tmp_path / "run"
    run(out, max_steps=6, save_every=2)
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-4", "step-6"]
    model_file = ckpts / "step-6" / "model.pt"
    model_file.write_bytes(model_file.read_bytes()[:100])  # truncated
    manifest = json.loads((ckpts / "step-4" / "manifest.json").read_text())
    assert manifest["step"] == 4 and set(manifest["files"]) == {"model.pt", "optimizer.pt", "trainer.pt"}

    with pytest.warns(TrainingWarning, match="step-6.*sha256"):
        results, _ = run(out, model=Toy(seed=9), resume=True, max_steps=6, save_every=2)
    assert results["steps"] == 6
    full, again = train_losses(tmp_path / "full"), train_losses(out)
    assert sorted(again) == list(range(1, 7))
    assert all(abs(full[k] - again[k]) < 1e-6 for k in full)


def test_resume_without_checkpoint_starts_fresh_and_fresh_run_clears_old_ones(tmp_path):
    with pytest.warns(TrainingWarning, match=f"^{tmp_path}: no checkpoint to resume from; starting from step 0$"):
        results, _ = run(tmp_path, max_steps=3, resume=True)
    assert results["steps"] == 3
    stale = tmp_path / "checkpoints" / "step-99"
    stale.mkdir()
    # A fresh run never deletes an earlier run's work unless told to.
    with pytest.raises(AlbertError, match="pass --resume"):
        run(tmp_path, max_steps=2)
    assert (tmp_path / "checkpoints" / "step-3").exists()
    with pytest.warns(TrainingWarning, match="removing checkpoints"):
        run(tmp_path, max_steps=2, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-2"]


def test_non_finite_loss_skips_the_step(tmp_path):
    model = Toy()
    model.nan_calls = {3}
    with pytest.warns(TrainingWarning, match="step 3: non-finite loss"):
        results, _ = run(tmp_path, model=model, max_steps=6)
    assert results["skipped_steps"] == 1 and results["steps"] == 6
    log = {r["step"]: r for r in read_log(tmp_path) if r["type"] == "train"}
    assert log[3].get("skipped") and all(np.isfinite(log[k]["loss"]) for k in (1, 2, 4, 5, 6))


def test_non_finite_loss_weights_are_left_alone(tmp_path):
    model = Toy()
    model.nan_calls = {1}
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(TrainingWarning), pytest.raises(TrainingDiverged):
        run(tmp_path, model=model, max_steps=1, warmup=0, evaluate_fn=None)
    for k, v in model.state_dict().items():
        assert torch.equal(v, start[k]), k


def test_a_run_ending_in_non_finite_steps_fails_and_writes_no_best(tmp_path):
    """Shorter than max_bad_steps, a run used to exit 0 with the weights that gave the NaN as
    best/ and a metric that looked real. Nothing of them is evaluated or saved now."""
    model = Toy()
    model.nan_calls = {3, 4}  # forward calls: step 1, its evaluation, steps 2 and 3
    evaluated = []
    with pytest.warns(TrainingWarning), pytest.raises(TrainingDiverged) as e:
        Trainer(model, config(tmp_path, max_steps=3, eval_every=1, save_every=1), TRAIN, collate,
                evaluate=lambda m: evaluated.append(1) or evaluate(m),
                save_best=lambda m, d: (d / "saved").write_text("x")).train()
    assert str(e.value).startswith("training diverged: the run ended after 2 consecutive steps with a non-finite "
                                   "loss or gradient (of 3 steps, 2 skipped); the last good checkpoint is "
                                   f"{tmp_path / 'checkpoints' / 'step-1'}. Try a lower lr")
    assert evaluated == [1]  # step 1 only
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-1"]
    assert (tmp_path / "best" / "saved").exists() and not (tmp_path / "results.json").exists()

    every_step = Toy()
    every_step.nan_calls = set(range(1, 10))
    with pytest.warns(TrainingWarning), pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        run(tmp_path / "never", model=every_step, max_steps=3)
    assert not {"best", "results.json", "checkpoints"} & {p.name for p in (tmp_path / "never").iterdir()}


def test_an_update_to_non_finite_weights_is_never_evaluated_or_saved(tmp_path):
    """A finite loss, then an update that overflows float32: the run stops naming the tensor
    before those weights become a checkpoint, best/ or a metric."""
    evaluated = []
    with pytest.raises(TrainingDiverged, match=r"^training diverged: parameter \S+ holds NaN or inf after step 1; "
                                               "no checkpoint was written"):
        run(tmp_path, max_steps=2, eval_every=1, lr=1e39, warmup=0, max_grad_norm=0.0,
            evaluate_fn=lambda m: evaluated.append(1))
    assert evaluated == [] and not (tmp_path / "checkpoints").exists() and not (tmp_path / "best").exists()


def test_a_checkpoint_holding_nan_weights_is_refused_naming_the_tensor(tmp_path):
    run(tmp_path, max_steps=2, save_every=2)
    path = tmp_path / "checkpoints" / "step-2"
    weights = torch.load(path / "model.pt")
    weights["head.bias"][0] = float("nan")
    torch.save(weights, path / "model.pt")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["model.pt"] = hashlib.sha256((path / "model.pt").read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))  # intact as a file: only its values are bad
    with pytest.raises(AlbertError, match=f"^{path / 'model.pt'}: tensor head.bias holds NaN or inf; resume from "
                                          "an earlier checkpoint"):
        run(tmp_path, max_steps=4, save_every=2, resume=True)


def test_the_run_directory_is_locked_and_killed_saves_are_swept_under_the_lock(tmp_path):
    """While a trainer runs nobody else can start in its directory; a trainer starting there
    removes what saves killed mid-write left (it holds the lock: nobody else is writing them)."""
    import subprocess
    import sys

    out = tmp_path / "run"
    left = [out / "checkpoints" / ".step-4.tmp-99999-x", out / ".best.tmp-99999-y", out / ".best.old-99999-z"]
    for d in left:
        d.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from albert.dirlock import lock_directory; "
                               "lock_directory(sys.argv[1]); print('locked', flush=True); sys.stdin.readline()",
                               str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(AlbertError, match=f"^{out}: in use by another process \\(pid {holder.pid}"):
            run(out, max_steps=2)
        assert all(d.exists() for d in left)  # the refused trainer touched nothing
    finally:
        holder.communicate("\n", timeout=60)
    run(out, max_steps=2)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2"]


def test_too_many_non_finite_losses_stop_with_the_last_checkpoint_left(tmp_path):
    model = Toy()
    model.nan_calls = set(range(4, 100))
    with pytest.warns(TrainingWarning), pytest.raises(AlbertError, match="3 consecutive.*step 6.*step-3"):
        run(tmp_path, model=model, max_steps=20, save_every=3, max_bad_steps=3)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-3"]
    assert max(train_losses(tmp_path)) == 5  # step 6 raised before logging


def test_early_stopping_by_patience(tmp_path):
    calls = []

    def worsening(model):
        calls.append(1)
        return {"loss": float(len(calls))}

    saved = []
    trainer = Trainer(Toy(), config(tmp_path, max_steps=40, eval_every=2, patience=2), TRAIN, collate,
                      evaluate=worsening, save_best=lambda m, d: saved.append(d))
    results = trainer.train()
    assert results["stopped_early"] and results["steps"] == 6 and len(calls) == 3
    assert results["best_step"] == 2 and results["best_metric"] == 1.0 and len(saved) == 1
    assert (tmp_path / "best").is_dir()
    assert (tmp_path / "checkpoints" / "step-6").is_dir()


def test_unknown_metric_is_a_user_error(tmp_path):
    with pytest.raises(AlbertError, match="metric 'f1'.*accuracy, loss"):
        run(tmp_path, max_steps=2, metric="f1")


def test_out_of_memory(tmp_path):
    model = Toy()
    model.oom_above = 4
    with pytest.raises(AlbertError, match="out of GPU memory.*batch_size 4 with grad_accum 2"):
        run(tmp_path / "plain", model=model, max_steps=2)

    reference, _ = run(tmp_path / "ref", batch_size=4, grad_accum=2, max_steps=6)
    model = Toy()
    model.oom_above = 4
    with pytest.warns(TrainingWarning, match="retrying with micro-batch 4"):
        run(tmp_path / "auto", model=model, max_steps=6, auto_accumulate=True)
    a, b = train_losses(tmp_path / "ref"), train_losses(tmp_path / "auto")
    assert all(abs(a[k] - b[k]) < 1e-6 for k in a) and len(b) == 6


def test_bad_options_are_user_errors(tmp_path):
    with pytest.raises(AlbertError, match="--precision must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        run(tmp_path, precision="fp8")
    with pytest.raises(AlbertError, match="--optimizer must be one of adamw, lamb, got 'sgd'"):
        run(tmp_path, optimizer="sgd")
    with pytest.raises(AlbertError, match="training options not set: lr"):
        run(tmp_path, lr=None)
    with pytest.raises(AlbertError, match="--device 'tpu' is not a device"):
        run(tmp_path, device="tpu")


def test_trains_the_albert_classifier(tmp_path):
    model_mod = pytest.importorskip("albert.model")
    from albert.config import preset

    model = model_mod.AlbertForSequenceClassification(preset("micro", vocab_size=VOCAB, num_labels=2))
    before = evaluate(model)
    seq = max(len(r["input_ids"]) for r in TRAIN)
    trainer = Trainer(model, config(tmp_path, epochs=4, lr=3e-3, layer_lr_decay=0.9), TRAIN, collate,
                      lengths=[len(r["input_ids"]) for r in TRAIN], evaluate=evaluate,
                      flops_per_token=model.flops_per_token(seq))
    results = trainer.train()
    assert results["final"]["loss"] < before["loss"]
    assert len(trainer.optimizer.param_groups) > 2  # depth groups from layer_depths()


# --- data parallel ----------------------------------------------------------------------------
def _moves_at_3(step: int, total: int) -> int | None:
    return 8 if step == 3 else None


def _not_asked(step: int, total: int) -> int | None:
    raise AssertionError("only rank 0's pace is asked")


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = Distributed.from_env()  # as a recipe does: one per process, set up by the trainer, torn down here
    pace = _moves_at_3 if rank == 0 else _not_asked
    try:
        Trainer(Toy(), config(Path(out), batch_size=4, max_steps=6, save_every=3), TRAIN, collate, dist=dist,
                lengths=[len(r["input_ids"]) for r in TRAIN], evaluate=evaluate, pace=pace).train()
    finally:
        dist.teardown()


def test_two_processes_match_one(tmp_path):
    """Two processes train as one with twice the rows per step; and under torchrun rank 0's
    time-budget pace decides where the run ends, every rank following (none trains on alone)."""
    mp = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    run(tmp_path / "one", batch_size=8, max_steps=8, save_every=3, schedule_ends=[[0, 6], [3, 8]])
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path / "two")), nprocs=2, join=True)
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert sorted(b) == list(range(1, 9))
    assert all(abs(a[k] - b[k]) < 1e-5 for k in a), (a, b)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-6", "step-8"]


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16"])
def test_precision_on_cpu(tmp_path, precision):
    results, model = run(tmp_path, precision=precision, max_steps=4)
    # auto means fp32 on a CPU: no autocast unless asked for.
    assert results["precision"] == ("fp32" if precision == "auto" else precision)
    losses = train_losses(tmp_path)
    assert len(losses) == 4 and all(np.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast leaves the weights fp32


GPU = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=GPU)])
@pytest.mark.parametrize("saved_with", ["fp32", "bf16"])
def test_an_fp16_run_resumes_from_a_checkpoint_without_a_scaler(tmp_path, saved_with, device):
    """A bf16/fp32 checkpoint holds an empty GradScaler state: fp16 starts a fresh scaler from it."""
    run(tmp_path, precision=saved_with, max_steps=2, save_every=2, device=device)
    with pytest.warns(TrainingWarning, match=f"precision '{saved_with}' -> 'fp16'"):
        results, _ = run(tmp_path, model=Toy(seed=3), resume=True, precision="fp16", max_steps=4, save_every=2,
                         device=device)
    assert results["steps"] == 4 and results["precision"] == "fp16"
    assert sorted(train_losses(tmp_path)) == [1, 2, 3, 4]
    # and back: the fp16 checkpoint's scaler state is ignored by a run without one
    with pytest.warns(TrainingWarning):
        results, _ = run(tmp_path, model=Toy(seed=3), resume=True, precision=saved_with, max_steps=6, save_every=2,
                         device=device)
    assert results["steps"] == 6


def test_compile_sets_no_process_wide_option(tmp_path):
    """Building a trainer with compile=True changes nothing for other code in the process."""
    before = torch._dynamo.config.capture_dynamic_output_shape_ops
    trainer = Trainer(Toy(), config(tmp_path, compile=True, max_steps=1), TRAIN, collate)
    assert torch._dynamo.config.capture_dynamic_output_shape_ops == before
    assert trainer.forward_model is not trainer.model and trainer.ddp is None


def test_a_compile_mode_compiles_with_that_mode(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: calls.append(mode) or model)
    Trainer(Toy(), config(tmp_path / "a", max_steps=1, compile_mode="reduce-overhead"), TRAIN, collate)
    Trainer(Toy(), config(tmp_path / "b", max_steps=1, compile=True), TRAIN, collate)
    Trainer(Toy(), config(tmp_path / "c", max_steps=1), TRAIN, collate)
    assert calls == ["reduce-overhead", None]


def test_an_absolute_warmup_longer_than_the_run_is_capped_with_a_warning(tmp_path):
    """--warmup 1256 (steps) on a 16-step run: the lr would still be rising at the end; warn and warm
    up over the whole run instead, reaching the peak at the last step."""
    with pytest.warns(TrainingWarning, match=r"--warmup 1256 steps is longer than the run's 16-step schedule"):
        run(tmp_path, warmup=1256, lr=0.05, evaluate_fn=None)
    lrs = [r["lr"] for r in read_log(tmp_path) if r["type"] == "train"]
    assert lrs == pytest.approx([0.05 * s / 16 for s in range(16)])  # the lr each step used: s/16 of the peak


def test_progress_off_a_terminal_is_log_lines_not_bar_frames(tmp_path, caplog, capsys):
    # stderr is captured here, so not a terminal: the loop logs "train: ..." lines (one at the end
    # at least) instead of writing tqdm frames into a log file.
    with caplog.at_level("INFO", logger="albert"):
        Trainer(Toy(), config(tmp_path, max_steps=6, progress=True), TRAIN, collate).train()
    train_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train: ")]
    assert train_lines and train_lines[-1].startswith("train: 6 steps of 6 steps (100%)")
    assert "\r" not in capsys.readouterr().err


def test_a_moved_end_is_recorded_and_repeated_exactly(tmp_path):
    """A time budget's pace (train/budget.py) moves the run's end after a logged step: the run then
    trains to the new end with its schedule decaying to it, says every end to `on_move_end`, and
    a run given those ends from its start (train.py repeating config.json) has the same per-step
    losses and lrs."""
    calls, recorded = [], []

    def pace(step: int, total: int) -> int | None:
        calls.append((step, total))
        return {6: 20, 12: 18}.get(step)

    trainer = Trainer(Toy(), config(tmp_path / "live", max_steps=16), TRAIN, collate,
                      lengths=[len(r["input_ids"]) for r in TRAIN], evaluate=evaluate, pace=pace,
                      on_move_end=recorded.append)
    results = trainer.train()
    assert results["steps"] == 18
    assert recorded == [[[0, 16], [6, 20]], [[0, 16], [6, 20], [12, 18]]]
    assert calls[0] == (1, 16) and (6, 16) in calls and (12, 20) in calls and calls[-1] == (17, 18)
    live = [r for r in read_log(tmp_path / "live") if r["type"] == "train"]
    lrs = [r["lr"] for r in live]
    assert lrs[:2] == [0.0, 0.025] and max(lrs) == 0.05  # the warmup is the first end's: 2 steps
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 0.05 / 10  # decays to the last end

    run(tmp_path / "again", max_steps=18, schedule_ends=[[0, 16], [6, 20], [12, 18]])
    again = [r for r in read_log(tmp_path / "again") if r["type"] == "train"]
    assert [(r["step"], r["loss"], r["lr"]) for r in again] == [(r["step"], r["loss"], r["lr"]) for r in live]
    with pytest.raises(AlbertError, match="--schedule-ends ends at 18 steps but --max-steps is 17"):
        run(tmp_path / "bad", max_steps=17, schedule_ends=[[0, 16], [6, 20], [12, 18]])
