"""Training to a wall-clock budget (albert/train/budget.py): the duration syntax, the rule that
turns a measured step rate into a number of steps (on a fake clock), and, through the real CLI on
the micro preset, a budgeted run that records its steps in config.json, keeps them on --resume,
and that train.py repeats loss for loss."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from albert.errors import AlbertError
from albert.data.batch_order import LengthGroupedSampler
from albert.train.budget import (MARGIN, PACE_EVERY, Budget, Pace, StepSizes, Timing, events, parse_duration,
                                 run_seconds, steps_for_budget)
from albert.train.decision import decide

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from test_kill_resume import corpus_text, environment, train_records  # noqa: E402


@pytest.mark.parametrize("text, seconds", [("45m", 2700), ("2h", 7200), ("90s", 90), ("600", 600), ("1.5h", 5400),
                                           (" 15M ", 900), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "0", "0s", "nan", "inf", "5 minutes", "1e3", "3w", "1h30m"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(AlbertError, match="--time-budget"):
        parse_duration(text)


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def simulate(clock: FakeClock, steps: int, timing: Timing, eval_every: int, save_every: int) -> None:
    """Advance the fake clock as the trainer would spend it: each step, each evaluation or save
    the cadence (decision.py) makes, the first steps' excess, and the work after the last step."""
    clock.now += timing.startup_s
    for s in range(1, steps + 1):
        clock.now += timing.steps_seconds(s) - timing.steps_seconds(s - 1)
        todo = decide(step=s, total_steps=steps, epoch_end=s % timing.steps_per_epoch == 0, eval_every=eval_every,
                      save_every=save_every, bad_steps=0)
        if todo.evaluate or todo.save:
            clock.now += timing.event_s
    clock.now += timing.event_s  # final export / predictions


@pytest.mark.parametrize("budget_s, spent_s, step_s, event_s, eval_every, save_every, per_epoch, startup_s", [
    (900, 240, 0.15, 4.0, 1000, 0, 10**6, 2.0),    # the 15-minute pretraining: vocabulary and examples spent first
    (3600, 230, 0.147, 4.0, 1000, 0, 42_000, 0.0),  # the CPU recipe's hour
    (180, 20, 0.1, 6.0, 0, 0, 439, 4.0),            # fine-tuning, an evaluation at each epoch's end
    (90, 5, 0.05, 1.0, 100, 250, 10**6, 0.5),       # evaluations and saves on different cadences
])
def test_budget_fixes_the_steps_that_end_within_it(budget_s, spent_s, step_s, event_s, eval_every, save_every,
                                                    per_epoch, startup_s):
    clock = FakeClock()
    budget = Budget(budget_s, started=clock(), clock=clock)
    clock.now += spent_s
    timing = Timing(step_s=step_s, event_s=event_s, steps_per_epoch=per_epoch, startup_s=startup_s)
    steps = budget.fix_steps(timing, eval_every=eval_every, save_every=save_every)
    simulate(clock, steps, timing, eval_every, save_every)
    ended = clock.now - budget.started
    assert ended <= budget_s * (1 - MARGIN) + 1e-6  # within the budget, with its margin
    assert ended >= budget_s * (1 - MARGIN) - step_s - 2 * event_s  # and not a step (or an evaluation) short of it
    # One more step would not fit.
    assert run_seconds(steps + 1, timing, eval_every=eval_every, save_every=save_every) > budget_s * (1 - MARGIN) - spent_s


def test_the_count_charges_each_step_by_its_batch():
    """Length-grouped batches: the run's steps are charged by their rows times longest row against
    the probe's measured steps (11-30), so a run whose batches differ on average from the probe's
    still ends at its budget, where a count from the probe's rate alone would not."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=4000)
    sampler = LengthGroupedSampler(len(lengths), 32, lengths=lengths, seed=3)
    sizes = StepSizes(sampler.step_sizes, sampler.num_steps)
    sizes.set_unit(10, 30)
    assert sizes.total(30) - sizes.total(10) == pytest.approx(20)
    epoch0 = sampler.step_sizes(0)
    assert epoch0[0] == max(epoch0) == 32 * lengths.max()  # every epoch starts with its longest batch
    assert sizes.total(sampler.num_steps + 3) == pytest.approx(
        (sum(epoch0) + sum(sampler.step_sizes(1)[:3])) / sizes.unit)
    timing = Timing(step_s=0.05, event_s=1.0, steps_per_epoch=sampler.num_steps, startup_s=0.2, sizes=sizes)
    clock = FakeClock()
    budget = Budget(180, started=clock(), clock=clock)
    steps = budget.fix_steps(timing, eval_every=0, save_every=0)
    simulate(clock, steps, timing, eval_every=0, save_every=0)
    ended = clock.now - budget.started
    assert budget.seconds * (1 - MARGIN) - 0.05 * max(epoch0) / sizes.unit - 2.0 <= ended <= budget.seconds * (1 - MARGIN)
    # A count from the probe's rate alone ends far from the budget (here: its batches were longer
    # than the run's, 8% on average, so the run ends early).
    plain = replace(timing, sizes=None)
    clock = FakeClock()
    budget = Budget(180, started=clock(), clock=clock)
    simulate(clock, budget.fix_steps(plain, eval_every=0, save_every=0), timing, eval_every=0, save_every=0)
    assert clock.now - budget.started < budget.seconds * (1 - MARGIN) - 10
    # Without lengths every step is alike: the count is the plain one.
    alike = StepSizes(LengthGroupedSampler(4000, 32, seed=3).step_sizes, 125)
    alike.set_unit(10, 30)
    assert steps_for_budget(100, replace(timing, sizes=alike, steps_per_epoch=125), eval_every=0, save_every=0) == \
        steps_for_budget(100, replace(plain, steps_per_epoch=125), eval_every=0, save_every=0)


def run_paced(clock: FakeClock, budget: Budget, timing: Timing, *, eval_every: int, slower: float,
              switch_s: float, paced: bool) -> tuple[int, float]:
    """The trainer's protocol on a fake clock: fix the steps, then step (the machine's speed moving
    by `slower` once `switch_s` of the budget have passed), evaluate and save on the cadence, and
    after every 10th step ask the Pace for a new end. Returns (steps run, seconds used)."""
    total = budget.fix_steps(timing, eval_every=eval_every, save_every=0)
    pace = Pace(budget, timing, eval_every=eval_every, save_every=0)
    clock.now += timing.startup_s
    step = 0
    while step < total:
        step += 1
        speed = slower if budget.spent() >= switch_s else 1.0
        clock.now += speed * (timing.steps_seconds(step) - timing.steps_seconds(step - 1))
        todo = decide(step=step, total_steps=total, epoch_end=step % timing.steps_per_epoch == 0,
                      eval_every=eval_every, save_every=0, bad_steps=0)
        if todo.evaluate or todo.save:
            clock.now += speed * timing.event_s
        if step % 10 == 0 and step < total and paced:
            end = pace(step, total)
            assert end is None or end > step
            total = end or total
    clock.now += (slower if budget.spent() >= switch_s else 1.0) * timing.event_s  # the final export
    return step, budget.spent()


@pytest.mark.parametrize("slower", [1.2, 0.8])
@pytest.mark.parametrize("budget_s, step_s, event_s, eval_every", [
    (3600, 0.15, 4.0, 1000),  # the CPU recipe's hour
    (180, 0.045, 1.5, 400),   # a 3-minute fine-tuning
])
def test_the_pace_moves_the_end_when_the_machine_changes_speed(slower, budget_s, step_s, event_s, eval_every):
    """The machine switches between speeds about 20% apart mid-run (docs/budget.md). Fixed once,
    the steps then end a run far from its budget; with the Pace moving the end, it lands within
    MARGIN + PACE_EVERY x the change."""
    timing = Timing(step_s=step_s, event_s=event_s, steps_per_epoch=10**6, startup_s=1.0)
    ended = {}
    for paced in (False, True):
        clock = FakeClock()
        budget = Budget(budget_s, started=clock(), clock=clock)
        clock.now += 0.05 * budget_s  # the vocabulary, the examples and the probe
        ended[paced] = run_paced(clock, budget, timing, eval_every=eval_every, slower=slower,
                                 switch_s=0.4 * budget_s, paced=paced)[1] / budget_s
    assert abs(ended[False] - 1) > 0.08  # fixed once: about 11% over or 11% under
    assert 1 - MARGIN - PACE_EVERY * abs(slower - 1) - 0.01 <= ended[True] <= 1.0


def test_the_pace_keeps_the_end_while_the_speed_holds():
    timing = Timing(step_s=0.1, event_s=2.0, steps_per_epoch=10**6)
    clock = FakeClock()
    budget = Budget(600, started=clock(), clock=clock)
    pace = Pace(budget, timing, eval_every=500, save_every=0)
    total = budget.fix_steps(timing, eval_every=500, save_every=0)
    clock.now += 10 * timing.step_s
    assert pace(10, total) is None  # the first call starts the measurement
    clock.now += 1.0 * 10 * timing.step_s  # not yet PACE_EVERY of the budget later
    assert pace(20, total) is None
    clock.now += 500 * timing.step_s + timing.event_s  # steps 21-520 and the evaluation at 500, at the speed expected
    assert pace(520, total) == total


def test_events_follow_the_trainers_cadence():
    assert events(2500, eval_every=1000, save_every=0, steps_per_epoch=10**6) == 3  # 1000, 2000 and the last
    assert events(2000, eval_every=1000, save_every=0, steps_per_epoch=10**6) == 2
    assert events(1000, eval_every=0, save_every=0, steps_per_epoch=439) == 3  # epoch ends 439, 878, and the last


def test_a_spent_budget_is_one_clear_error():
    clock = FakeClock()
    budget = Budget(60, started=clock(), clock=clock)
    clock.now += 70
    with pytest.raises(AlbertError, match=r"--time-budget 1 min 00 s: 1 min 10 s are spent already"):
        budget.fix_steps(Timing(0.1, 1.0, 100), eval_every=10, save_every=0)
    assert steps_for_budget(0.5, Timing(1.0, 0.0, 100), eval_every=0, save_every=0) == 0


# --- the real CLI -------------------------------------------------------------------------------

def _run(argv: list, env: dict) -> str:
    r = subprocess.run([sys.executable, *map(str, argv)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout + r.stderr


@pytest.mark.slow  # the default suite stays under 10 minutes on 2 cores; run with -m slow
def test_budgeted_pretraining_records_keeps_and_repeats_its_steps(tmp_path):
    """The end-to-end proof: a micro run with a 60-second budget fixes its steps, writes them to
    config.json, ends within the budget, keeps them on --resume, and train.py repeats its
    per-step losses exactly without measuring again."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(120, 3))
    env = environment(tmp_path / "cache")
    out, again = tmp_path / "run", tmp_path / "again"
    common = ["--corpus", corpus, "--preset", "micro", "--vocab-size", "200", "--max-seq-length", "64",
              "--eval-examples", "32", "--num-proc", "1", "--tokenizer-sample", "2000", "--log-every", "1",
              "--eval-every", "100", "--no-progress"]
    text = _run(["pretrain.py", *common, "--time-budget", "60s", "--output-dir", out], env)
    assert "recipe: the CPU recipe (measured)" in text and "--preset micro" in text
    saved = json.loads((out / "config.json").read_text())["args"]
    steps = saved["max_steps"]
    assert isinstance(steps, int) and steps > 0 and saved["time_budget"] == "60s"
    ends = saved["schedule_ends"]  # the end the probe fixed, then where the pace moved it
    assert ends[0] == [0, ends[0][1]] and ends[-1][1] == steps
    assert f": {ends[0][1]} steps, ending about" in text
    assert all(f"now ends after {end} steps" in text for _, end in ends[1:])
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == steps
    records = train_records(out)
    peak = max(r["lr"] for r in records.values())
    # The schedule ran to its end: the last step's lr is one step of the last segment's decay,
    # which runs from the last move (step 0 when the end never moved) to the end.
    assert max(records) == steps and records[steps]["lr"] < peak / (steps - ends[-1][0]) * 2
    assert not list(out.glob(".budget-probe-*"))  # the probe leaves nothing behind

    # A resume with the same budget keeps the fixed count (it does not measure again).
    text = _run(["pretrain.py", *common, "--time-budget", "60s", "--output-dir", out, "--resume"], env)
    assert f"length: {steps} steps, fixed by this run's time budget of 60s" in text
    assert "per step" not in text
    kept = json.loads((out / "config.json").read_text())["args"]
    assert kept["max_steps"] == steps and kept["schedule_ends"] == ends  # the moved ends too

    # train.py repeats it: same steps, same per-step losses, no probe.
    text = _run(["train.py", out / "config.json", "--output-dir", again], env)
    assert "per step" not in text
    repeat = train_records(again)
    assert sorted(repeat) == sorted(records)
    assert [(repeat[s]["loss"], repeat[s]["lr"]) for s in sorted(repeat)] == \
        [(records[s]["loss"], records[s]["lr"]) for s in sorted(records)]
    assert json.loads((again / "config.json").read_text())["args"]["schedule_ends"] == ends
