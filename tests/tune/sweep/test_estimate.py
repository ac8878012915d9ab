"""The sweep's ETA (issue 28 item 7): the steps ASHA is expected to spend still, at the measured
step rate, on a fake clock. Counting trials finished swung from ~3 h to ~32 min in one sweep."""
import random

import pytest

from albert.tune.asha import make_rungs, make_scheduler
from albert.tune.sweep.estimate import StepRate, TrialProgress, expected_steps_left, seconds_left


def test_a_new_trial_is_expected_to_climb_the_rungs_as_asha_promotes():
    rungs = [112, 336, 1000]
    fresh = 112 + (336 - 112) / 3 + (1000 - 336) / 9
    assert expected_steps_left(rungs, 3, "asha", 10, []) == pytest.approx(10 * fresh)
    assert expected_steps_left(rungs, 3, "random", 10, []) == pytest.approx(10 * 1000)
    # A trial running its first job to 112 and at step 50: 62 steps for sure, then as a new one.
    running = TrialProgress("running", 50, 112)
    assert expected_steps_left(rungs, 3, "asha", 1, [running]) == pytest.approx(fresh - 50)
    # Of 9 trials 3 reach 336 and 1 reaches 1000: with 3 paused at 336, one is still to go on;
    # with one promoted and at 400, 600 steps are left for it and nothing more.
    at_336 = [TrialProgress("paused", 336, 336)] * 3 + [TrialProgress("pruned", 112, 112)] * 6
    assert expected_steps_left(rungs, 3, "asha", 9, at_336) == pytest.approx(664)
    promoted = [TrialProgress("running", 400, 1000), *at_336[1:]]
    assert expected_steps_left(rungs, 3, "asha", 9, promoted) == pytest.approx(600)
    assert expected_steps_left(rungs, 3, "asha", 2, [TrialProgress("pruned", 112, 112),
                                                     TrialProgress("completed", 1000, 1000)]) == 0


def simulate(budget: int, seed: int = 0):
    """An ASHA sweep on one worker at 10 steps/s on a fake clock: (time, ETA) at every job's end,
    and the sweep's true end."""
    rungs = make_rungs(12, 100, 3)
    scheduler = make_scheduler("asha", 12, 100, 3, "max")
    rng = random.Random(seed)
    now = [0.0]
    rate = StepRate(clock=lambda: now[0])
    trials: dict[int, TrialProgress] = {}
    quality = {}
    started = 0
    estimates = []
    while True:
        job = scheduler.suggest(started < budget) or (None if started < budget else scheduler.drain())
        if job is None:
            break
        if job.kind == "new":
            started += 1
            job = job._replace(trial_id=started)
            quality[started] = rng.random()
        trials[job.trial_id] = TrialProgress("running", job.from_resource, job.to_resource)
        rate.observe(sum(t.resource for t in trials.values()))
        now[0] += (job.to_resource - job.from_resource) / 10
        state = "completed" if job.to_resource == rungs[-1] else "paused"
        trials[job.trial_id] = TrialProgress(state, job.to_resource, job.to_resource)
        scheduler.report(job.trial_id, job.to_resource, quality[job.trial_id])
        rate.observe(sum(t.resource for t in trials.values()))
        left = expected_steps_left(rungs, 3, "asha", budget, list(trials.values()))
        estimates.append((now[0], seconds_left(left, rate)))
    return estimates, now[0]


def test_the_eta_follows_the_time_left_instead_of_swinging():
    estimates, end = simulate(budget=100)
    # Every estimate is within 20% of the sweep's length of the true time left (asynchronous
    # promotion lets somewhat more than budget/eta^k trials reach rung k: it runs a little
    # early), where counting trials finished was off by a factor of 2-6.
    errors = [abs(eta - (end - t)) / end for t, eta in estimates]
    assert max(errors) < 0.2, max(errors)
    # Consecutive estimates move by about the time that passed, not by hours.
    jumps = [abs((a_eta - b_eta) - (b_t - a_t)) for (a_t, a_eta), (b_t, b_eta) in zip(estimates, estimates[1:])
             if a_t > 0.1 * end]
    assert max(jumps) < 0.1 * end


def test_no_eta_before_a_step_is_measured():
    now = [0.0]
    rate = StepRate(clock=lambda: now[0])
    assert seconds_left(100, rate) is None
    rate.observe(0)
    now[0] = 5
    rate.observe(0)
    assert seconds_left(100, rate) is None
    now[0] = 10
    rate.observe(50)
    assert seconds_left(100, rate) == pytest.approx(20)
