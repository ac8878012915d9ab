"""The training loop, for fine-tuning and pretraining.

A step takes one global batch (see data/batch_order.py), runs it as micro-batches with gradient
accumulation under autocast, clips, and steps the optimizer and the schedule, reading nothing
back from the device (guard.py: the host waits for the GPU only on logged steps and where it
evaluates or saves). The loop logs, evaluates and checkpoints on a cadence (decision.py), keeps
the best model, stops early on patience, skips non-finite steps, and resumes exactly: a run
killed after a checkpoint and resumed logs the same per-step losses as one that was never
interrupted.

Contract with the caller:
- `train_data[i]` (or `train_data.__getitems__(indices)`) gives one row, whatever the collate
  understands; `collate_fn(rows, epoch=..., indices=...)` returns a dict of tensors that is passed
  as keyword arguments to the model, whose output has `.loss` (a mean over the micro-batch).
  See feed.py for why the collate gets the epoch and the rows' indices.
- Micro-batch losses are weighted by their share of the step's rows, so accumulating
  micro-batches equals one large batch for per-example-mean losses.
- Under `torchrun` the recipe passes its set-up `Distributed`: each process gets its share of
  every global batch; only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..atomic import WriteError, atomic_dir, remove_temporaries, write_json
from ..checkpoint import first_non_finite
from ..data.batch_order import LengthGroupedSampler
from ..dirlock import lock_directory
from ..errors import AlbertError, TrainingDiverged, TrainingWarning, require
from ..optim import make_optimizer, make_schedule
from ..progress import Meter
from .checkpoints import CheckpointStore, refuse_earlier_run
from .decision import Decision, decide, judge
from .distributed import Distributed, resolve_device
from .feed import Feed, MicroBatch, default_workers
from .guard import Reading, StepGuard, flagged
from .options import TrainingOptions
from .precision import autocast, peak_flops, resolve_precision
from .rng import preserved_rng, rng_state, seed_everything, set_rng_state
from .runlog import RunLog, Window

_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint (trainer.pt) and restored on resume."""

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0  # steps done in the current epoch
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] | None = None
    last_metrics: dict[str, float] | None = None
    evals_without_improvement: int = 0
    bad_steps: int = 0  # consecutive non-finite steps
    skipped_steps: int = 0
    wall_time_s: float = 0.0  # the run's wall time up to this checkpoint, earlier sessions' included


class Step(NamedTuple):
    """What the host knows of a step without asking the device."""

    rows: int
    tokens: int
    lr: float


class Trainer:
    """Fine-tuning and pretraining loop; see the module docstring for the data contract.

    - `dist`: the process's place in a torchrun launch, made by the recipe (default: the only
      process); set up here for the training device, torn down by whoever made it.
    - `lengths`: one length per row, for length-grouped batches (ignored when
      `options.group_by_length` is False); without it batches are plainly random.
    - `evaluate(model) -> metrics`: run on rank 0 at each evaluation (the model is in eval
      mode under no_grad and autocast; training's random state is put back afterwards).
    - `save_best(model, directory)`: writes the best model (HF format) into a fresh
      directory that then replaces `output_dir/best`.
    - `step_metrics(output, batch) -> metrics`: extra numbers for the log (e.g. MLM
      accuracy), computed only on logged steps, averaged over that step's micro-batches; floats,
      or 0-dim device tensors (summed on the device and read with the trainer's one read).
    - `flops_per_token`: training FLOPs per token, for MFU on GPUs with a known peak.
    - `on_evaluate(step, metrics)`: called after each evaluation; False stops the run (the tuner's pruning).
    - `on_start()`: called on rank 0 once the run has restored its checkpoint or started over,
      before the first step (the recipes write config.json there: a run that fails to start
      leaves none).

    `train` holds the lock on the output directory (albert/dirlock.py; on rank 0, and a no-op
    when the recipe holds it already): one process per run directory.
    """

    def __init__(self, model: nn.Module, options: TrainingOptions, train_data: Any,
                 collate_fn: Callable[..., dict[str, torch.Tensor]], *, dist: Distributed | None = None,
                 lengths: Any = None,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                 save_best: Callable[[nn.Module, Path], None] | None = None,
                 step_metrics: Callable[[Any, dict], dict[str, float]] | None = None,
                 flops_per_token: float | None = None,
                 on_evaluate: Callable[[int, dict[str, float]], bool | None] | None = None,
                 on_start: Callable[[], None] | None = None,
                 pace: Callable[[int, int], int | None] | None = None,
                 on_move_end: Callable[[list[list[int]]], None] | None = None):
        options.validate_resolved(evaluating=evaluate is not None)
        self.options = opt = options
        self.output_dir = Path(opt.output_dir)
        self.train_data, self.collate_fn = train_data, collate_fn
        self.evaluate_fn, self.save_best_fn, self.step_metrics_fn = evaluate, save_best, step_metrics
        self.flops_per_token, self.on_evaluate, self.on_start = flops_per_token, on_evaluate, on_start
        self.pace, self.on_move_end = pace, on_move_end

        self.dist = dist or Distributed()
        self.device = resolve_device(opt.device, self.dist.local_rank)
        self.dist.setup(self.device)
        self.precision = resolve_precision(opt.precision, self.device)
        self.peak_flops = peak_flops(self.device, self.precision)
        self.model = model.to(self.device)
        # DDP first (it hooks the parameters' gradients), then compile over it.
        self.ddp = DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=opt.ddp_find_unused) if self.dist.enabled else None
        forward = self.ddp or self.model
        compiled = opt.compile or opt.compile_mode != "default"
        mode = None if opt.compile_mode == "default" else opt.compile_mode
        self.forward_model = torch.compile(forward, mode=mode) if compiled else forward

        self.sampler = LengthGroupedSampler(
            len(train_data), opt.batch_size, lengths=lengths if opt.group_by_length else None,
            grad_accum=opt.grad_accum, rank=self.dist.rank, world_size=self.dist.world_size, seed=opt.seed)
        self.steps_per_epoch = self.sampler.num_steps
        ends = opt.schedule_ends or []
        self.total_steps = opt.max_steps or math.ceil(opt.epochs * self.steps_per_epoch)
        # Where a time budget fixed the end ([0, steps]) and then moved it; the warmup is the first end's.
        schedule_steps = opt.schedule_steps or (ends[0][1] if ends else self.total_steps)
        warmup = math.ceil(opt.warmup * schedule_steps) if opt.warmup < 1 else int(opt.warmup)
        if warmup > schedule_steps:
            # The learning rate would still be rising when the run ends: never at its peak, never decaying.
            warnings.warn(f"--warmup {warmup} steps is longer than the run's {schedule_steps}-step schedule; "
                          f"warming up over all {schedule_steps} steps instead (give --warmup as a fraction "
                          f"below 1, e.g. 0.1, to scale it with the run)", TrainingWarning, stacklevel=2)
            warmup = schedule_steps
        self.optimizer = make_optimizer(self.model, opt.optimizer, opt.lr, opt.weight_decay, opt.betas, opt.eps,
                                        opt.layer_lr_decay)
        self.scheduler = make_schedule(self.optimizer, warmup, schedule_steps, opt.schedule, opt.power, ends=ends[1:],
                                       decay_fraction=opt.decay_fraction)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.params = [p for p in self.model.parameters() if p.requires_grad]

        self.store = CheckpointStore(self.output_dir / "checkpoints", opt.keep_last, opt.fingerprint(),
                                     opt.trajectory_settings())
        self.log = RunLog(self.output_dir, enabled=self.dist.is_main, tensorboard=opt.report_to == "tensorboard")
        self.progress = Progress()
        self.stopped_by_callback = False
        self.feed: Feed | None = None  # made by train(): one loader for the run
        self.resumed_at: int | None = None  # the checkpoint's step train() resumed from
        self._session_started = time.perf_counter()  # set by train(): this session's start
        self._restored_wall_time = 0.0  # the resumed checkpoint's wall_time_s
        self.guard: StepGuard | None = None  # made by the loop: the device-side sums and flag

    # --- the loop ---------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Train to `max_steps` (or `epochs`); returns the run's metrics and throughput."""
        started = time.perf_counter()
        lock = lock_directory(self.output_dir) if self.dist.is_main else contextlib.nullcontext()
        with lock:
            if self.dist.is_main:
                # What saves cut short by a kill left (checkpoints/.step-N.tmp-*, .best.tmp-*): removed
                # only here, holding the lock, never while another process may be writing them.
                remove_temporaries(self.store.root, "step-*")
                remove_temporaries(self.output_dir)
            self.progress, self.stopped_by_callback = Progress(), False
            seed_everything(self.options.seed + self.dist.rank)
            self.model.train()
            self._session_started, self._restored_wall_time = started, 0.0
            resumed_at = self.resumed_at = self._restore() if resume else None
            if resumed_at is None and self.dist.is_main:
                self._start_over(resuming=resume)
            if self.dist.is_main and self.on_start is not None:
                self.on_start()
            self.dist.barrier()
            self.log.open(resumed_at)
            workers = default_workers(self.device) if self.options.num_workers is None else self.options.num_workers
            self.feed = Feed(self.train_data, self.collate_fn, self.sampler, seed=self.options.seed,
                             rank=self.dist.rank, num_workers=workers, pin_memory=self.device.type == "cuda")
            try:
                return self._loop(started)
            finally:
                self.feed.close()
                self.log.close()

    def _loop(self, started: float) -> dict[str, Any]:
        opt, p = self.options, self.progress
        # A bar on a terminal; off one (a log file, a pipe), a line every 10 s with the same figures.
        bar = Meter("train", total=self.total_steps, unit="steps", initial=p.step,
                    enabled=opt.progress and self.dist.is_main)
        self.guard = StepGuard(self.device, fp16=self.precision == "fp16",
                               bad_in_a_row=p.bad_steps, skipped=p.skipped_steps)
        window, run = Window(), Window()  # since the last logged step; since the start
        stop = p.step >= self.total_steps
        stopped_early = False
        try:
            while not stop:
                clock = time.perf_counter()
                for micro in self._feed():
                    try:
                        step = self._train_step(micro, want_metrics=(p.step + 1) % opt.log_every == 0)
                    except _OOM:
                        step = None
                    if step is None:
                        # Outside the except block, so the traceback's tensors can be freed.
                        del micro
                        self._handle_oom()
                        break  # rebuild the epoch's feed from this step with smaller micro-batches
                    p.step += 1
                    p.epoch_step += 1
                    logging = p.step % opt.log_every == 0 or p.step == self.total_steps
                    # The step's only read back: where it is logged, or where the weights may be
                    # evaluated or saved (the counts of bad steps must then be exact). It waits for
                    # the device, so it counts as training time.
                    reading = self._read_guard() if logging or any(self._due()) else None
                    elapsed = time.perf_counter() - clock
                    window.add(step.rows, step.tokens, elapsed)
                    run.add(step.rows, step.tokens, elapsed)
                    bar.update(1)
                    if logging:
                        record = self._global(window).record(
                            p.step, self._epochs(), loss=reading.loss, grad_norm=reading.grad_norm, lr=step.lr,
                            metrics=reading.metrics, skipped=reading.last_bad_ago == 0, mfu_of=self._mfu)
                        self.log.write(record)
                        bar.note(", ".join(f"{k}={record[k]:.4g}" for k in ("loss", "lr", "samples_per_s")
                                           if record.get(k) is not None))
                        window = Window()
                        self.guard.reset_window()
                    stop, stopped_early = self._after_step()
                    if logging and not stop and self.pace is not None:
                        self._keep_pace(bar)
                    clock = time.perf_counter()  # evaluation and saving are not training time
                    if stop:
                        break
        finally:
            bar.close()
        results = self._results(started, self._global(run), stopped_early)
        if self.dist.is_main:
            write_json(self.output_dir / "results.json", results)
        return results

    def _feed(self) -> Iterator[list[MicroBatch]]:
        """The rest of the current epoch, one list of micro-batches per step."""
        return self.feed.epoch(self.progress.epoch, self.progress.epoch_step)

    def _due(self) -> Decision:
        """What `decide` would do after this step if it had no bad steps in a row."""
        p, opt = self.progress, self.options
        return decide(step=p.step, total_steps=self.total_steps, epoch_end=p.epoch_step >= self.steps_per_epoch,
                      eval_every=opt.eval_every, save_every=opt.save_every, bad_steps=0)

    def _after_step(self) -> tuple[bool, bool]:
        """Evaluate, close the epoch and save as `decide` says; (stop?, stopped early?). Where it
        evaluates, saves or stops, the loop has just read the guard: `p.bad_steps` is exact."""
        p, opt = self.progress, self.options
        epoch_end = p.epoch_step >= self.steps_per_epoch
        todo = decide(step=p.step, total_steps=self.total_steps, epoch_end=epoch_end, eval_every=opt.eval_every,
                      save_every=opt.save_every, bad_steps=p.bad_steps)
        if todo.stop and p.bad_steps:  # shorter than max_bad_steps, but its weights give no finite loss
            raise self._diverged(f"the run ended after {p.bad_steps} consecutive steps with a non-finite loss or "
                                 f"gradient (of {p.step} steps, {p.skipped_steps} skipped)")
        stopped_early = self._evaluate() if todo.evaluate else False
        if epoch_end:
            p.epoch, p.epoch_step = p.epoch + 1, 0
        if todo.save or stopped_early:
            self.save_checkpoint()  # after the epoch moved on: a resume starts the next one
        return todo.stop or stopped_early, stopped_early

    def _keep_pace(self, bar: Meter) -> None:
        """Let a time budget's pace (train/budget.py) move the run's end; the schedule then decays
        from here to the new end, and `on_move_end` records every end so far (config.json)."""
        step = self.progress.step
        end = self.dist.broadcast(self.pace(step, self.total_steps) if self.dist.is_main else None)
        if end is None or end == self.total_steps:
            return
        decay = self.scheduler.lr_lambdas[0]
        decay.move_end(step, end)
        self.total_steps = end
        bar.set_total(end)
        if self.dist.is_main and self.on_move_end is not None:
            self.on_move_end(decay.recorded_ends())

    # --- one step ---------------------------------------------------------------------------
    def _train_step(self, micro: list[MicroBatch], want_metrics: bool) -> Step:
        """Forward/backward every micro-batch, then unscale, clip and step the optimizer (the guard
        flags a non-finite step on the device; the optimizer then skips it). Reads nothing back
        from the device."""
        total_rows = sum(mb.rows for mb in micro)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        metrics = []  # handed to the guard once the step is through (not when it runs out of memory)
        for j, mb in enumerate(micro):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in mb.batch.items()}
            weight = mb.rows / total_rows
            # Gradients are all-reduced once per step, on its last micro-batch.
            sync = self.ddp.no_sync() if self.ddp is not None and j < len(micro) - 1 else contextlib.nullcontext()
            with sync:
                with autocast(self.precision, self.device):
                    out = self.forward_model(**batch)
                if getattr(out, "loss", None) is None:
                    raise AlbertError("the model returned no loss: the collate function must add the labels")
                self.scaler.scale(out.loss.float() * weight).backward()
            loss_sum += out.loss.detach().float() * weight
            if want_metrics and self.step_metrics_fn is not None:
                metrics.append((self.step_metrics_fn(out, batch), weight))
        # Every process skips or applies the step alike: on the mean loss (an all-reduce queued on
        # the device, not a read) and the gradient norm (of the all-reduced gradients).
        loss = self.dist.all_sum(loss_sum.double()) / self.dist.world_size
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        max_norm = self.options.max_grad_norm if self.options.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        skip = self.guard.check(loss, grad_norm)
        with flagged(self.optimizer, skip) as apply:
            if apply:
                self.optimizer.step()
        for values, weight in metrics:
            self.guard.add_metrics(values, weight)
        if self.scaler.is_enabled():
            self.scaler.update()  # lowers the scale after an overflow, as GradScaler.step would have
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
            self.scheduler.step()  # the schedule follows the data, skipped or not
        self.optimizer.zero_grad(set_to_none=True)
        return Step(rows=total_rows, tokens=sum(mb.tokens for mb in micro), lr=lr)

    def _read_guard(self) -> Reading:
        """Read the guard (one sync); warn about steps skipped since the last read, and stop after
        --max-bad-steps in a row (found here, at most --log-every - 1 steps late)."""
        p, r = self.progress, self.guard.read()
        new = r.skipped - p.skipped_steps
        p.bad_steps, p.skipped_steps = r.bad_in_a_row, r.skipped
        if not new:
            return r
        last = p.step - r.last_bad_ago
        what = "loss" if r.last_bad_was_loss else "gradient norm"
        if p.bad_steps >= self.options.max_bad_steps:
            raise self._diverged(f"{p.bad_steps} consecutive steps with a non-finite {what} (last at step {last})")
        where = f"step {last}" if new == 1 else f"{new} steps up to step {last}"
        warnings.warn(f"{where}: non-finite {what} ({r.last_bad_loss}); update skipped (now {p.bad_steps} "
                      f"bad steps in a row; --max-bad-steps {self.options.max_bad_steps})", TrainingWarning,
                      stacklevel=3)
        return r

    def _diverged(self, what: str) -> TrainingDiverged:
        last = self.store.steps()
        where = f"the last good checkpoint is {last[0][1]}" if last else "no checkpoint was written"
        return TrainingDiverged(f"training diverged: {what}; {where}. Try a lower lr (now {self.options.lr}), "
                                "more warmup, or precision='fp32'")

    def _check_weights(self) -> None:
        """Before weights are evaluated or saved: a finite loss can still be followed by an update
        that leaves them NaN or inf (an enormous lr), and nothing trained from those recovers."""
        bad = first_non_finite(self.model.named_parameters())
        if bad is not None:
            raise self._diverged(f"parameter {bad} holds NaN or inf after step {self.progress.step}")

    def _handle_oom(self) -> None:
        """Free what the failed step held; halve the micro-batch or explain what to do."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        micro, accum = self.sampler.batch_size, self.sampler.grad_accum
        if self.options.auto_accumulate and micro > 1 and not self.dist.enabled:
            self.sampler.set_micro_batch(micro // 2)
            warnings.warn(f"step {self.progress.step + 1}: out of memory with micro-batch {micro}; retrying with "
                          f"micro-batch {micro // 2} and {self.sampler.grad_accum} accumulation steps (same data per "
                          "step)", TrainingWarning, stacklevel=2)
            return
        raise AlbertError(f"out of GPU memory at step {self.progress.step + 1} with batch_size {micro} per device "
                          f"(grad_accum {accum}): try batch_size {max(1, micro // 2)} with grad_accum {accum * 2} "
                          "(the same effective batch), or auto_accumulate=True")

    # --- evaluation -------------------------------------------------------------------------
    def _evaluate(self) -> bool:
        """Evaluate and keep the best model; True when the run should stop (patience has run out,
        or `on_evaluate` said so)."""
        if self.evaluate_fn is None:
            return False
        self._check_weights()
        p, main = self.progress, self.dist.is_main
        metrics = None
        if main:
            try:
                with preserved_rng(self.device), torch.no_grad(), autocast(self.precision, self.device):
                    metrics = {k: float(v) for k, v in self.evaluate_fn(self.model).items()}
            except _OOM:
                raise AlbertError(f"out of GPU memory while evaluating at step {p.step}; lower the evaluation "
                                  "batch size (--eval-batch-size)") from None
            self.model.train()
        metrics = self.dist.broadcast(metrics)
        name = self.options.metric
        require(name in metrics, f"--metric {name!r} is not among the evaluation's metrics "
                                 f"({', '.join(sorted(metrics)) or 'none'})")
        verdict = judge(metrics[name], p.best_metric, greater_is_better=self.options.greater_is_better,
                        evals_without_improvement=p.evals_without_improvement, patience=self.options.patience)
        p.last_metrics, p.evals_without_improvement = metrics, verdict.evals_without_improvement
        if verdict.improved:
            p.best_metric, p.best_step, p.best_metrics = metrics[name], p.step, metrics
            if self.save_best_fn is not None and main:
                self._save_best()
            self.dist.barrier()
        self.log.write({"type": "eval", "step": p.step, "epoch": self._epochs(), **metrics, "best": verdict.improved})
        if self.on_evaluate is not None and self.dist.broadcast(
                self.on_evaluate(p.step, metrics) if main else None) is False:
            self.stopped_by_callback = True
            return True
        return verdict.out_of_patience

    def _save_best(self) -> None:
        """save_best into a temporary directory that then replaces `best/`."""
        best = self.output_dir / "best"
        try:
            with atomic_dir(best) as tmp:
                self.save_best_fn(self.model, tmp)
        except WriteError as e:  # any file in it (model.safetensors, spiece.model, ...), or best/ itself
            raise AlbertError(f"{best}: cannot write the best model ({e.reason}); the previous best/ is intact") from None

    # --- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write `checkpoints/step-N/` (rank 0; every rank contributes its RNG state)."""
        self._check_weights()
        rngs = self.dist.gather(rng_state(self.device))
        path = None
        if self.dist.is_main:
            self.progress.wall_time_s = self._wall_time()
            state = {**dataclasses.asdict(self.progress), "micro_batch": self.sampler.batch_size,
                     "global_batch": self.sampler.global_batch, "scheduler": self.scheduler.state_dict(),
                     "scaler": self.scaler.state_dict(), "rng": rngs}
            path = self.store.save(self.progress.step, {"model": self.model.state_dict(),
                                                        "optimizer": self.optimizer.state_dict(), "trainer": state})
        self.dist.barrier()
        return path

    def _restore(self) -> int | None:
        """Load the newest intact checkpoint; its step, or None when there is none."""
        found = self.store.newest_valid() if self.dist.is_main else None
        found = self.dist.broadcast(None if found is None else str(found))
        if found is None:
            return None
        path = Path(found)
        self.store.warn_if_other_settings(path)
        weights = self.store.load(path, "model", self.device)
        bad = first_non_finite(weights.items())
        if bad is not None:
            raise AlbertError(f"{path / 'model.pt'}: tensor {bad} holds NaN or inf; resume from an earlier "
                              "checkpoint (move this one away) or start over with --overwrite")
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(self.store.load(path, "optimizer", self.device))
        except (RuntimeError, ValueError, KeyError) as e:
            detail = " ".join(str(e).split())[:300]
            raise AlbertError(f"{path}: the checkpoint does not fit this run's model ({detail}); it was written "
                              "by a run with another model or task: resume with the same options, or use "
                              "another --output-dir") from None
        state = self.store.load(path, "trainer")
        require(state["global_batch"] == self.sampler.global_batch,
                f"{path}: saved with a global batch of {state['global_batch']} rows, this run uses "
                f"{self.sampler.global_batch} (batch_size x grad_accum x processes); resume with the same values")
        sched = dict(state["scheduler"])
        sched["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)  # the shape comes from this run's options
        self.scheduler.load_state_dict(sched)
        if state["scaler"]:  # empty from a bf16/fp32 run: an fp16 run resumed from it starts a fresh scaler
            self.scaler.load_state_dict(state["scaler"])
        # A checkpoint from before a field existed gets its default (wall_time_s: unknown, 0).
        self.progress = Progress(**{f.name: state.get(f.name, f.default) for f in dataclasses.fields(Progress)})
        self._restored_wall_time = self.progress.wall_time_s
        self.sampler.set_micro_batch(state["micro_batch"])
        rngs = state["rng"]
        if self.dist.rank < len(rngs):
            set_rng_state(rngs[self.dist.rank], self.device)
        else:  # more processes than the run was saved with
            seed_everything(self.options.seed + self.dist.rank + self.progress.step)
        return self.progress.step

    def _start_over(self, resuming: bool) -> None:
        """Begin at step 0: only over an earlier run's checkpoints when told to (overwrite). A
        --resume that finds no checkpoint at all (killed before its first one, or a new
        directory) starts from step 0 and says so: after a kill, --resume is always the answer."""
        if resuming and not self.store.steps():
            warnings.warn(f"{self.output_dir}: no checkpoint to resume from; starting from step 0",
                          TrainingWarning, stacklevel=3)
        if not self.options.overwrite:
            refuse_earlier_run(self.output_dir, resuming=resuming)
        elif self.store.steps():
            warnings.warn(f"{self.store.root}: no intact checkpoint; starting from scratch" if resuming else
                          f"{self.store.root}: removing checkpoints of an earlier run (overwrite=True)",
                          TrainingWarning, stacklevel=3)
        self.store.clear()

    # --- figures ----------------------------------------------------------------------------
    def _wall_time(self) -> float:
        """The run's wall time so far: this session's and, after a resume, that of the sessions
        up to the checkpoint it resumed from (the work it kept)."""
        return self._restored_wall_time + time.perf_counter() - self._session_started

    def _epochs(self) -> float:
        return round(self.progress.step / self.steps_per_epoch, 4)

    def _mfu(self, tokens_per_s: float) -> float | None:
        if self.flops_per_token is None or self.peak_flops is None:
            return None
        return tokens_per_s * self.flops_per_token / (self.peak_flops * self.dist.world_size)

    def _global(self, window: Window) -> Window:
        """`window` with the rows and tokens of every process (one all-reduce and read, under torchrun)."""
        if not self.dist.enabled:
            return window
        counts = torch.tensor([window.rows, window.tokens], dtype=torch.float64, device=self.device)
        rows, tokens = self.dist.all_sum(counts).tolist()
        return Window(rows=rows, tokens=tokens, time=window.time)

    def _results(self, started: float, run: Window, stopped_early: bool) -> dict[str, Any]:
        p = self.progress
        tokens_per_s = run.tokens / run.time if run.time > 0 else None
        return {
            "steps": p.step, "epochs": self._epochs(), "final": p.last_metrics, "best": p.best_metrics,
            "best_step": p.best_step, "best_metric": p.best_metric, "metric": self.options.metric,
            "stopped_early": stopped_early and not self.stopped_by_callback,
            "stopped_by_callback": self.stopped_by_callback, "skipped_steps": p.skipped_steps,
            "wall_time_s": self._wall_time(), "resumed_from_step": self.resumed_at, "train_time_s": run.time,
            "train_samples_per_s": run.rows / run.time if run.time > 0 else None,
            "tokens_per_s": tokens_per_s,
            "mfu": self._mfu(tokens_per_s) if tokens_per_s is not None else None,
            "precision": self.precision, "device": str(self.device), "world_size": self.dist.world_size,
        }
