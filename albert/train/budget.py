"""Training to a wall-clock budget (`--time-budget`), as budgeted pretraining does (Cramming,
Geiping & Goldstein 2022): the run measures what its steps, evaluations and saves cost on this
machine, then fixes its number of steps so that the whole run ends within the budget.

Design, so that a budgeted run stays exactly reproducible:
- The measurement is a probe: a few steps, one evaluation and one checkpoint of a *copy* of the
  model, in a throw-away directory, before the run starts. The run itself then starts from the
  untouched weights with the fixed number of steps (the trainer re-seeds every RNG at its start),
  so its learning-rate schedule is defined on that number from its first step, runs to its end,
  and `train.py <run>/config.json` (which holds the number) repeats it without measuring again.
- The count covers the time already spent (for pretraining: the vocabulary and the examples),
  the probe, every step, every evaluation and save the cadence will make (decision.py), and the
  work after the last step (the final export or predictions, one more evaluation and save).
- The machine's speed can change mid-run, so the run keeps pace (Pace): now and then it compares
  its steps' time with the probe's and moves its end; the schedule decays from where it stands to
  the new end, and every end goes to config.json (schedule_ends), so a repeat is still exact.
- A resumed run keeps the steps and the ends written in its config.json.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import AlbertError
from .decision import decide

log = logging.getLogger("albert")

# Steps the probe runs, logged in windows of PROBE_WINDOW: the first window (allocations, the
# loader's start) runs up to twice as slow as the rest, so the rate comes from the later ones and
# the first one's excess is counted once, as the run's start-up.
PROBE_STEPS = 30
PROBE_WINDOW = 10
# The count aims below the budget by this share: the machine's speed varies over a run.
MARGIN = 0.02
# The run checks its pace once per this share of the budget (Pace): a change of the machine's
# speed mid-run (docs/budget.md) then moves the end by at most this share times the change.
PACE_EVERY = 0.05

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int, option: str = "--time-budget") -> float:
    """Seconds in "45m", "2h", "90s", "1.5h" or plain seconds ("600"); anything else (negative,
    zero, NaN, another unit) raises AlbertError naming `option`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise AlbertError(f"{option}: expected a duration such as 45m, 2h, 90s or seconds, got {text!r}")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower()]
    if not (math.isfinite(seconds) and seconds > 0):
        raise AlbertError(f"{option}: expected a positive duration, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """'1 h 02 min', '14 min 30 s', '45 s'."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class StepSizes:
    """How large each of a run's steps is against the probe's measured steps (1.0: alike), from the
    batch order, which is fixed before the run starts (data/batch_order.py). Length-grouped batches
    differ several-fold in length and every epoch starts with its longest, so the probe's few steps
    are not the run's average: a step's time grows with its rows times its longest row."""

    def __init__(self, sizes_of_epoch: Callable[[int], list[int]], steps_per_epoch: int):
        self.sizes_of_epoch, self.steps_per_epoch = sizes_of_epoch, steps_per_epoch
        self.unit = 1.0
        self._epochs: dict[int, np.ndarray] = {}

    def _cumulative(self, epoch: int) -> np.ndarray:
        if epoch not in self._epochs:
            self._epochs[epoch] = np.cumsum(np.asarray(self.sizes_of_epoch(epoch), dtype=np.float64))
        return self._epochs[epoch]

    def total(self, steps: int) -> float:
        """The summed size of the run's first `steps` steps, in units of `unit`."""
        full, rest = divmod(int(steps), self.steps_per_epoch)
        raw = sum(self._cumulative(e)[-1] for e in range(full)) + (self._cumulative(full)[rest - 1] if rest else 0.0)
        return float(raw) / self.unit

    def set_unit(self, first: int, last: int) -> None:
        """Measure sizes in units of the mean size of steps first+1..last (the probe's measured ones)."""
        self.unit = 1.0
        self.unit = (self.total(last) - self.total(first)) / max(last - first, 1) or 1.0


@dataclass(frozen=True)
class Timing:
    """What a run costs on this machine: seconds per optimizer step, seconds per evaluation with
    its checkpoint (and best/ when it improves), and the steps of one epoch (for eval_every 0).
    With `sizes`, `step_s` is the time of a step of size 1 (the probe's average)."""

    step_s: float
    event_s: float
    steps_per_epoch: int
    startup_s: float = 0.0  # once per run: its first steps' excess over step_s
    sizes: StepSizes | None = field(default=None, compare=False, repr=False)

    def steps_seconds(self, steps: int) -> float:
        """Seconds of the run's first `steps` steps, without start-up, evaluations and saves."""
        return self.step_s * (self.sizes.total(steps) if self.sizes is not None else steps)


def events(steps: int, *, eval_every: int, save_every: int, steps_per_epoch: int, after: int = 0,
           total: int | None = None) -> int:
    """Steps after+1..steps of a `total`-step run (default: `steps`) after which the trainer
    evaluates or saves, as decision.decide says: every eval_every steps (0: at each epoch's end),
    every save_every steps (0: at each evaluation), and at the last step. Counted, not looped, so
    that a long run's pace is checked in microseconds."""
    total = steps if total is None else total
    last_regular = min(steps, total - 1)

    def multiples(k: int) -> int:  # of k in after+1..last_regular
        return max(0, last_regular // k - after // k) if k else 0

    evaluate = eval_every or steps_per_epoch
    save = save_every or evaluate
    both = evaluate * save // math.gcd(evaluate, save)
    return multiples(evaluate) + multiples(save) - multiples(both) + (after < total <= steps)


def span_seconds(timing: Timing, first: int, last: int, total: int, *, eval_every: int, save_every: int,
                 final: bool) -> float:
    """Seconds `timing` expects steps first+1..last of a `total`-step run to take, with the
    evaluations and saves among them and, `final`, the work after the run's last step (the final
    export, or the predictions: one more evaluation and save)."""
    n_events = events(last, eval_every=eval_every, save_every=save_every, steps_per_epoch=timing.steps_per_epoch,
                      after=first, total=total)
    return timing.steps_seconds(last) - timing.steps_seconds(first) + (n_events + final) * timing.event_s


def run_seconds(steps: int, timing: Timing, *, eval_every: int, save_every: int) -> float:
    """Expected seconds of a whole `steps`-step run: its start-up, its steps, its evaluations and
    saves, and the work after its last step."""
    return timing.startup_s + span_seconds(timing, 0, steps, steps, eval_every=eval_every, save_every=save_every,
                                           final=True)


def largest_fitting(fits: Callable[[int], bool], floor: int) -> int:
    """The largest n >= floor for which `fits(n)` (true up to some n, false beyond it), or floor
    when floor + 1 does not fit: doubling, then bisection."""
    low, high = floor, floor + 1
    while fits(high):
        if high - floor >= 1 << 40:
            raise AlbertError("--time-budget: a step was measured to take no time")
        low, high = high, floor + 2 * (high - floor)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def steps_for_budget(remaining_s: float, timing: Timing, *, eval_every: int, save_every: int) -> int:
    """The most steps whose run (run_seconds) fits in `remaining_s`; 0 when not even one does."""
    return largest_fitting(
        lambda n: run_seconds(n, timing, eval_every=eval_every, save_every=save_every) <= remaining_s, 0)


class Budget:
    """A wall-clock budget that started at `started` (seconds on `clock`, time.time by default).
    `fix_steps` turns a measured Timing into the run's number of steps."""

    def __init__(self, seconds: float, started: float, clock: Callable[[], float] = time.time):
        self.seconds, self.started, self.clock = seconds, started, clock

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def spent(self) -> float:
        return self.clock() - self.started

    def fix_steps(self, timing: Timing, *, eval_every: int, save_every: int) -> int:
        """The steps that end the run within the budget (less MARGIN), counting what is spent
        already; AlbertError when not one step fits."""
        remaining = self.seconds * (1 - MARGIN) - self.spent()
        steps = steps_for_budget(remaining, timing, eval_every=eval_every, save_every=save_every)
        if steps < 1:
            raise AlbertError(
                f"--time-budget {format_duration(self.seconds)}: {format_duration(self.spent())} are spent already "
                f"and a step takes {timing.step_s:.3g} s, an evaluation with its checkpoint {timing.event_s:.3g} s; "
                "give a longer budget or --max-steps")
        return steps


class Pace:
    """Keeps a budgeted run on time after its steps are fixed. The machine's speed can change
    mid-run by a fifth (docs/budget.md), which no probe foresees; so the trainer asks after its
    logged steps, and once per PACE_EVERY of the budget this compares the time since the last
    check with what `timing` expected of those steps and evaluations, and returns the end at which
    the run, going on at the speed just seen, finishes within the budget (less MARGIN). The
    trainer then moves its schedule's end there (optim.WarmupDecay.move_end) and records it."""

    def __init__(self, budget: Budget, timing: Timing | None, *, eval_every: int, save_every: int):
        self.budget, self.timing = budget, timing
        self.eval_every, self.save_every = eval_every, save_every
        self.last: tuple[int, float] | None = None  # (step, clock) of the last check

    def expected_s(self, first: int, last: int, total: int, *, final: bool) -> float:
        return span_seconds(self.timing, first, last, total, eval_every=self.eval_every, save_every=self.save_every,
                            final=final)

    def __call__(self, step: int, total: int) -> int | None:
        """The run's new end after `step` of `total` steps, or None while it is not time to check."""
        now = self.budget.clock()
        if self.last is None or step <= self.last[0]:
            self.last = (step, now)
            return None
        first, since = self.last
        if now - since < PACE_EVERY * self.budget.seconds:
            return None
        self.last = (step, now)
        expected = self.expected_s(first, step, total, final=False)
        speed = (now - since) / expected if expected > 0 else 1.0
        remaining = self.budget.seconds * (1 - MARGIN) - self.budget.spent()

        # The run ends no sooner than after the next step.
        low = largest_fitting(lambda end: speed * self.expected_s(step, end, end, final=True) <= remaining, step + 1)
        if low != total:
            log.info("time budget: steps ran %.2fx the expected time over the last %s; the run now ends after "
                     "%d steps (was %d), at about %s", speed, format_duration(now - since), low, total,
                     clock_time(now + speed * self.expected_s(step, low, low, final=True)))
        return low


def probe(make_trainer: Callable[[Any, Any], Any], model: Any, options: Any, where: Path) -> Timing | None:
    """Run PROBE_STEPS steps, one evaluation and one checkpoint of a copy of `model`, in a
    temporary directory under `where`, and return what they cost. `make_trainer(model, options)`
    builds the run's Trainer; the copy gets the options with the probe's length and cadence.
    The original model and the run's directory are left as they were. Under torchrun every
    process takes part; only rank 0 (which writes the log) returns the Timing, the others None."""
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".budget-probe-", dir=where) as tmp:
        steps = PROBE_STEPS
        opts = replace(options, output_dir=tmp, max_steps=steps, epochs=None, schedule_steps=None,
                       schedule_ends=None, eval_every=steps,
                       save_every=0, log_every=PROBE_WINDOW, progress=False, overwrite=True, patience=None,
                       report_to="none", keep_last=1)
        trainer = make_trainer(copy.deepcopy(model), opts)
        sizes = StepSizes(trainer.sampler.step_sizes, trainer.steps_per_epoch)
        results = trainer.train()
        log_file = Path(tmp) / "log.jsonl"
        if not trainer.dist.is_main or not log_file.exists():
            return None
        windows = [r for r in map(json.loads, log_file.read_text().splitlines()) if r.get("type") == "train"]
        del trainer
    # The steps' own time (the loop's clock, which stops while it evaluates and saves); everything
    # else in the probe's wall time is its evaluation, best/ and checkpoint.
    train_s = results["train_time_s"]
    rows = options.batch_size * options.grad_accum
    first = windows[0]["step"] * rows / max(windows[0]["samples_per_s"], 1e-9) if len(windows) > 1 else 0.0
    done, skipped = results["steps"], (windows[0]["step"] if len(windows) > 1 else 0)
    sizes.set_unit(skipped, done)  # so a step of size 1 is the probe's measured average
    step_s = (train_s - first) / (done - skipped) if done > skipped and train_s > first else train_s / sizes.total(done)
    startup_s = max(train_s - step_s * sizes.total(done), 0.0)
    event_s = max(results["wall_time_s"] - train_s, 0.0)
    return Timing(step_s=step_s, event_s=event_s, steps_per_epoch=sizes.steps_per_epoch, startup_s=startup_s,
                  sizes=sizes)


def clock_time(t: float) -> str:
    """A wall-clock time as the start-up lines print it."""
    return time.strftime("%H:%M:%S %Z", time.localtime(t))


def fix_budget_steps(budget: Budget, make_trainer: Callable[..., Any], model: Any, args: Any,
                     dist) -> tuple[Any, Pace | None]:
    """`args` with max_steps (and schedule_ends, its first end) fixed by `budget` (a probe of a
    copy of `model`, train/budget.py), logged; and the Pace that keeps the run on time (only rank
    0's is asked: the others have no timing). Under torchrun every process probes and rank 0's
    count is used."""
    timing = probe(make_trainer, model, args, Path(args.output_dir))
    fixed = budget.fix_steps(timing, eval_every=args.eval_every, save_every=args.save_every) if timing else None
    steps = dist.broadcast(fixed)
    args = replace(args, max_steps=steps, schedule_ends=[[0, steps]])
    pace = Pace(budget, timing, eval_every=args.eval_every, save_every=args.save_every)
    if timing is None:  # not rank 0: the trainer asks rank 0's pace and broadcasts its answer
        return args, pace
    end = budget.clock() + run_seconds(steps, timing, eval_every=args.eval_every, save_every=args.save_every)
    size = timing.sizes.total(steps) / steps if timing.sizes is not None and steps else 1.0
    log.info("time budget %s: %.3g s per step, %.3g s per evaluation with its checkpoint (measured on %d probe "
             "steps; the run's batches are %.2fx theirs in rows times length), %s spent so far: %d steps, ending "
             "about %s; the end moves if the steps' speed changes", format_duration(budget.seconds), timing.step_s,
             timing.event_s, PROBE_STEPS, size, format_duration(budget.spent()), steps, clock_time(end))
    return args, pace


def saved_length(output_dir: str | Path, time_budget: str | None) -> dict[str, Any] | None:
    """The steps a budgeted run in `output_dir` fixed and the ends its pace moved (its
    config.json: max_steps, schedule_ends), for a resume with the same budget; None when there
    are none."""
    path = Path(output_dir) / "config.json"
    try:
        saved = json.loads(path.read_text())["args"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if saved.get("time_budget") != time_budget or not isinstance(saved.get("max_steps"), int):
        return None
    return {"max_steps": saved["max_steps"], "schedule_ends": saved.get("schedule_ends")}
